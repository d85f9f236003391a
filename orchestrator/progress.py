"""Pure: the live line's figures, from the reports jobs send while they run.

A job reports through its recorder (`progress`, the share of its steps done, with `step`,
`epoch` and `samples_per_s`: `workers/training.fit` every LOG_EVERY steps, a probe job every
epoch); `Reporting` passes those figures on to a callback the driver side gives (Ray Tune's
`tune.report` in `ray_driver`), and `Board` turns them into the line. Without the reports
from inside jobs, a job counted only when it ended: the line said `cells 0/15 done` for most
of the quickstart, and its ETA, a whole job's time per job left, climbed while jobs ran.

No ray, no mlflow here: the clock and the reports are arguments, so a test drives both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.recorder import Recorder

FIGURES = ("progress", "step", "epoch", "samples_per_s")  # what a job reports while it runs
REPORT_EVERY_S = 2.0  # at most one report a second or two: each is a round trip to the driver


class Reporting:
    """A Recorder that passes everything on, and hands `report` the job's figures whenever the
    job logs a `progress` value, at most every `every` seconds (the first at once)."""

    def __init__(
        self,
        inner: Recorder,
        report: Callable[[dict[str, float]], None],
        every: float = REPORT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.inner, self.report, self.every, self.clock = inner, report, every, clock
        self.last: float | None = None

    def params(self, values: Mapping[str, Any], part: str | None = None) -> None:
        self.inner.params(values, part)

    def metrics(self, values: Mapping[str, float], step: int, part: str | None = None) -> None:
        self.inner.metrics(values, step, part)
        now = self.clock()
        if "progress" in values and (self.last is None or now - self.last >= self.every):
            self.last = now
            figures = {"step": float(step), **{k: float(values[k]) for k in FIGURES if k in values}}
            self.report(figures)

    def artifact(self, path: Path, part: str | None = None) -> None:
        self.inner.artifact(path, part)


@dataclass
class _Running:
    stage: str
    started: float
    cost: float | None = None  # the estimate's FLOPs of a pretrain job, where known
    progress: float = 0.0  # the share of the job done, from its latest report
    samples_per_s: float = 0.0


@dataclass
class Board:
    """Jobs by state and what the running ones last reported -> the live line.

    `total_jobs` counts by stage ({"pretrain": 3, "evaluation": 3}); a job is pending until it starts
    (an evaluation job also while its trunk trains). The ETA is the work left over the slots:
    a running job's rest from its own rate (elapsed x (1 - progress) / progress), a pending
    job's the mean time of its stage's finished jobs and running ones' projected totals (of
    all stages' while its own has none); at least the longest rest of a running job. With
    `costs` (pretrain key -> the estimate's FLOPs, as the run orders them), a pending pretrain
    job is its cost at the seconds per FLOP its stage has shown: the dearest trunks start
    first, and their time is no measure of the cheap ones left (budget_curve's first ETA was
    7 hours for 45 minutes). On an idle machine it falls as the jobs report."""

    total_jobs: dict[str, int]
    total_cells: int
    clock: Callable[[], float] = time.monotonic
    costs: Mapping[str, float] = field(default_factory=dict)  # pretrain key -> FLOPs
    done_cells: int = 0
    done_jobs: int = 0
    failed_jobs: int = 0
    orphaned_jobs: int = 0  # evaluation jobs whose trunk failed: they never run
    running: dict[str, _Running] = field(default_factory=dict)  # by trial (or job) id
    durations: dict[str, list[float]] = field(default_factory=dict)  # finished jobs' times by stage
    per_flop: list[float] = field(default_factory=list)  # finished costed jobs' seconds per FLOP
    unstarted: set[str] = field(default_factory=set)  # costed pretrain keys not started yet
    ended: dict[str, int] = field(default_factory=dict)  # jobs ended (any way) by stage
    slots: int = 1  # the most jobs seen running at once
    start: float = 0.0

    def __post_init__(self) -> None:
        self.start = self.clock()
        self.unstarted = {k for k, c in self.costs.items() if c > 0}

    def started(self, job: str, stage: str, key: str | None = None) -> None:
        cost = self.costs.get(key) if key is not None else None
        self.running[job] = _Running(stage, self.clock(), cost if cost else None)
        self.unstarted.discard(key)  # type: ignore[arg-type]
        self.slots = max(self.slots, len(self.running))

    def reported(self, job: str, figures: Mapping[str, float]) -> None:
        if (run := self.running.get(job)) is not None:
            run.progress = min(1.0, max(0.0, float(figures.get("progress", run.progress))))
            run.samples_per_s = float(figures.get("samples_per_s", 0.0))

    def finished(self, job: str, ok: bool, cells: int = 0) -> None:
        run = self.running.pop(job, None)
        if run is None:
            return
        self.ended[run.stage] = self.ended.get(run.stage, 0) + 1
        if ok:
            self.durations.setdefault(run.stage, []).append(self.clock() - run.started)
            if run.cost:
                self.per_flop.append((self.clock() - run.started) / run.cost)
            self.done_jobs += 1
            self.done_cells += cells
        else:
            self.failed_jobs += 1

    def orphaned(self, stage: str, jobs: int) -> None:
        """`jobs` of `stage` will not run (their trunk failed)."""
        self.orphaned_jobs += jobs
        self.ended[stage] = self.ended.get(stage, 0) + jobs

    def pending(self) -> dict[str, int]:
        return {
            stage: total
            - self.ended.get(stage, 0)
            - sum(r.stage == stage for r in self.running.values())
            for stage, total in self.total_jobs.items()
        }

    def work_done(self) -> float:
        """Jobs done, counting a running job by its share done."""
        return self.done_jobs + sum(r.progress for r in self.running.values())

    def eta(self) -> float | None:
        """Seconds left, or None while nothing tells (no job has reported or ended)."""
        now = self.clock()
        # A job's time, by stage: the finished jobs' and the running ones' projected totals (a
        # stage's first jobs can be unlike the rest: random trunks take no training at all).
        projected: dict[str, list[float]] = {s: list(d) for s, d in self.durations.items()}
        per_flop = list(self.per_flop)
        rests = []
        for run in self.running.values():
            elapsed = now - run.started
            if run.progress > 0:
                rests.append(elapsed * (1 - run.progress) / run.progress)
                projected.setdefault(run.stage, []).append(elapsed / run.progress)
                if run.cost:
                    per_flop.append(elapsed / run.progress / run.cost)
        every = [t for d in projected.values() for t in d]
        if not every:
            return None
        # A stage nothing is known of yet (no evaluation job has run) is taken to cost what the
        # others do: a guess, corrected as soon as one of its jobs reports.
        typical = {s: sum(d) / len(d) for s, d in projected.items() if d}
        anything = sum(every) / len(every)
        rate = sum(per_flop) / len(per_flop) if per_flop else None  # seconds per FLOP shown so far
        for run in self.running.values():
            if run.progress <= 0:  # not reported yet: its cost's time (or its stage's), less what it ran
                whole = rate * run.cost if rate and run.cost else typical.get(run.stage, anything)
                rests.append(max(0.0, whole - (now - run.started)))
        pending, trunks = self.pending(), 0.0
        if rate and self.unstarted:  # the costed trunks left, at that rate
            trunks = rate * sum(self.costs[k] for k in self.unstarted)
            pending["pretrain"] = max(0, pending.get("pretrain", 0) - len(self.unstarted))
        work = sum(rests) + trunks + sum(n * typical.get(s, anything) for s, n in pending.items() if n > 0)
        return max([work / self.slots, *rests])

    def line(self) -> str:
        now = self.clock()
        total = sum(self.total_jobs.values())
        pending = sum(self.pending().values())
        eta = self.eta()
        speed = sum(r.samples_per_s for r in self.running.values())
        share = self.work_done() / total if total else 1.0
        left = "?" if eta is None else duration(eta)
        return (
            f"cells {self.done_cells}/{self.total_cells} done | jobs: {self.done_jobs} done, "
            f"{len(self.running)} running, {self.failed_jobs} failed, {pending} pending"
            + (f", {self.orphaned_jobs} without a trunk" if self.orphaned_jobs else "")
            + f" | {share:.0%} of the work ({self.work_done():.1f}/{total} jobs)"
            + (f", {speed:,.0f} samples/s" if speed else "")
            + f" | {duration(now - self.start)} elapsed, ETA {left}"
        )


def duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"
