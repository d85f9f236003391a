"""Seeds until decided, end to end on real Ray and MLflow at tiny size: a pair of rows that
truly differ (a trunk trained on the labels against a random one, finetuned with every conv
layer frozen) is decided at the first look, before the maximum; an A/A pair (the random row
under a second seed stream) gets seeds to the maximum and no verdict; the driver, killed in
the second round, is run again and adds no seed twice."""

from __future__ import annotations

import csv
import json
import os
import signal

import pytest
from mlflow.tracking import MlflowClient

from contract.methods import stream_seed
from orchestrator.cli.main import main
from tests.conftest import FASHION_MNIST
from tests.processes import kill_session
from tests.test_operations import all_runs, kind, one_finished_run_per_key
from tests.test_signals import driver, running, wait_for

pytestmark = [
    pytest.mark.usefixtures("sweep_sandbox"),
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]

SPEC = """\
name: tiny
grid:
  method: [random, {name: random, seed_stream: 1}, {name: supervised, train_samples: 1000, epochs: 3, batch_size: 50,
           lr: 0.05}]
  images: [astronaut]
  augmentation: [full]
  evaluation: [{name: finetune_frozen, frozen: [5]}]
  probe_dataset: [fashion_mnist]
  seed: {min: 3, max: 4}
network: {width: 0.25, input_size: 64}
finetune: {preset: fast, train_samples: 500, test_samples: 500}
retries: 1
findings:
  - {name: labels_help, claim: a trunk trained on the labels beats a random one, a: supervised, b: random#1,
     at: [k=5], kind: greater}
  - {name: twins, claim: a random trunk beats its twin, a: random#2, b: random#1, at: [k=5], kind: greater}
"""


def finished_seeds(runs: list) -> dict[str, list[int]]:
    """Row -> the seeds of its FINISHED cells, a seed as often as it has such a cell."""
    out: dict[str, list[int]] = {}
    for r in kind(runs, "cell"):
        if r.info.status == "FINISHED":
            out.setdefault(r.data.params["method"], []).append(int(r.data.params["seed"]))
    return {row: sorted(seeds) for row, seeds in out.items()}


def test_seeds_are_added_until_decided_and_a_killed_driver_adds_none_twice(write_spec, tmp_path, capsys):
    spec = write_spec(SPEC)
    # The second round's seed 3 of the twin hangs: the driver is killed there, between the rounds' records.
    process = driver(spec, tmp_path, [{"match": "random#2 s3", "stage": "pretrain", "action": "hang"}])
    try:
        wait_for(tmp_path, process, "the second round", running("pretrain", seed="3"), timeout=600)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        kill_session(process.pid)
    # The first look decided the labelled trunk: the second round adds seed 3 to the twins alone.
    assert finished_seeds(all_runs(tmp_path))["supervised"] == [0, 1, 2]
    assert {r.data.params["method"] for r in kind(all_runs(tmp_path), "pretrain") if r.data.params["seed"] == "3"} <= {
        "random#1", "random#2"}

    assert main(["run", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "look 2 of 2 (random#1 seed 3, random#2 seed 3)" in out
    runs = all_runs(tmp_path)
    one_finished_run_per_key(runs)
    # Seeds only where an undecided finding needs them, each once.
    assert finished_seeds(runs) == {"random#1": [0, 1, 2, 3], "random#2": [0, 1, 2, 3], "supervised": [0, 1, 2]}
    assert len(kind(runs, "pretrain")) == 11 and len(kind(runs, "cell")) == 11
    twin = next(r for r in kind(runs, "pretrain") if r.info.run_name == "random#2 s3")
    assert twin.info.status == "FINISHED" and twin.data.tags["monosweep.attempt"] == "2"  # the killed run, reopened
    # the twin's runs keep the grid's seed (what pairs them) and record the stream's own
    assert twin.data.params["seed"] == "3" and twin.data.params["stream_seed"] == str(stream_seed(3, 1))
    assert not any("stream_seed" in r.data.params for r in runs if r.data.params.get("method") == "random#1")

    assert main(["report", str(spec), "--view", "findings", "--format", "csv", "--out", str(tmp_path / "out")]) == 0
    rows = {r["finding"]: r for r in csv.DictReader((tmp_path / "out" / "findings.csv").open())}
    labels, twins = rows["labels_help"], rows["twins"]
    assert (labels["verdict"], labels["look"], labels["seeds"]) == ("held", "1", "3")  # before the maximum
    assert twins["verdict"] == "undecided" and twins["seeds"] == "4"  # at the maximum, no verdict
    assert float(labels["estimate"]) > 10

    capsys.readouterr()
    assert main(["status", str(spec), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["cells"] == 11 and status["counts"]["finished"] == 11
    assert status["findings"]["finished"] and status["findings"]["look"] == 2
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    sweep_run = kind(runs, "sweep")[0].info.run_id
    (tmp_path / "fetched").mkdir()
    with open(client.download_artifacts(sweep_run, "cells.json", str(tmp_path / "fetched"))) as f:
        planned = json.load(f)
    assert sorted((c["method"], c["seed"]) for c in planned) == sorted(
        [("supervised", s) for s in range(3)] + [(m, s) for m in ("random#1", "random#2") for s in range(4)])

