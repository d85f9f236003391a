"""What monosweep keeps in MLflow, as names and plain data: no MLflow import, so pure modules
(status) read it as the MLflow modules write it.

The tag names and run kinds (`sweep`, `pretrain`, `probe`) are what stores already written
hold: renaming one would orphan their runs.
"""

from __future__ import annotations

from dataclasses import dataclass

TAG = "monosweep."
KIND, KEY, ATTEMPT = TAG + "kind", TAG + "key", TAG + "attempt"
HEARTBEAT = TAG + "driver_heartbeat"
PARENT = "mlflow.parentRunId"
# MLflow 3 opens an experiment in its GenAI view unless it is marked as model training.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


@dataclass(frozen=True)
class RunView:
    """What reports and status need of a run, as plain data."""

    run_id: str
    name: str
    key: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_time: int | None
    end_time: int | None
