"""Every way a driver is stopped leaves no run RUNNING, and a later `run` finishes the sweep
with one FINISHED run per key. Timing-sensitive by nature: each test waits for the state it
needs by polling MLflow with a deadline (never a fixed sleep), and a `hang` fault holds a job
in that state, so the signal always lands where the test means it to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from tests.conftest import FASHION_MNIST, TINY
from tests.processes import kill_session
from tests.test_operations import all_runs, kind, one_finished_run_per_key

pytestmark = [
    pytest.mark.usefixtures("sweep_sandbox"),
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]
SPEC = (TINY.replace("conv1, conv2, conv3, conv4, conv5", "conv1, conv2").replace("[full, none]", "[full]")
        + "checkpoint_every: 2\n")
CELLS = 4  # random and rotnet trunks, two layers each


def driver(spec: Path, tmp_path: Path, faults: list[dict]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MONOSWEEP_FAULTS"] = json.dumps(faults)
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli.main", "run", str(spec)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=_ctrl_c_reaches,
    )


def _ctrl_c_reaches() -> None:
    """The driver gets Ctrl-C as from a terminal, even when the tests themselves were started in
    the background (`cmd &` in a script ignores SIGINT, and Python keeps an inherited
    SIG_IGN: the driver would then never see the test's SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def planned(process: subprocess.Popen) -> None:
    """Wait for the driver's plan line: the store exists from then on (reading it earlier would
    race the driver creating its tables)."""
    for line in process.stdout:
        if line.startswith("sweep '"):
            return
    raise AssertionError(f"the driver ended before it planned: {process.wait()}")


def wait_for(
    tmp_path: Path, process: subprocess.Popen, what: str, seen: Callable[[list], bool], timeout: float = 300
) -> None:
    """Poll the store until `seen(runs)`, once the driver has planned; fail at once if the
    driver ends first."""
    planned(process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the driver ended before {what}: {process.stdout.read()}"
        if seen(all_runs(tmp_path)):
            return
        time.sleep(0.5)
    raise AssertionError(f"no {what} within {timeout} s")


def stopped(process: subprocess.Popen, *signals: int, between: float = 0.0) -> str:
    """Send the signals to the driver, `between` seconds apart; its output, once it exited."""
    try:
        for i, sig in enumerate(signals):
            if i:
                time.sleep(between)
            process.send_signal(sig)
        out, _ = process.communicate(timeout=300)
    finally:
        kill_session(process.pid)  # whatever the driver's session left behind
    return out


def running(k: str, **params: str) -> Callable[[list], bool]:
    return lambda runs: any(
        r.info.status == "RUNNING" and all(r.data.params.get(p) == v for p, v in params.items()) for r in kind(runs, k)
    )


def then_finishes(spec: Path, tmp_path: Path) -> None:
    """Nothing is left RUNNING; a plain `run` (no faults) finishes every cell, once."""
    assert not [r for r in all_runs(tmp_path) if r.info.status == "RUNNING"]
    assert main(["run", str(spec)]) == 0
    runs = all_runs(tmp_path)
    one_finished_run_per_key(runs)
    assert len([r for r in kind(runs, "cell") if r.info.status == "FINISHED"]) == CELLS


def test_two_quick_ctrl_c_leave_no_run_running(write_spec, tmp_path):
    spec = write_spec(SPEC)
    process = driver(spec, tmp_path, [{"match": "rotnet*", "stage": "pretrain", "action": "hang", "at_step": 2}])
    wait_for(tmp_path, process, "a hanging rotnet run", running("pretrain", **{"method.name": "rotnet"}))
    out = stopped(process, signal.SIGINT, signal.SIGINT, between=0.2)
    assert process.returncode == 130, out
    assert kind(all_runs(tmp_path), "sweep")[0].info.status == "KILLED"
    then_finishes(spec, tmp_path)


def test_sigterm_while_a_checkpoint_is_written(write_spec, tmp_path):
    spec = write_spec(SPEC)
    faults = [{"match": "rotnet*", "stage": "pretrain", "action": "hang", "at_step": 2, "during": "checkpoint"}]
    process = driver(spec, tmp_path, faults)
    wait_for(tmp_path, process, "a rotnet run writing its checkpoint", running("pretrain", **{"method.name": "rotnet"}))
    out = stopped(process, signal.SIGTERM)
    assert process.returncode == 130 and "cancelled:" in out, out
    assert [r for r in kind(all_runs(tmp_path), "pretrain") if r.info.status == "KILLED"]
    then_finishes(spec, tmp_path)


def test_sigterm_while_an_evaluation_job_starts(write_spec, tmp_path):
    spec = write_spec(SPEC)
    process = driver(spec, tmp_path, [{"stage": "evaluation", "action": "hang"}])  # every probe job, as it starts
    wait_for(tmp_path, process, "a starting probe job", running("cell"))
    out = stopped(process, signal.SIGTERM)
    assert process.returncode == 130, out
    assert [r for r in kind(all_runs(tmp_path), "cell") if r.info.status == "KILLED"]
    then_finishes(spec, tmp_path)


def test_sigterm_after_planning_before_ray_starts(write_spec, tmp_path):
    spec = write_spec(SPEC)
    process = driver(spec, tmp_path, [{"stage": "plan", "action": "hang"}])  # the driver hangs before Ray
    for line in process.stdout:  # the drill says when it holds the driver
        if line.startswith("fault injected: hang (plan"):
            break
    out = stopped(process, signal.SIGTERM)
    assert process.returncode == 130 and "cancelled:" in out, out
    assert "cells 0/" not in out  # Ray's progress line never came: it was stopped before Ray
    assert not all_runs(tmp_path)  # nothing was recorded
    then_finishes(spec, tmp_path)


def test_status_calls_runs_of_a_dead_driver_stale(write_spec, tmp_path, capsys):
    spec = write_spec(SPEC)
    process = driver(spec, tmp_path, [{"match": "rotnet*", "stage": "pretrain", "action": "hang", "at_step": 2}])
    wait_for(tmp_path, process, "a hanging rotnet run", running("pretrain", **{"method.name": "rotnet"}))
    capsys.readouterr()
    assert main(["status", str(spec), "--json"]) == 0
    live = json.loads(capsys.readouterr().out)
    assert live["driver_alive"] and live["counts"]["running"] and not live["counts"]["stale"]
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    kill_session(process.pid)
    assert main(["status", str(spec), "--json"]) == 0
    dead = json.loads(capsys.readouterr().out)
    assert not dead["driver_alive"] and dead["counts"]["stale"] and not dead["counts"]["running"]
    assert all(r["state"] == "stale" for r in dead["running"])
    assert main(["status", str(spec)]) == 0
    assert "RUNNING runs are stale" in capsys.readouterr().out
    assert main(["run", str(spec)]) == 0
    one_finished_run_per_key(all_runs(tmp_path))
