"""The command line's conventions: --version, whole sentences and exit codes in --help, the
cluster address from RAY_ADDRESS, --json output, and `stop` on a real Ray head (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli.main import SUBCOMMANDS, first_sentence, main
from orchestrator.record import runs
from orchestrator.sweep import prepare
from tests.conftest import FASHION_MNIST, TINY
from tests.test_submit import free_port, head  # noqa: F401  (head: a fixture, used by name)

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"monosweep {version('monosweep')}\n"


def test_first_sentence_joins_wrapped_lines_and_stops_at_the_full_stop():
    assert first_sentence("Rerun the cells (by default\nthe failed ones). Finished runs\nare reused.") == (
        "Rerun the cells (by default the failed ones)."
    )
    assert first_sentence("Run conv1..conv5, e.g. twice.\n\nMore.") == "Run conv1..conv5, e.g. twice."


def _help(capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_gives_every_subcommand_a_whole_sentence(capsys):
    text = _help(capsys)
    listing = text.split("  COMMAND\n", 1)[1].split("\n\n")[0]  # the subcommands' lines, wrapped
    helps: dict[str, str] = {}
    for line in listing.splitlines():
        words = line.split()
        if line.startswith("    ") and not line.startswith("     ") and words[0] in SUBCOMMANDS:
            current, helps[words[0]] = words[0], " ".join(words[1:])
        else:
            helps[current] += " " + " ".join(words)
    assert list(helps) == list(SUBCOMMANDS)
    for name, summary in helps.items():
        assert summary.endswith("."), f"{name}: {summary!r} ends mid-sentence"


def test_help_states_the_exit_codes(capsys):
    codes = _help(capsys).split("exit codes:\n")[1]
    assert [line.split()[0] for line in codes.splitlines() if line.strip()] == ["0", "1", "2", "130"]


@pytest.mark.parametrize("command", [["submit", "FILE"], ["logs", "JOB"], ["stop", "JOB"]])
def test_cluster_commands_need_an_address(command, monkeypatch, write_spec, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    command = [str(write_spec(TINY)) if word == "FILE" else word for word in command]
    assert main(command) == 2
    assert "--address" in (err := capsys.readouterr().err) and "RAY_ADDRESS" in err


@pytest.mark.parametrize("command", [["submit", "FILE"], ["logs", "JOB"], ["stop", "JOB"]])
def test_cluster_commands_take_the_address_from_ray_address(command, monkeypatch, write_spec, capsys):
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("RAY_ADDRESS", address)
    command = [str(write_spec(TINY)) if word == "FILE" else word for word in command]
    assert main(command) == 2
    assert f"no Ray Jobs API at {address}" in capsys.readouterr().err
    given = f"http://127.0.0.1:{free_port()}"
    assert main([*command, "--address", given]) == 2  # --address wins over RAY_ADDRESS
    assert f"no Ray Jobs API at {given}" in capsys.readouterr().err


def test_validate_json(write_spec, capsys):
    spec = write_spec(TINY)
    assert main(["validate", str(spec), "--json"]) == 0
    # random once; rotnet on one photo with two augmentations; each probed at five layers
    assert json.loads(capsys.readouterr().out) == {
        "file": str(spec), "name": "tiny", "cells": 15, "pretrain_jobs": 3, "evaluation_jobs": 3,
    }


def test_status_json_of_a_planned_sweep(write_spec, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = write_spec(TINY + f"tracking_uri: sqlite:///{tmp_path / 'mlflow.db'}\n")
    prepared = prepare(spec)
    # What the driver writes before any job starts: the sweep run and its planned cells.
    runs.open_sweep("tiny", prepared.uri, {"cells.json": json.dumps([c.model_dump() for c in prepared.sweep.cells])})
    assert main(["status", str(spec), "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert {"sweep", "tracking_uri", "cells", "counts", "by_axis", "failed", "running"} <= state.keys()
    assert state["sweep"] == "tiny" and state["cells"] == 15 and state["counts"]["pending"] == 15
    assert state["failed"] == [] and state["running"] == []
    experiment = MlflowClient(prepared.uri).get_experiment_by_name("tiny").experiment_id
    link = f"http://127.0.0.1:5000/#/experiments/{experiment}/runs?workflowType=machine_learning"
    assert state["link"] == link
    assert main(["status", str(spec)]) == 0
    assert (
        f"training runs: {link} (serve them: mlflow ui --backend-store-uri {prepared.uri})" in capsys.readouterr().out
    )


def _runs(store) -> list:
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("tiny")
    return client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []


def _wait_for_running_rotnet(address: str, job: str, store, timeout: float = 240) -> None:
    from orchestrator import ray_driver

    deadline = time.time() + timeout
    while time.time() < deadline:
        logs = ray_driver.job_logs(address, job, follow=False).__next__()
        state = ray_driver.job_status(address, job)
        assert state in ("PENDING", "RUNNING"), f"the job ended {state}:\n{logs}"
        # Only once the driver has made the store (it prints its plan after): an MlflowClient
        # on a missing SQLite file would create its tables alongside the driver.
        if "sweep 'tiny'" in logs and any(
            r.info.status == "RUNNING" and r.data.tags.get("monosweep.kind") == "pretrain"
            and r.data.params.get("method.name") == "rotnet" for r in _runs(store)
        ):
            return
        time.sleep(2)
    raise AssertionError(f"no rotnet pretrain run started on the cluster:\n{logs}")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)")
def test_stop_ends_a_submitted_sweep_and_its_runs_are_killed(head, tmp_path, monkeypatch, capsys):  # noqa: F811
    folder = tmp_path / "sweep"
    folder.mkdir()
    store = tmp_path / "mlflow.db"
    spec = folder / "experiments.yaml"
    spec.write_text(  # one rotnet job far longer than the test
        TINY.replace("{name: rotnet, samples: 128, epochs: 1, batch_size: 32}",
                     "{name: rotnet, samples: 50000, epochs: 1, batch_size: 32}")
        .replace("method: [random, ", "method: [").replace("augmentation: [full, none]", "augmentation: [full]")
        + f"tracking_uri: sqlite:///{store}\n"
    )
    monkeypatch.setenv("RAY_ADDRESS", head)  # every command below finds the cluster from it
    assert main(["submit", str(spec), "--json"]) == 0
    submitted = json.loads(capsys.readouterr().out)
    assert submitted.keys() == {"job_id", "address", "follow", "status", "stop"}
    job = submitted["job_id"]
    assert submitted["address"] == head and submitted["follow"] == f"monosweep logs {job} --address {head} --follow"
    _wait_for_running_rotnet(head, job, store)

    assert main(["stop", job]) == 0
    assert capsys.readouterr().out.strip() == f"job {job}: STOPPED"
    runs = _runs(store)
    assert not [r for r in runs if r.info.status == "RUNNING"]  # the driver marked them before exiting
    assert [r for r in runs if r.data.tags["monosweep.kind"] == "pretrain" and r.info.status == "KILLED"]
    assert [r.info.status for r in runs if r.data.tags["monosweep.kind"] == "sweep"] == ["KILLED"]
    assert main(["logs", job]) == 1  # a stopped job did not succeed
    assert "cancelled:" in (out := capsys.readouterr().out) and f"job {job}: STOPPED" in out
    assert main(["status", str(spec), "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["counts"]["killed"] == 5 and state["running"] == []
    assert main(["stop", job]) == 0  # stopping an ended job says so
    assert "was not running: STOPPED" in capsys.readouterr().out


def test_a_reader_that_leaves_early_gets_no_traceback():
    # `monosweep plan FILE | true`: the reader exits before plan writes
    done = subprocess.run(
        f"{sys.executable} -m orchestrator.cli.main plan examples/five_methods.yaml | true",
        shell=True, cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert done.stderr == ""
