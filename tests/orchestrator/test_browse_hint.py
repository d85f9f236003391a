"""The link `monosweep run` prints opens the experiment's Training runs view."""

from orchestrator.cli.run import browse_hint


def test_a_tracking_server_is_linked_directly():
    assert browse_hint("http://mlflow:5000/", "7").startswith(
        "http://mlflow:5000/#/experiments/7/runs?workflowType=machine_learning "
    )


def test_a_local_store_is_browsed_with_mlflow_ui():
    assert browse_hint("sqlite:///x/mlflow.db", "1") == (
        "mlflow ui --backend-store-uri sqlite:///x/mlflow.db, then "
        "http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"
    )
