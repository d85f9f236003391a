"""Every run says who ran it, from which code, with which versions, on which machine, and
how the machine was used (MLflow's system metrics), on a real SQLite store."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from orchestrator import jobs
from orchestrator.record import runs
from orchestrator.sweep import prepare
from tests.conftest import TINY

pytestmark = pytest.mark.usefixtures("sweep_sandbox")

RANDOM_ONLY = TINY.replace(
    "method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]", "method: [random]"
)


@pytest.mark.parametrize("on", [True, False])
def test_a_pretrain_run_records_its_provenance_and_system_metrics(write_spec, on):
    spec = write_spec(RANDOM_ONLY + ("" if on else "system_metrics: false\n"))
    prepared = prepare(spec)
    assert prepared.spec.system_metrics is on
    (job,) = prepared.sweep.pretrain_jobs.values()
    tracking = runs.open_sweep("tiny", prepared.uri, {}, system_metrics=prepared.spec.system_metrics)
    run_id = jobs.run_pretrain(job, tracking)  # a random trunk: about a second, under one 10 s interval

    client = MlflowClient(tracking.uri)
    for run in (client.get_run(run_id), client.get_run(tracking.sweep_run_id)):
        tags = run.data.tags
        assert tags["mlflow.user"] and tags["mlflow.source.name"] == "monosweep"
        assert tags["monosweep.host"] and tags["monosweep.version.monosweep"] and tags["monosweep.version.mlflow"]
        assert tags["monosweep.version.torch"]
        if (runs.SOURCE_ROOT / ".git").exists():  # run from a checkout: its commit
            assert tags["mlflow.source.git.commit"] == runs.git_head(runs.SOURCE_ROOT)[0]
            if shutil.which("git"):
                head = subprocess.run(["git", "-C", str(runs.SOURCE_ROOT), "rev-parse", "HEAD"],
                                      capture_output=True, text=True, check=True).stdout.strip()
                assert tags["mlflow.source.git.commit"] == head
    metrics = client.get_run(run_id).data.metrics
    system = {k for k in metrics if k.startswith("system/")}
    if on:
        assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system
        assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100 * 1024
        assert not any(k.startswith("system/") for k in client.get_run(tracking.sweep_run_id).data.metrics)
    else:
        assert not system
