"""`MlflowRecorder`: the compute core's Recorder, writing to MLflow runs, buffered."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag

from orchestrator.record.runs import end_run
from orchestrator.record.schema import TAG
from orchestrator.record.store import client, log_batch, param_text, retry

# A run's params, metrics and tags reach the store at most this often (and before each of its
# artifacts, and when it ends): a write costs 3-30 ms on SQLite, and a probe job's five runs
# writing every epoch of a small job spent a third of its time there.
WRITE_EVERY_S = 5.0


class UnknownPart(KeyError):
    """A value was routed to a part (a cell) the job does not have."""


@dataclass
class _Unwritten:
    """What a run has been given and the store has not yet."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    written: float = field(default_factory=time.monotonic)  # when the store last heard of it


class MlflowRecorder:
    """The compute core's Recorder, writing to runs: `None` -> every run of the job (its one
    run, for a job of one), a part -> that cell's run; any other part is an error. Values are
    buffered per run and written in one log_batch at most every WRITE_EVERY_S seconds, before
    the run's artifacts (so a checkpoint's steps are stored before it) and by `end`. The 5 s are
    checked when the run is next given a value, so a process killed outright loses what came
    since the last write: up to one logging interval (20 steps, an epoch) plus 5 s, which a
    resumed attempt logs again from its checkpoint."""

    def __init__(self, uri: str, runs: Mapping[str | None, str]):
        self.uri, self.client, self.runs = uri, client(uri), runs
        self.unwritten = {run_id: _Unwritten() for run_id in runs.values()}

    def _targets(self, part: str | None) -> list[str]:
        """The runs a value goes to: its part's run, or every run of the job for `None`.

        Raises:
            UnknownPart: `part` names none of the job's cells (a worker's routing bug, which
                would otherwise write one cell's value into every cell's run).
        """
        if part in self.runs:
            return [self.runs[part]]
        if part is None:
            return list(self.runs.values())
        known = ", ".join(repr(p) for p in self.runs)
        raise UnknownPart(f"no run of this job is for part {part!r}; its parts: {known}")

    def params(self, values: Mapping[str, Any], part: str | None = None) -> None:
        for run_id in self._targets(part):
            self.unwritten[run_id].params.update((k, param_text(v)) for k, v in values.items())
            self._write_if_due(run_id)

    def metrics(self, values: Mapping[str, float], step: int, part: str | None = None) -> None:
        now = int(time.time() * 1000)  # the time it was measured, whenever it is written
        batch = [Metric(k, float(v), now, step) for k, v in values.items()]
        for run_id in self._targets(part):
            self.unwritten[run_id].metrics += batch
            self._write_if_due(run_id)

    def tag(self, name: str, value: str, part: str | None = None) -> None:
        for run_id in self._targets(part):
            self.unwritten[run_id].tags[TAG + name] = value
            self._write_if_due(run_id)

    def artifact(self, path: Path, part: str | None = None) -> None:
        for run_id in self._targets(part):
            self._write(run_id)
            retry(self.client.log_artifact, run_id, str(path))

    def text(self, text: str, name: str, part: str | None = None) -> None:
        for run_id in self._targets(part):
            self._write(run_id)
            retry(self.client.log_text, run_id, text, name)

    def flush(self) -> None:
        """Write everything buffered, now."""
        for run_id in self.unwritten:
            self._write(run_id)

    def end(self, error: BaseException | None = None) -> None:
        """Write what is buffered, then close every run (`end_run`: FINISHED, or FAILED or
        KILLED with the error). Where the values cannot be written, a job that succeeded
        raises and leaves its runs RUNNING (a retry reopens them); a failed job's runs are still
        marked with its own error."""
        if error is None:
            self.flush()
        else:
            for run_id in self.unwritten:  # one run's failed write must not cost the others theirs
                with contextlib.suppress(Exception):
                    self._write(run_id)
        for run_id in self.unwritten:
            end_run(self.uri, run_id, error)

    def _write_if_due(self, run_id: str) -> None:
        if time.monotonic() - self.unwritten[run_id].written >= WRITE_EVERY_S:
            self._write(run_id)

    def _write(self, run_id: str) -> None:
        u = self.unwritten[run_id]
        params = [Param(k, v) for k, v in u.params.items()]
        tags = [RunTag(k, v) for k, v in u.tags.items()]
        log_batch(self.client, run_id, u.metrics, params, tags)
        self.unwritten[run_id] = _Unwritten()
