"""What monosweep keeps in MLflow, as names and plain data, and where the store is: no MLflow
import, so pure modules (status) read it as the MLflow modules write it, and planning
(`monosweep validate`) resolves the store's URI without loading MLflow.

Run kinds: `sweep`, `pretrain`, and `cell` for the run of one evaluation cell (a linear probe
of a layer, a finetuning, a style-transfer pair: its `evaluation` param says which). Stores
written before evaluations became an axis call cell runs `probe`: they are read as cells
(`kinds_read`), and a cell run of theirs that is rerun is relabelled, so nothing is orphaned.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TAG = "monosweep."
KIND, KEY, ATTEMPT = TAG + "kind", TAG + "key", TAG + "attempt"
HEARTBEAT = TAG + "driver_heartbeat"
SWEEP, PRETRAIN, CELL = "sweep", "pretrain", "cell"
LEGACY_KINDS = {"probe": CELL}  # old name -> the kind it is read as


def kinds_read(kind: str) -> tuple[str, ...]:
    """The kind and the older names of it that stores may still hold."""
    return (kind, *(old for old, new in LEGACY_KINDS.items() if new == kind))
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


def resolve_uri(uri: str) -> str:
    """MLFLOW_TRACKING_URI wins; a relative SQLite path becomes absolute, so Ray workers
    (whose working folder differs) write to the same file."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", uri)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri
