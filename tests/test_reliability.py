"""Bad environments answered before compute is spent; faults that must not lose results;
credentials that must never reach the record."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient

from orchestrator import jobs
from orchestrator.cli.main import main
from orchestrator.record import runs
from orchestrator.record.recorder import MlflowRecorder
from orchestrator.sweep import prepare, sqlite_warning
from tests.conftest import FASHION_MNIST, TINY
from workers.methods.base import DivergedLoss

pytestmark = pytest.mark.usefixtures("sweep_sandbox")
needs_data = pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return: nothing listens there


@pytest.mark.parametrize("command", ["run", "status", "report"])
def test_unreachable_tracking_server_fails_fast(command, write_spec, capsys):
    uri = f"http://127.0.0.1:{closed_port()}"
    spec = write_spec(TINY + f"tracking_uri: {uri}\n")
    started = time.monotonic()
    assert main([command, str(spec)]) == 2
    assert time.monotonic() - started < 20  # MLflow's own retries would take minutes
    err = capsys.readouterr().err
    assert f"tracking_uri: cannot reach the MLflow server at {uri}" in err
    assert not ray.is_initialized()


def test_unwritable_sqlite_folder(write_spec, capsys):
    spec = write_spec(TINY + "tracking_uri: sqlite:////no/such/folder/mlflow.db\n")
    assert main(["run", str(spec)]) == 2
    assert "/no/such/folder does not exist" in capsys.readouterr().err


@pytest.mark.slow
@needs_data
def test_gpus_asked_of_a_cluster_without_gpus(write_spec, tmp_path, capsys):
    spec = write_spec(TINY + "resources: {pretrain: {cpus: 1, gpus: 1}}\n")
    assert main(["run", str(spec)]) == 2
    assert "a job asks for 1.0 GPU(s), but the Ray cluster has 0" in capsys.readouterr().err
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_experiment_by_name("tiny") is None  # nothing recorded


def test_sqlite_warning_only_for_parallel_writers():
    assert sqlite_warning("sqlite:////x/mlflow.db", 2) is None
    assert "use a tracking server" in sqlite_warning("sqlite:////x/mlflow.db", 8)
    assert sqlite_warning("http://127.0.0.1:5000", 64) is None


@needs_data
def test_corrupt_resume_checkpoint_starts_over_with_a_warning(write_spec, tmp_path):
    spec = write_spec(
        TINY.replace("method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]",
                     "method: [{name: rotnet, samples: 128, epochs: 1, batch_size: 16}]")
        .replace("augmentation: [full, none]", "augmentation: [full]")
    )
    prepared = prepare(spec)
    (job,) = prepared.sweep.pretrain_jobs.values()
    tracking = runs.open_sweep("tiny", prepared.uri, {})
    run_id, _ = runs.start_run(tracking, "pretrain", job.key, job.label, tracking.sweep_run_id, {}, {})
    garbage = tmp_path / "resume.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    MlflowRecorder(tracking.uri, {None: run_id}).artifact(garbage)
    runs.end_run(tracking.uri, run_id, RuntimeError("worker lost"))
    assert jobs.run_pretrain(job, tracking) == run_id  # reopened as attempt 2, and finished
    run = MlflowClient(tracking.uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["monosweep.attempt"] == "2"
    assert run.data.tags["monosweep.warning"] == "corrupt resume.pt ignored: the job started over"
    assert "resumed_from_step" not in run.data.metrics


def test_diverging_loss_fails_the_pretrain_run_as_diverged(write_spec, tmp_path, capsys):
    # RotNet's cross-entropy over 4 rotations starts near ln 4 = 1.39: finite, but above 0.5.
    spec = write_spec(
        TINY.replace("method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]",
                     "method: [{name: rotnet, samples: 128, epochs: 1, batch_size: 16}]")
        .replace("augmentation: [full, none]", "augmentation: [full]")
        + "divergence_threshold: 0.5\n"
    )
    prepared = prepare(spec)
    (job,) = prepared.sweep.pretrain_jobs.values()
    cells = json.dumps([c.model_dump() for c in prepared.sweep.cells])
    tracking = runs.open_sweep("tiny", prepared.uri, {"cells.json": cells})
    with pytest.raises(DivergedLoss):
        jobs.run_pretrain(job, tracking)
    client = MlflowClient(tracking.uri)
    (run,) = [r for r in client.search_runs([tracking.experiment_id])
              if r.data.tags.get("monosweep.kind") == "pretrain"]
    assert run.info.status == "FAILED"
    assert run.data.tags["monosweep.failure_reason"] == "diverged"
    assert "above divergence_threshold 0.5" in run.data.tags["monosweep.error"]
    assert "checkpoint.pt" not in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert main(["status", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "finished 0 | failed 5 |" in out  # its five cells (conv1..conv5) have no trunk
    assert out.count("DivergedLoss: pretext loss") == 5


@pytest.mark.slow
def test_a_diverged_job_is_not_retried_by_the_sweep(write_spec, tmp_path, capsys):
    # Seeded training repeats its loss exactly, so the `retries: 2` of the spec would only
    # repeat the failure: the job ends FAILED once, on attempt 1, and the sweep says so.
    spec = write_spec(
        TINY.replace("method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]",
                     "method: [{name: rotnet, samples: 128, epochs: 1, batch_size: 16}]")
        .replace("augmentation: [full, none]", "augmentation: [full]")
        .replace("retries: 1", "retries: 2")
        + "divergence_threshold: 0.5\n"
    )
    assert main(["run", str(spec)]) == 1
    assert "jobs: 0 done, 0 running, 1 failed" in capsys.readouterr().err
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    (run,) = [r for r in runs if r.data.tags.get("monosweep.kind") == "pretrain"]
    assert run.info.status == "FAILED" and run.data.tags["monosweep.failure_reason"] == "diverged"
    assert run.data.tags["monosweep.attempt"] == "1"


@pytest.mark.slow
@needs_data
def test_credentials_never_reach_the_record(write_spec, tmp_path, monkeypatch, capfd):
    secrets = {"MLFLOW_TRACKING_USERNAME": "user-3f9a1c", "MLFLOW_TRACKING_PASSWORD": "pw-7d2e4b",
               "AWS_SECRET_ACCESS_KEY": "aws-91b6c0"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    spec = write_spec(TINY.replace("conv1, conv2, conv3, conv4, conv5", "conv1").replace("[full, none]", "[full]"))
    assert main(["run", str(spec)]) == 0
    printed = "".join(capfd.readouterr())
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny").experiment_id
    texts = [printed]
    for run in client.search_runs([experiment]):
        texts += [*run.data.params.values(), *run.data.tags.values()]
        for artifact in client.list_artifacts(run.info.run_id):
            if artifact.path.endswith((".json", ".txt")):
                texts.append(Path(client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path))).read_text())
    texts += [p.read_text(errors="ignore") for p in Path(tmp_path / ".monosweep").rglob("*") if p.is_file()]
    assert len(texts) > 20
    for value in secrets.values():
        assert not [t for t in texts if value in t], value
