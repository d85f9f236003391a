"""Seeds until decided: the sequential procedure of a file with findings and `seed: {min, max}`,
as a pure replay of what the record holds.

Look 1: every row has seeds 0..min-1. At each look every comparison of the file is tested
(orchestrator/decide.py: Holm over all of them at alpha / K, with K = max - min + 1 planned
looks), and a comparison's verdict is the one of the first look that decides it. Each round
then adds the next seed to the rows of every comparison still undecided, and only to them; an
undecided comparison's seeds grow by one a round, so there are at most K looks, the last at
max seeds.

Looking after every round is optional stopping; the error rate is kept by a correction over
the planned looks (Bonferroni): a false verdict at any look is a false rejection of that
look's Holm procedure, whose family-wise rate is at most alpha / K, so the rate of any false
verdict over the whole run is at most K x alpha / K = alpha, whenever the procedure stops and
however the looks depend on each other. tests/orchestrator/test_decide_simulation.py checks it
by drawing from known distributions through this very code.

A `control` finding (a positive control) gates the others: while a control is not held their
verdicts are not read (undecided), and once a control is contradicted, not testable or still
undecided at the last look, they are not testable. Their tests still run at every look, in the
same Holm family, so reading them after the controls costs no extra correction.

Nothing is kept beside the record: `replay` recomputes the looks from the FINISHED cells (the
same values give the same decisions), so a killed or rerun sweep continues where it stopped
and a seed's cells, keyed by content, never run twice. Only complete looks decide or add seeds;
while the first is incomplete its verdicts are provisional, on what it holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from orchestrator import decide
from orchestrator.evaluations import EVALUATIONS
from orchestrator.findings import Comparison, TableId
from orchestrator.grid import Expansion
from orchestrator.spec import Grid, SeedRange, Spec

Table = Mapping[str, Mapping[str, Mapping[int, float]]]  # row -> column -> seed -> value


def adds_seeds(spec: Spec) -> bool:
    """Whether the file adds seeds until its findings are decided (`seed: {min, max}`)."""
    return isinstance(spec.grid.seed, SeedRange)


@dataclass(frozen=True)
class Schedule:
    """The order in which rows get their seeds, and how many every row runs first."""

    order: tuple[int, ...]
    first: int

    @classmethod
    def of(cls, grid: Grid) -> Schedule:
        """A seed range's (seeds 0..max-1, min first), or a list's (all of them at once: one look)."""
        seed = grid.seed
        return cls(tuple(grid.seeds), seed.min if isinstance(seed, SeedRange) else len(seed))

    @property
    def looks(self) -> int:
        return len(self.order) - self.first + 1


@dataclass(frozen=True)
class Observations:
    """What the record holds: every row, the values seed by seed of the findings' tables, and
    the (row, seed) pairs whose cells are all FINISHED."""

    rows: tuple[str, ...]
    values: Mapping[TableId, Table]
    done: frozenset[tuple[str, int]]


@dataclass(frozen=True)
class Outcome:
    """A comparison's standing: its result at the look that decided it, else at the last look."""

    comparison: Comparison
    sample: decide.Sample
    result: decide.Result
    look: int | None  # the look that decided it; None: not decided
    gate: tuple[str, str] | None = None  # (verdict as read, why): a control that is not held

    @property
    def decided(self) -> bool:
        return self.look is not None

    @property
    def verdict(self) -> str:
        """The verdict as read: its own, unless a control holds it back."""
        return self.gate[0] if self.gate else self.result.verdict


@dataclass(frozen=True)
class Replay:
    """Where the procedure stands: the current look, the seeds each row has at it, whether
    its cells are all FINISHED, what it added, and every comparison's outcome."""

    schedule: Schedule
    look: int
    counts: dict[str, int]  # seeds each row has at this look
    complete: bool
    adding: dict[str, int] = field(default_factory=dict)  # the seed this look added to a row
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Complete, and nothing left to add: every comparison decided (or not testable), or the last look."""
        return self.complete and (self.look == self.schedule.looks or not needing(self.outcomes))

    @property
    def planned(self) -> set[tuple[str, int]]:
        """The (row, seed) pairs planned so far."""
        return {(row, seed) for row, n in self.counts.items() for seed in self.schedule.order[:n]}


def replay(comparisons: Sequence[Comparison], seen: Observations, schedule: Schedule, alpha: float) -> Replay:
    """Run the procedure on what `seen` holds, look by look, until a look is incomplete, every
    comparison is decided, or the last look."""
    counts = dict.fromkeys(seen.rows, schedule.first)
    decided: dict[int, tuple[decide.Result, decide.Sample, int]] = {}
    latest: list[tuple[decide.Sample, decide.Result]] = []
    adding: dict[str, int] = {}
    look = 1
    while True:
        planned = {(row, seed) for row, n in counts.items() for seed in schedule.order[:n]}
        complete = planned <= seen.done
        if complete or look == 1:  # an incomplete later look waits; the first is shown as it stands
            samples = _samples(comparisons, seen, counts, schedule)
            latest = list(zip(samples, decide.decide(samples, alpha, schedule.looks), strict=True))
            if complete:
                for i, (sample, result) in enumerate(latest):
                    if i not in decided and result.verdict in decide.DECIDED:
                        decided[i] = (result, sample, look)
        outcomes = gated([
            Outcome(c, decided[i][1], decided[i][0], decided[i][2]) if i in decided else Outcome(c, *latest[i], None)
            for i, c in enumerate(comparisons)
        ], last=complete and look == schedule.looks)
        now = Replay(schedule, look, dict(counts), complete, adding, outcomes)
        if not complete or now.finished:
            return now
        needed = {row for o in needing(outcomes) for row in o.comparison.rows}
        adding = {row: schedule.order[counts[row]] for row in counts if row in needed}  # in grid order
        counts.update({row: counts[row] + 1 for row in adding})
        look += 1


def needing(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """The comparisons that more seeds may decide and that will be read: undecided, not
    untestable, not held back for good by a control."""
    return [o for o in outcomes if not o.decided and o.result.verdict == decide.UNDECIDED
            and (o.gate is None or o.gate[0] == decide.UNDECIDED)]


def gated(outcomes: list[Outcome], last: bool) -> list[Outcome]:
    """The outcomes with every non-control comparison held back while a control is not held:
    undecided while the control may still hold, not testable once it cannot (contradicted, not
    testable, or undecided at the `last` look)."""
    for control in (o for o in outcomes if o.comparison.finding.control):
        state = control.result.verdict
        if control.decided and state == decide.HELD:
            continue
        final = state != decide.UNDECIDED or last
        verdict = decide.NOT_TESTABLE if final else decide.UNDECIDED
        c = control.comparison
        why = f"the control {c.finding.name!r} ({c.column}) is {state}" + ("" if final else " so far")
        return [o if o.comparison.finding.control else replace(o, gate=(verdict, why)) for o in outcomes]
    return outcomes


def _samples(
    comparisons: Sequence[Comparison], seen: Observations, counts: Mapping[str, int], schedule: Schedule
) -> list[decide.Sample]:
    """Each comparison's values at this look (each row's seeds so far), with one additive model
    per pooled column."""
    allowed = {row: set(schedule.order[:n]) for row, n in counts.items()}

    def values(table: TableId, row: str, column: str) -> dict[int, float]:
        held = seen.values.get(table, {}).get(row, {}).get(column, {})
        return {s: v for s, v in held.items() if s in allowed.get(row, ())}

    models: dict[tuple[TableId, str], decide.Additive] = {}
    out = []
    for c in comparisons:
        model = None
        if c.pooled:
            if (c.table, c.column_a) not in models:
                rows = seen.values.get(c.table, {})
                models[c.table, c.column_a] = decide.Additive.of({r: values(c.table, r, c.column_a) for r in rows})
            model = models[c.table, c.column_a]
        f = c.finding
        out.append(decide.Sample(f.kind, f.margin, values(c.table, c.a, c.column_a), values(c.table, c.b, c.column_b),
                                 c.a, c.b, model))
    return out


def restrict(sweep: Expansion, planned: set[tuple[str, int]]) -> Expansion:
    """The expanded grid cut to the planned (row, seed) pairs: their cells, their jobs (the
    cells of one job share a trunk, hence a row and a seed)."""
    cells = [c for c in sweep.cells if (EVALUATIONS[c.evaluation].row(c), c.seed) in planned]
    jobs = {c.job_key for c in cells}
    return Expansion(
        sweep.spec, cells,
        {k: j for k, j in sweep.pretrain_jobs.items() if k in {c.pretrain_key for c in cells}},
        {k: j for k, j in sweep.evaluation_jobs.items() if k in jobs},
    )


def extremes(sweep: Expansion, comparisons: Sequence[Comparison], schedule: Schedule) -> tuple[Expansion, Expansion]:
    """The grid at the fewest seeds (every row at its first) and at the most (the findings'
    rows at all of theirs): what `plan --estimate` prices."""
    rows = {EVALUATIONS[c.evaluation].row(c) for c in sweep.cells}
    compared = {row for c in comparisons for row in c.rows}
    least = {(row, s) for row in rows for s in schedule.order[: schedule.first]}
    return restrict(sweep, least), restrict(sweep, least | {(row, s) for row in compared for s in schedule.order})
