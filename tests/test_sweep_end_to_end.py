"""End to end through real Ray (a local cluster) and real MLflow (SQLite in a temp folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient

from orchestrator.cli.main import main
from orchestrator.sweep import prepare, run
from tests.conftest import FASHION_MNIST, TINY

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, store):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # each test's store is its own (migrated)
    yield
    ray.shutdown()


def runs(tmp_path: Path, name: str = "tiny") -> list:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=10_000)


def by_kind(all_runs: list, kind: str) -> list:
    return [r for r in all_runs if r.data.tags.get("monosweep.kind") == kind]


def test_sweep_records_one_finished_run_per_cell_and_reruns_nothing(write_spec, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write_spec(TINY.replace("layer: [conv1, conv2, conv3, conv4, conv5]", "layer: [conv1, conv3]"))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "6/6 cells FINISHED" in out and f"sqlite:///{tmp_path}/mlflow.db" in out
    assert "| rotnet N1 astronaut full |" in out  # the results table
    assert "finetuning" not in out and "style" not in out  # no tables of evaluations it did not run
    # The link opens the experiment's training runs (MLflow 3 opens its GenAI view without the query).
    experiment_id = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_experiment_by_name("tiny").experiment_id
    link = f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    assert f"training runs: {link} (serve them: mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db)" in out

    first = runs(tmp_path)
    sweep_runs, pretrain, probe = (by_kind(first, k) for k in ("sweep", "pretrain", "cell"))
    assert len(sweep_runs) == 1 and len(pretrain) == 3 and len(probe) == 6
    sweep_id = sweep_runs[0].info.run_id
    assert all(r.info.status == "FINISHED" for r in first)
    assert {r.data.tags["mlflow.parentRunId"] for r in pretrain} == {sweep_id}
    pretrain_ids = {r.info.run_id: r for r in pretrain}
    keys = [r.data.tags["monosweep.key"] for r in probe]
    assert len(set(keys)) == 6  # one run per cell
    for r in probe:
        parent = pretrain_ids[r.data.tags["mlflow.parentRunId"]]
        assert parent.data.tags["monosweep.key"] == r.data.tags["monosweep.pretrain_key"]
        assert 0 < r.data.metrics["top1"] <= 100 and r.data.metrics["top5"] >= r.data.metrics["top1"]
        assert r.data.params["layer"] in ("conv1", "conv3") and int(r.data.params["feature_dim"]) > 0
        assert r.data.tags["monosweep.attempt"] == "1" and r.data.tags["monosweep.version.torch"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for r in pretrain:
        assert {a.path for a in client.list_artifacts(r.info.run_id)} >= {"checkpoint.pt", "config.json"}
    for r in probe:
        assert "config.json" in {a.path for a in client.list_artifacts(r.info.run_id)}
    rotnet = next(r for r in pretrain if r.data.params["method.name"] == "rotnet")
    assert [m.step for m in client.get_metric_history(rotnet.info.run_id, "pretext_loss")] == [4]
    history = client.get_metric_history(probe[0].info.run_id, "top1")
    assert sorted(m.step for m in history) == [1, 2]  # per epoch, the last is the final score
    experiment = client.get_experiment_by_name("tiny")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    # The same file again: nothing is trained, no run is added, Ray is not even started.
    ray.shutdown()
    assert main(["run", str(path)]) == 0
    assert "nothing to run" in capsys.readouterr().out
    assert not ray.is_initialized()
    again = runs(tmp_path)
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in first)

    # A grown grid (three more layers): only the new cells run, on the finished checkpoints.
    grown = write_spec(TINY)
    assert main(["run", str(grown)]) == 0
    assert "to run: 0 pretrain jobs (3 finished ones reused), 3 evaluation jobs" in capsys.readouterr().out
    after = runs(tmp_path)
    assert {r.info.run_id: r.info.end_time for r in by_kind(after, "pretrain")} == {
        r.info.run_id: r.info.end_time for r in pretrain
    }
    new_probe = by_kind(after, "cell")
    assert len(new_probe) == 15 and len({r.data.tags["monosweep.key"] for r in new_probe}) == 15
    assert all(r.info.status == "FINISHED" for r in new_probe)
    old = {r.info.run_id: r.info.end_time for r in probe}
    assert all(old[r.info.run_id] == r.info.end_time for r in new_probe if r.info.run_id in old)


def test_failed_job_is_retried_then_recorded_failed(write_spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo = tmp_path / "photo.jpg"
    from contract.images import bundled_photos

    photo.write_bytes(bundled_photos()["coffee"].read_bytes())
    path = write_spec(
        TINY.replace("images: [astronaut]", "images: [photo.jpg]")
        .replace("augmentation: [full, none]", "augmentation: [full]")
        .replace("conv1, conv2, conv3, conv4, conv5", "conv1")
    )
    prepared = prepare(path)
    photo.write_bytes(photo.read_bytes() + b"changed")  # the source image changes after planning
    outcome = run(prepared)
    assert not outcome.complete and outcome.finished == 1  # random's cell

    all_runs = runs(tmp_path)
    rotnet = [r for r in by_kind(all_runs, "pretrain") if r.data.params["method.name"] == "rotnet"]
    assert len(rotnet) == 1  # retried in the same run, not a second one
    run_ = rotnet[0]
    assert run_.info.status == "FAILED"
    assert run_.data.tags["monosweep.attempt"] == "2"  # retries: 1
    assert run_.data.tags["monosweep.error_class"] == "ValueError"
    assert "changed since the sweep was planned" in run_.data.tags["monosweep.error"]
    assert by_kind(all_runs, "sweep")[0].info.status == "FAILED"
    probes = by_kind(all_runs, "cell")
    assert len(probes) == 1 and probes[0].data.params["method"] == "random"
