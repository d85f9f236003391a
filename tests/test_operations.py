"""Operating a sweep through real Ray and MLflow: a worker killed mid-training resumes from
its checkpoint; a driver killed with SIGKILL is replaced; random failures are resubmitted;
SIGTERM cancels. Faults are injected with the `faults` knob, so the failures are real ones."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient

from orchestrator.cli.main import main
from orchestrator.faults import Fault
from orchestrator.grid import expand
from orchestrator.loading import load_spec
from tests.conftest import FASHION_MNIST, TINY
from tests.processes import kill_session

pytestmark = [
    pytest.mark.usefixtures("sweep_sandbox"),
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]
ROOT = Path(__file__).parents[1]


def all_runs(tmp_path: Path, name: str = "tiny") -> list:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id], max_results=10_000) if experiment else []


def kind(runs: list, k: str) -> list:
    return [r for r in runs if r.data.tags.get("monosweep.kind") == k]


def one_finished_run_per_key(runs: list) -> None:
    for k in ("pretrain", "cell"):
        finished = [r.data.tags["monosweep.key"] for r in kind(runs, k) if r.info.status == "FINISHED"]
        assert len(finished) == len(set(finished)), k
    assert not [r for r in runs if r.info.status == "RUNNING"]


def test_killed_worker_resumes_from_its_checkpoint(write_spec, tmp_path):
    spec = write_spec(
        TINY.replace("method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]",
                     "method: [{name: rotnet, samples: 512, epochs: 1, batch_size: 16}]")
        .replace("augmentation: [full, none]", "augmentation: [full]")
        .replace("conv1, conv2, conv3, conv4, conv5", "conv1")
        + "checkpoint_every: 8\n"
        + "faults: [{stage: pretrain, action: kill, at_step: 20}]\n"  # the process dies at step 20
    )
    assert main(["run", str(spec)]) == 0
    runs = all_runs(tmp_path)
    (pretrain,) = kind(runs, "pretrain")
    assert pretrain.info.status == "FINISHED" and pretrain.data.tags["monosweep.attempt"] == "2"
    assert pretrain.data.metrics["resumed_from_step"] == 16  # the last checkpoint before step 20
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    steps = [m.step for m in client.get_metric_history(pretrain.info.run_id, "pretext_loss")]
    assert sorted(set(steps)) == [20, 32]  # step 20 logged by both attempts, then the end
    (probe,) = kind(runs, "cell")
    assert probe.info.status == "FINISHED"
    one_finished_run_per_key(runs)


def test_killed_finetuning_resumes_from_its_checkpoint(write_spec, tmp_path):
    spec = write_spec(
        TINY.replace("method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]", "method: [random]")
        .replace("augmentation: [full, none]", "augmentation: [full]")
        .replace("  layer:", "  evaluation: [{name: finetune_frozen, frozen: [2]}]\n  layer:")
        + "finetune: {preset: fast, epochs: 2, batch_size: 32, train_samples: 640, test_samples: 200}\n"
        + "checkpoint_every: 8\n"
        + "faults: [{stage: evaluation, action: kill, at_step: 20}]\n"  # 40 steps; the process dies at 20
    )
    assert main(["run", str(spec)]) == 0
    runs = all_runs(tmp_path)
    (finetuning,) = kind(runs, "cell")
    assert finetuning.info.status == "FINISHED" and finetuning.data.tags["monosweep.attempt"] == "2"
    assert finetuning.data.metrics["resumed_from_step"] == 16  # the last checkpoint before step 20
    assert 0 < finetuning.data.metrics["top1"] <= 100
    one_finished_run_per_key(runs)


def _mixed_seed(spec_path: Path) -> int:
    """A fault seed under which some, not all, probe jobs of the sweep fail."""
    sweep = expand(load_spec(spec_path), spec_path.parent)
    for seed in range(100):
        fault = Fault(action="fail", stage="evaluation", rate=0.5, seed=seed)
        hit = [fault.hits("evaluation", j.label, j.key, 1) for j in sweep.evaluation_jobs.values()]
        if any(hit) and not all(hit):
            return seed
    raise AssertionError("no mixed seed")


def test_random_failures_then_resubmit(write_spec, tmp_path, capsys, monkeypatch):
    spec = write_spec(
        TINY.replace("conv1, conv2, conv3, conv4, conv5", "conv1, conv2").replace("retries: 1", "retries: 0")
    )
    seed = _mixed_seed(spec)
    monkeypatch.setenv(
        "MONOSWEEP_FAULTS", json.dumps([{"action": "fail", "stage": "evaluation", "rate": 0.5, "seed": seed}])
    )
    assert main(["run", str(spec)]) == 1  # some cells failed
    first = all_runs(tmp_path)
    failed = [r for r in kind(first, "cell") if r.info.status == "FAILED"]
    assert failed and len(failed) < 6
    assert all(r.data.tags["monosweep.error_class"] == "InjectedFault" for r in failed)
    capsys.readouterr()

    assert main(["status", str(spec), "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["counts"]["failed"] == len(failed) and state["counts"]["finished"] == 6 - len(failed)
    assert all("InjectedFault: injected fault" in f["error"] for f in state["failed"])
    assert set(state["by_axis"]) >= {"method", "layer"}

    monkeypatch.setenv("MONOSWEEP_FAULTS", "[]")  # the drill is over
    ray.shutdown()
    assert main(["resubmit", str(spec)]) == 0
    assert f"resubmitting {len(failed)} of 6 cells" in capsys.readouterr().out
    after = all_runs(tmp_path)
    one_finished_run_per_key(after)
    assert all(r.info.status == "FINISHED" for r in kind(after, "cell")) and len(kind(after, "cell")) == 6
    # The pretrain runs were reused, not retrained.
    before = {r.info.run_id: (r.info.end_time, r.data.tags["monosweep.attempt"]) for r in kind(first, "pretrain")}
    assert {
        r.info.run_id: (r.info.end_time, r.data.tags["monosweep.attempt"]) for r in kind(after, "pretrain")
    } == before
    # Reruns reopened the failed runs, under the same sweep run, as attempt 2.
    again = {r.info.run_id: r for r in kind(after, "cell")}
    assert all(again[r.info.run_id].data.tags["monosweep.attempt"] == "2" for r in failed)
    assert len(kind(after, "sweep")) == 1


SLOW = TINY.replace(
    "{name: rotnet, samples: 128, epochs: 1, batch_size: 32}",
    "{name: rotnet, samples: 20000, epochs: 1, batch_size: 32}",
)


def _driver(spec: Path, tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MONOSWEEP_FAULTS")}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli.main", "run", str(spec)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def _wait_for_running_rotnet(tmp_path: Path, driver: subprocess.Popen, timeout: float = 120) -> None:
    for line in driver.stdout:  # the driver has made the store once it prints its plan
        if line.startswith("sweep "):
            break
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert driver.poll() is None, driver.stdout.read()
        runs = all_runs(tmp_path)
        if any(
            r.info.status == "RUNNING" and r.data.params.get("method.name") == "rotnet" for r in kind(runs, "pretrain")
        ):
            return
        time.sleep(1)
    raise AssertionError("no rotnet pretrain run started")


def test_sigterm_cancels_and_marks_runs_killed(write_spec, tmp_path):
    spec = write_spec(SLOW)
    driver = _driver(spec, tmp_path)
    try:
        _wait_for_running_rotnet(tmp_path, driver)
        driver.send_signal(signal.SIGTERM)
        out, _ = driver.communicate(timeout=120)
    finally:
        kill_session(driver.pid)  # whatever the driver's session left behind
    assert driver.returncode == 130, out
    assert "cancelled:" in out
    runs = all_runs(tmp_path)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert [r for r in kind(runs, "pretrain") if r.info.status == "KILLED"]
    assert kind(runs, "sweep")[0].info.status == "KILLED"


def test_driver_killed_then_run_again_completes(write_spec, tmp_path):
    spec = write_spec(SLOW)
    driver = _driver(spec, tmp_path)
    try:
        _wait_for_running_rotnet(tmp_path, driver)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        kill_session(driver.pid)  # whatever the driver's session left behind
    left = [r for r in all_runs(tmp_path) if r.info.status == "RUNNING"]
    assert left  # the dead driver left runs RUNNING
    assert main(["run", str(spec)]) == 0
    runs = all_runs(tmp_path)
    one_finished_run_per_key(runs)
    assert len([r for r in kind(runs, "cell") if r.info.status == "FINISHED"]) == 15
    orphans = {r.info.run_id for r in left if r.data.tags.get("monosweep.kind") != "sweep"}
    reopened = [r for r in runs if r.info.run_id in orphans]
    assert all(r.data.tags["monosweep.attempt"] == "2" for r in reopened)  # marked KILLED, then rerun


def test_a_fast_trunks_probes_finish_before_a_slow_trunk_ends(write_spec, tmp_path, capsys):
    """No stage barrier: the random trunk (no training) is probed while RotNet still trains on
    20,000 samples, so the random cell's run ends before the RotNet pretrain run does. The
    RotNet job reports from inside while it trains: the live line counts it by its share
    done (a fractional number of jobs), and its progress is an MLflow metric every 20 steps.
    Mutations: run the evaluations only after every pretrain job has ended (the barrier back)
    and the first assertion on end times fails; pass no `report` to the jobs (no reports from
    inside) and the live line never shows a fractional job count."""
    spec = write_spec(
        SLOW.replace("augmentation: [full, none]", "augmentation: [full]")
        .replace("conv1, conv2, conv3, conv4, conv5", "conv1")
    )
    assert main(["run", str(spec)]) == 0
    runs = all_runs(tmp_path)
    one_finished_run_per_key(runs)
    trunks = {r.data.params["method.name"]: r for r in kind(runs, "pretrain")}
    cells = {r.data.params["method"]: r for r in kind(runs, "cell")}
    assert set(trunks) == set(cells) == {"random", "rotnet"}
    assert cells["random"].info.end_time < trunks["rotnet"].info.end_time
    assert cells["random"].info.start_time < trunks["rotnet"].info.end_time
    lines = capsys.readouterr().err.splitlines()
    shares = [float(m.group(1)) for line in lines if (m := re.search(r"\((\d+\.\d)/4 jobs\)", line))]
    assert any(share != int(share) for share in shares), lines
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    progress = [m.value for m in client.get_metric_history(trunks["rotnet"].info.run_id, "progress")]
    assert len(progress) > 5 and progress == sorted(progress) and progress[-1] == 1.0
