"""`submit` runs the driver as a Ray job on a real Ray head (Jobs API); `logs` follows it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli.main import main
from tests.conftest import FASHION_MNIST, TINY
from tests.processes import stop_session
from tests.services import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]


@pytest.fixture
def head(tmp_path, monkeypatch):
    """A Ray head with its dashboard on loopback, in its own session, stopped afterwards."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster
    dashboard = free_port()
    # Short: Ray's unix sockets live under it, and a socket path may not exceed 107 bytes.
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [Path(sys.executable).parent / "ray", "start", "--head", "--block", f"--port={free_port()}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true",
         "--num-cpus=2", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
         # Every port free, not Ray's defaults: another Ray on this machine may hold those.
         *(f"--{flag}={free_port()}" for flag in (
             "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
             "runtime-env-agent-port", "node-manager-port", "object-manager-port")),
         f"--temp-dir={temp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    from ray.job_submission import JobSubmissionClient

    deadline = time.time() + 90
    while True:
        try:
            JobSubmissionClient(address).list_jobs()
            break
        except Exception:  # noqa: BLE001  (not up yet)
            assert time.time() < deadline and process.poll() is None, "the Ray head did not start"
            time.sleep(1)
    yield address
    stop_session(process, timeout=30)
    shutil.rmtree(temp, ignore_errors=True)


def test_submitted_sweep_runs_on_the_cluster(head, tmp_path, capsys):
    folder = tmp_path / "sweep"
    folder.mkdir()
    store = tmp_path / "mlflow.db"
    spec = folder / "experiments.yaml"
    spec.write_text(
        TINY.replace("method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]", "method: [random]")
        .replace("conv1, conv2, conv3, conv4, conv5", "conv1, conv2")
        + f"tracking_uri: sqlite:///{store}\n"
    )
    assert main(["submit", str(spec), "--address", head]) == 0
    job = capsys.readouterr().out.split()[1]
    assert job.startswith("monosweep-tiny-")
    assert main(["logs", job, "--address", head, "--follow"]) == 0
    out = capsys.readouterr().out
    assert "2/2 cells FINISHED" in out and f"job {job}: SUCCEEDED" in out
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    probes = [r for r in runs if r.data.tags["monosweep.kind"] == "cell"]
    assert len(probes) == 2 and all(r.info.status == "FINISHED" for r in probes)


def test_submit_rejects_a_bad_file_before_contacting_the_cluster(write_spec, capsys):
    spec = write_spec(TINY.replace("method: [random,", "method: [rotnett,"))
    assert main(["submit", str(spec), "--address", "http://127.0.0.1:1"]) == 2
    assert "'rotnett' is not one of" in capsys.readouterr().err
