"""A package of one's own extends monosweep through entry points, no file of monosweep edited:
tests/plugin (the monosweep-toys distribution: a toy SSL method, a toy evaluation kind and a toy
augmentation op, which the toy method's row uses) is
installed into a temporary folder by pip, and the command line, run in subprocesses with that
folder on the path, finds it. The walkthroughs of docs/ARCHITECTURE.md, end to end: validate,
plan --estimate, run on a real local Ray into a real MLflow store, status, resubmit --where,
report. The toy kind's own coordinate (`ord`) is used in `exclude`, `--where` and `status`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.record.schema import ATTEMPT, KEY
from tests.conftest import FASHION_MNIST

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugin"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]

SPEC = """\
name: plugins
grid:
  method: [random, {name: toy_brightness, samples: 64}]
  images: [astronaut]
  augmentation: [{preset: none, ops: [{name: toy_invert, p: 0.3}]}]
  evaluation: [linear_probe, {name: toy_weight_norm, ords: [1, 2]}]
  layer: [conv1]
  probe_dataset: [fashion_mnist]
exclude:
  - {method: random, ord: 1}
network: {width: 0.25, input_size: 64}
probe: {preset: fast, epochs: 1, train_samples: 200, test_samples: 200}
retries: 0
"""
# The first run's evaluations of the toy method's trunk fail (the three of them), so that
# `resubmit --where ord=1` has cells to choose from.
TOY = "toy_brightness N1 astronaut none+toy_invert(p=0.3)"  # the toy method's row: the toy op's label in it
FAULTS = '[{stage: evaluation, match: "toy_brightness*", action: fail}]'


def install(target: Path) -> None:
    """pip installs tests/plugin (a copy: pip builds in the source folder) into `target`."""
    source = target.parent / "source"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(source)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A sweep folder whose commands see the installed toys (and the first run's outcome)."""
    folder = tmp_path_factory.mktemp("plugins")
    install(folder / "site")
    (folder / "experiments.yaml").write_text(SPEC)
    return folder


def cli(folder: Path, *args: str, faults: str | None = None) -> subprocess.CompletedProcess[str]:
    """`monosweep ARGS` in a fresh process (and its Ray workers) with the toys on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MONOSWEEP_FAULTS", "RAY_ADDRESS")}
    env["PYTHONPATH"] = os.pathsep.join([str(folder / "site"), str(ROOT)])
    if faults:
        env["MONOSWEEP_FAULTS"] = faults
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


def test_env_plan_and_validate_know_the_toys_and_plan_prices_the_toy_kind(folder):
    done = cli(folder, "plan", "experiments.yaml", "--estimate", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    # 2 trunks; a probe each, weight norms of order 2 for both and of order 1 for the toy's only (exclude)
    assert plan["cells"] == 5 and plan["evaluation_jobs"] == {"linear_probe": 2, "toy_weight_norm": 3}
    rows = {r["row"]: r for r in plan["estimate"]["rows"]}
    assert rows["toy_brightness"]["tflop_per_job"] > 0  # the toy method, costed by the shared loop's arithmetic
    norms = rows["toy_weight_norm"]  # the kind's own cost hook: 2 FLOPs a weight
    assert norms["jobs"] == 3 and 0 < norms["tflop_per_job"] < rows["linear_probe fashion_mnist"]["tflop_per_job"]

    listed = [line for line in cli(folder, "env").stdout.splitlines() if line.startswith("plugin: ")]
    assert listed == [
        "plugin: monosweep-toys 0.1.0 (monosweep.methods: toy_brightness = monosweep_toys.toy_settings)",
        "plugin: monosweep-toys 0.1.0 (monosweep.evaluations: toy_weight_norm = monosweep_toys.toy_evaluation)",
        "plugin: monosweep-toys 0.1.0 (monosweep.ops: toy_invert = monosweep_toys.toy_op)",
    ]

    bad = folder / "bad.yaml"
    bad.write_text(SPEC.replace("{method: random, ord: 1}", "{method: random, ord: one}"))
    done = cli(folder, "validate", "bad.yaml")
    assert done.returncode == 2 and "bad.yaml:10: exclude[0].ord: 'one': Input should be a valid integer" in done.stderr


def test_the_toys_run_through_the_cli_and_their_coordinate_selects_cells(folder):
    done = cli(folder, "run", "experiments.yaml", faults=FAULTS)
    assert done.returncode == 1, done.stderr  # the injected failures
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("plugins").experiment_id

    def runs() -> dict[str, object]:  # the job and cell runs by name (not the sweep run)
        return {r.info.run_name: r for r in client.search_runs([experiment], max_results=100) if KEY in r.data.tags}

    by_name = runs()
    toy = by_name[TOY + " s0"]
    assert toy.info.status == "FINISHED" and "pretext_loss" in toy.data.metrics  # the toy method trained
    assert by_name["random s0 weight norm ord=2"].info.status == "FINISHED"
    assert "random s0 weight norm ord=1" not in by_name  # excluded by the toy kind's coordinate
    failed = {TOY + " s0 " + s for s in ("weight norm ord=1", "weight norm ord=2", "conv1 fashion_mnist")}
    assert {name for name, r in by_name.items() if r.info.status == "FAILED"} == failed

    done = cli(folder, "status", "experiments.yaml", "--json")
    assert done.returncode == 0, done.stderr
    axes = json.loads(done.stdout)["by_axis"]
    assert {v: {s: n for s, n in c.items() if n} for v, c in axes["ord"].items()} == {
        "1": {"failed": 1}, "2": {"finished": 1, "failed": 1}}
    assert "by ord:" in cli(folder, "status", "experiments.yaml").stdout

    done = cli(folder, "resubmit", "experiments.yaml", "--where", "ord=1")
    assert done.returncode == 1, done.stderr  # two cells stay failed: they were not selected
    assert "resubmitting 1 of 5 cells" in done.stdout
    by_name = runs()
    rerun = by_name[TOY + " s0 weight norm ord=1"]
    assert rerun.info.status == "FINISHED" and rerun.data.tags[ATTEMPT] == "2"
    assert all(rerun.data.metrics[f"conv{i}_norm"] > 0 for i in range(1, 6))
    assert {name for name, r in by_name.items() if r.info.status == "FAILED"} == failed - {rerun.info.run_name}

    done = cli(folder, "resubmit", "experiments.yaml")  # the rest
    assert done.returncode == 0, done.stderr
    by_name = runs()
    # Training moved the toy's weights away from the same seeded init the random trunk keeps.
    trained, untrained = (by_name[f"{m} s0 weight norm ord=2"] for m in (TOY, "random"))
    assert trained.data.metrics["conv5_norm"] != untrained.data.metrics["conv5_norm"]
    probe = by_name[TOY + " s0 conv1 fashion_mnist"]
    assert probe.info.status == "FINISHED" and 0 <= probe.data.metrics["top1"] <= 100

    # The report has the toy kind's tables (a column per order), from MLflow alone.
    done = cli(folder, "report", "experiments.yaml", "--format", "csv", "--no-log")
    assert done.returncode == 0, done.stderr
    report = (folder / "reports" / "plugins" / "report.csv").read_text()
    assert f",toy_weight_norm,conv5_norm,mean,{TOY},ord=1," in report
