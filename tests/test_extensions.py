"""A new SSL method and a new evaluation kind, each added in two files of its own
(tests/extensions/), end to end through the real grid, keys, Ray and MLflow: the worked
examples of docs/ARCHITECTURE.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli.main import main
from tests.conftest import FASHION_MNIST

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]

SPEC = """\
name: extensions
grid:
  method: [random, {name: toy_brightness, samples: 64}]
  images: [astronaut]
  augmentation: [none]
  evaluation: [linear_probe, {name: toy_weight_norm, ord: 1}]
  layer: [conv1]
  probe_dataset: [fashion_mnist]
network: {width: 0.25, input_size: 64}
probe: {preset: fast, epochs: 1, train_samples: 200, test_samples: 200}
retries: 0
"""


def test_toy_method_and_toy_evaluation_run_end_to_end(sweep_sandbox, monkeypatch, capsys):
    # The toys register themselves on import, as a project's own modules would; Ray's workers
    # find them on PYTHONPATH (they unpickle the jobs, whose classes live there).
    import tests.extensions.toy_evaluation  # noqa: F401
    import tests.extensions.toy_settings  # noqa: F401

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    path = sweep_sandbox / "experiments.yaml"
    path.write_text(SPEC)
    assert main(["run", str(path)]) == 0

    client = MlflowClient(f"sqlite:///{sweep_sandbox / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("extensions").experiment_id
    runs = client.search_runs([experiment], max_results=100)
    by_name = {r.info.run_name: r for r in runs}
    toy = by_name["toy_brightness N1 astronaut none s0"]
    assert toy.info.status == "FINISHED" and "pretext_loss" in toy.data.metrics
    norms = [r for name, r in by_name.items() if name.endswith("weight norm")]
    assert {r.info.run_name for r in norms} == {
        "random s0 weight norm",
        "toy_brightness N1 astronaut none s0 weight norm",
    }
    for run in norms:
        assert run.info.status == "FINISHED"
        assert (
            run.data.tags["mlflow.parentRunId"] == by_name[run.info.run_name.removesuffix(" weight norm")].info.run_id
        )
        assert all(run.data.metrics[f"conv{i}_norm"] > 0 for i in range(1, 6))
    # Training moved the toy's weights away from the same seeded init the random trunk keeps.
    trained, untrained = (by_name[f"{m} weight norm"].data.metrics["conv5_norm"]
                          for m in ("toy_brightness N1 astronaut none s0", "random s0"))
    assert trained != untrained
    probe = by_name["toy_brightness N1 astronaut none s0 conv1 fashion_mnist"]
    assert probe.info.status == "FINISHED" and 0 <= probe.data.metrics["top1"] <= 100

    # The report has a table for the toy kind, from MLflow alone.
    capsys.readouterr()
    assert main(["report", str(path), "--format", "csv", "--no-log"]) == 0
    csv = (sweep_sandbox / "reports" / "extensions" / "report.csv").read_text()
    assert "toy_weight_norm,conv5_norm,mean,toy_brightness N1 astronaut none,trunk," in csv

    # A rerun finds every cell finished and trains nothing.
    capsys.readouterr()
    assert main(["run", str(path)]) == 0
    assert len(client.search_runs([experiment], max_results=100)) == len(runs)
