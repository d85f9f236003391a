"""A recorded job runs the evaluation kind it names: two kinds may share a job model (the
doc allows a kind to reuse ProbeJob), and the one that made the job is the one that runs it.
Real grid, real MLflow store (SQLite), a real random trunk."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from mlflow.tracking import MlflowClient

from contract.jobs import ProbeJob
from orchestrator import jobs
from orchestrator.evaluations import EVALUATIONS
from orchestrator.evaluations.base import EvaluationSettings
from orchestrator.evaluations.linear_probe import LinearProbe
from orchestrator.record import runs
from orchestrator.sweep import prepare

pytestmark = pytest.mark.usefixtures("sweep_sandbox")


class TwinSettings(EvaluationSettings):
    name: Literal["probe_twin"] = "probe_twin"


class ProbeTwin(LinearProbe):
    """The linear probe's cells and job (ProbeJob), its own worker."""

    settings = TwinSettings

    def run(self, job: Any, checkpoint: Path, recorder: Any, workdir: Path, resume: Path | None) -> dict[str, Any]:
        recorder.metrics({"twin": 1.0}, 0)
        return {"twin": 1.0}


SPEC = """\
name: twin
grid:
  method: [random]
  images: [astronaut]
  augmentation: [none]
  evaluation: [probe_twin]
  layer: [conv1]
  probe_dataset: [fashion_mnist]
network: {width: 0.25, input_size: 64}
data_roots: {fashion_mnist: nowhere}
"""


def test_a_kind_that_reuses_probejob_runs_its_own_worker(write_spec, monkeypatch):
    monkeypatch.setitem(EVALUATIONS._entries, "probe_twin", ProbeTwin())  # registered for this test only
    prepared = prepare(write_spec(SPEC))
    (trunk,) = prepared.sweep.pretrain_jobs.values()
    (job,) = prepared.sweep.evaluation_jobs.values()
    assert type(job) is ProbeJob and job.evaluation == "probe_twin"

    tracking = runs.open_sweep("twin", prepared.uri, {}, system_metrics=False)
    jobs.run_pretrain(trunk, tracking)
    # The linear probe's worker would read fashion_mnist from `nowhere` and fail.
    assert jobs.run_evaluation(job, tracking) == {"twin": 1.0}
    (cell,) = job.cells
    client = MlflowClient(tracking.uri)
    (run,) = [r for r in client.search_runs([tracking.experiment_id]) if r.data.tags.get("monosweep.key") == cell.key]
    assert run.info.status == "FINISHED" and run.data.metrics["twin"] == 1.0
    assert run.data.params["evaluation"] == "probe_twin"
