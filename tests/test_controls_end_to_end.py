"""The controls and curves of #27 through real Ray and real MLflow: the raw-pixel control, random
with its BN statistics re-estimated, RotNet read at a snapshot, probes at equal feature counts."""

from __future__ import annotations

import pytest
import ray
from mlflow.tracking import MlflowClient

from contract.methods import snapshot_artifact
from orchestrator.cli.main import main
from tests.conftest import FASHION_MNIST

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]

SPEC = """\
name: controls
grid:
  method:
    - pixels
    - {name: random, bn_statistics: pretext, samples: 64}
    - {name: rotnet, samples: 64, epochs: 2, batch_size: 16, snapshots: [32]}
  images: [astronaut]
  augmentation: [full]
  layer: [conv1, conv3]
  probe_dataset: [fashion_mnist]
  seed: [0]
network: {width: 0.25, input_size: 64}
probe: {preset: fast, epochs: 1, train_samples: 200, test_samples: 100, features: 216}
retries: 0
"""


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    ray.shutdown()


def test_controls_and_a_snapshot_run_and_are_recorded(write_spec, tmp_path, monkeypatch, capsys):
    """Every cell FINISHED; the snapshot's cells sit under the RotNet run that holds the
    snapshot and read it (trained 2 of the run's 8 steps); the pixels read as many features as
    conv1 and conv3 do. Mutation tried: run_evaluation downloading `checkpoint.pt` whatever the
    job's `checkpoint` fails it (the snapshot's cells read a trunk of 8 steps)."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(write_spec(SPEC))]) == 0
    out = capsys.readouterr().out
    assert "8/8 cells FINISHED" in out
    for row in ("| pixels |", "| random(bn=pretext) N1 astronaut full |", "| rotnet@32 N1 astronaut full |",
                "| rotnet@128 N1 astronaut full |"):
        assert row in out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("controls").experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    pretrain = {r.data.params["method"]: r for r in runs if r.data.tags["monosweep.kind"] == "pretrain"}
    cells = [r for r in runs if r.data.tags["monosweep.kind"] == "cell"]
    rotnet = pretrain["rotnet@128"]
    assert {snapshot_artifact(32), "checkpoint.pt"} <= {a.path for a in client.list_artifacts(rotnet.info.run_id)}
    assert pretrain["random(bn=pretext)"].data.params["bn_samples"] == "64"
    for cell in cells:
        assert cell.info.status == "FINISHED"
        method, params = cell.data.params["method"], cell.data.params
        # As close to 216 as each map allows: conv1 24 x 3 x 3, conv3 96 x 2 x 1 (its map is 3 x 3)
        assert params["feature_dim"] == {"conv1": "216", "conv3": "192"}[params["layer"]]
        if method.startswith("rotnet"):
            assert cell.data.tags["mlflow.parentRunId"] == rotnet.info.run_id
            assert params["trunk_step"] == ("2" if method == "rotnet@32" else "8")
        if method == "pixels":
            assert params["pooled_grid"].startswith("3x")
