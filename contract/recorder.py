"""What the compute core needs from a recorder: passed in, never imported (no mlflow here).
The workers write to it and the driver implements it (orchestrator/record/recorder.py), so it
lives in the contract that both import.

`part` routes a job's values to the run of one of its cells (the cell's `part`: a probe job's
layer, a style job's (content, style) pair); None means every run of the job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol


class Recorder(Protocol):
    def params(self, values: Mapping[str, Any], part: str | None = None) -> None: ...

    def metrics(self, values: Mapping[str, float], step: int, part: str | None = None) -> None: ...

    def artifact(self, path: Path, part: str | None = None) -> None: ...


class MemoryRecorder:
    """Keeps everything in lists: for tests, and for running a job where no store is."""

    def __init__(self) -> None:
        self.logged_params: dict[str | None, dict[str, Any]] = defaultdict(dict)
        self.logged_metrics: dict[str | None, list[tuple[int, dict[str, float]]]] = defaultdict(list)
        self.artifacts: dict[str | None, list[Path]] = defaultdict(list)

    def params(self, values: Mapping[str, Any], part: str | None = None) -> None:
        self.logged_params[part].update(values)

    def metrics(self, values: Mapping[str, float], step: int, part: str | None = None) -> None:
        self.logged_metrics[part].append((step, dict(values)))

    def artifact(self, path: Path, part: str | None = None) -> None:
        self.artifacts[part].append(path)

    def series(self, name: str, part: str | None = None) -> list[float]:
        """The values of one metric in the order they were logged."""
        return [v[name] for _, v in self.logged_metrics[part] if name in v]
