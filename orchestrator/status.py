"""Pure: planned cells + their latest runs -> each cell's state, counts overall and per axis."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from orchestrator.evaluations import coordinates
from orchestrator.grid import Cell
from orchestrator.record.schema import TAG, RunView

# stale: RUNNING in MLflow, but no driver of the sweep is alive (no fresh heartbeat): a run a
# lost driver left, which the next `monosweep run` marks KILLED and reruns.
STATES = ("finished", "failed", "killed", "running", "stale", "pending")
_BY_STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "killed", "RUNNING": "running"}


def axes() -> tuple[str, ...]:
    """What cells are counted and selected by: the shared axes, with every registered
    evaluation kind's coordinates (`layer`, `frozen`, `content`, `style`, a plugin kind's)."""
    return ("method", "images", "augmentation", "evaluation", *coordinates(), "probe_dataset", "seed")


@dataclass(frozen=True)
class CellState:
    cell: Cell
    state: str
    run: RunView | None  # the run that decides the state: the cell's, else its pretrain run's

    @property
    def error(self) -> str:
        if self.run is None:
            return ""
        tags = self.run.tags
        return f"{tags.get(TAG + 'error_class', '')}: {tags.get(TAG + 'error', '')}".strip(": ")

    @property
    def where(self) -> str:
        """`host (node abcd1234) for 2m13s` for a running cell."""
        if self.run is None:
            return ""
        node = self.run.tags.get(TAG + "ray_node", "")[:8]
        elapsed = int(time.time() - (self.run.start_time or 0) / 1000)
        host = self.run.tags.get(TAG + "host", "?") + (f" (node {node})" if node else "")
        return f"{host} for {elapsed // 60}m{elapsed % 60:02d}s"


def cell_states(
    cells: list[Cell], cell_runs: dict[str, RunView], pretrain: dict[str, RunView], driver_alive: bool = True
) -> list[CellState]:
    """A cell's own run decides; without one, a failed, killed or running pretrain run does.
    Without a live driver, a RUNNING run is `stale`: nothing is running it."""
    by_status = {**_BY_STATUS, "RUNNING": "running" if driver_alive else "stale"}
    out = []
    for cell in cells:
        own = cell_runs.get(cell.key)
        if own is not None and own.status in by_status:
            out.append(CellState(cell, by_status[own.status], own))
            continue
        trunk = pretrain.get(cell.pretrain_key)
        if trunk is not None and trunk.status in ("FAILED", "KILLED", "RUNNING"):
            out.append(CellState(cell, by_status[trunk.status], trunk))
        else:
            out.append(CellState(cell, "pending", None))
    return out


def counts(states: list[CellState]) -> dict[str, int]:
    c = Counter(s.state for s in states)
    return {state: c.get(state, 0) for state in STATES}


def by_axis(states: list[CellState]) -> dict[str, dict[str, dict[str, int]]]:
    """axis -> value -> state -> count, for axes with more than one value; cells an axis does
    not apply to (a random trunk's images, a finetuning's layer) are not counted under it."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for axis in axes():
        groups: dict[str, list[CellState]] = defaultdict(list)
        for s in states:
            if (value := getattr(s.cell, axis, None)) is not None:
                groups[str(value)].append(s)
        if len(groups) > 1:
            out[axis] = {value: counts(group) for value, group in groups.items()}
    return out


def select(states: list[CellState], wanted: set[str], where: dict[str, set[str]]) -> set[str]:
    """Keys of the cells in one of the `wanted` states whose axes match every `where` filter."""
    return {
        s.cell.key
        for s in states
        if s.state in wanted and all(str(getattr(s.cell, axis, None)) in values for axis, values in where.items())
    }
