"""The findings view (`monosweep report FILE --view findings`): every finding of the file on
each of its columns, with its estimate, adjusted interval, adjusted p, degrees of freedom and
verdict, computed from the record alone; and the record read as the findings' observations,
which `status` and the sequential run read too.

Verdicts: held, contradicted, undecided (with the seeds that would decide it at the observed
variance) and not testable (with why). The statistics are orchestrator/decide.py's, the looks
orchestrator/rounds.py's; the view names the family, the correction and the interval it shows.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator import decide, report, rounds
from orchestrator.errors import SpecError
from orchestrator.evaluations import EVALUATIONS
from orchestrator.findings import Comparison, resolve
from orchestrator.loading import located
from orchestrator.spec import Spec

HEADER = ["finding", "claim", "comparison", "column", "estimate", "adjusted interval", "adjusted p", "df",
          "variance", "seeds", "verdict", "note"]
CSV_FIELDS = (
    "finding",
    "claim",
    "a",
    "b",
    "column_a",
    "column_b",
    "kind",
    "margin",
    "control",
    "estimate",
    "low",
    "high",
    "p",
    "p_adjusted",
    "level",
    "df",
    "variance",
    "seeds",
    "verdict",
    "look",
    "seeds_to_decide",
    "why",
    "family",
)


def observe(rec: report.SweepRuns, comparisons: Sequence[Comparison]) -> rounds.Observations:
    """The findings' tables seed by seed (the report's tables: rows are row labels, columns the
    kind's), every row, and the (row, seed) pairs whose cells all have a FINISHED run."""
    values: dict = {}
    for table in {c.table for c in comparisons}:
        evaluation, metric, dataset = table
        for t in report.tables(rec, EVALUATIONS[evaluation], metric):
            if t.dataset == dataset:
                values[table] = {row: {col: dict(zip(s.seeds, s.values, strict=True)) for col, s in by_col.items()}
                                 for row, by_col in t.rows.items()}
    finished: dict[tuple[str, int], bool] = defaultdict(lambda: True)
    for cell in rec.cells:
        run = rec.cell_runs.get(cell.key)
        pair = (EVALUATIONS[cell.evaluation].row(cell), cell.seed)
        finished[pair] &= run is not None and run.status == "FINISHED"
    rows = tuple(dict.fromkeys(row for row, _ in finished))
    return rounds.Observations(rows, values, frozenset(p for p, ok in finished.items() if ok))


@dataclass(frozen=True)
class Standing:
    """The findings of a file against its record: where the procedure stands."""

    spec: Spec
    comparisons: list[Comparison]
    seen: rounds.Observations
    replay: rounds.Replay

    @property
    def family(self) -> str:
        """The family and the correction, in words."""
        m, schedule = len(self.comparisons), self.replay.schedule
        words = (f"Holm over the {m} comparison{'s' if m != 1 else ''} (finding, column) this file declares, "
                 f"alpha = {self.spec.alpha:g}")
        if schedule.looks > 1:
            words += (f"; seeds until decided: {schedule.looks} planned looks ({schedule.first} to "
                      f"{len(schedule.order)} seeds), each at alpha/{schedule.looks} (Bonferroni over the looks)")
        return words

    @property
    def where(self) -> str:
        """The look the verdicts come from, and what is not finished yet."""
        r, looks = self.replay, self.replay.schedule.looks
        missing = len(r.planned - self.seen.done)
        if looks == 1:
            return "one look, at the seeds the file lists" + (
                "" if r.complete else f"; {missing} (row, seed) pairs not finished: verdicts on the seeds finished")
        if r.complete:
            why = "the maximum seeds reached" if rounds.needing(r.outcomes) else "nothing left undecided"
            return f"look {r.look} of {looks}, {why}"
        if r.look == 1:
            return (f"look 1 of {looks} is not complete ({missing} (row, seed) pairs not finished): provisional "
                    "verdicts, on what it holds")
        return (f"look {r.look} of {looks} is running ({missing} (row, seed) pairs to finish): verdicts as of "
                f"look {r.look - 1}")

    def level(self) -> float:
        """The Bonferroni level of one comparison at one look: what `seeds to decide` is computed at."""
        return self.spec.alpha / (max(len(self.comparisons), 1) * self.replay.schedule.looks)


def standing(spec: Spec, rec: report.SweepRuns, path: Path) -> Standing:
    """The file's findings on the record `rec`.

    Raises:
        SpecError: a finding names a row or column the record does not hold.
    """
    comparisons, problems = resolve(spec.findings, rec.cells)
    if problems:
        raise SpecError(*located(path, problems))
    seen = observe(rec, comparisons)
    now = rounds.replay(comparisons, seen, rounds.Schedule.of(spec.grid), spec.alpha)
    return Standing(spec, comparisons, seen, now)


def title(s: Standing) -> str:
    return (f"Findings: {s.family}. {s.where[0].upper() + s.where[1:]}. Adjusted p: Holm's, times the looks; adjusted "
            "interval: at level 1 - alpha x p / adjusted p (TOST's 1 - 2 alpha x p / adjusted p for equivalence), so "
            "it excludes 0 (lies inside or wholly outside the margin) exactly where the adjusted p is below alpha. "
            "Variance pooled: the additive model row + seed over the column's rows (df its residual ones); paired: "
            "the comparison's own seeds.")


def _test(c: Comparison) -> str:
    f = c.finding
    if f.kind == "equivalent":
        return f"|{c.a} - {c.b}| < {f.margin:g}"
    boundary = f"{'-' if f.kind == 'less' and f.margin else ''}{f.margin or 0:g}"
    return f"{c.a} - {c.b} {'>' if f.kind == 'greater' else '<'} {boundary}"


def _note(s: Standing, o: rounds.Outcome) -> str:
    r = o.result
    if o.gate is not None:  # its own test, and why it is not read
        own = f"at look {o.look}" if o.decided else "so far"
        return f"{o.gate[1]}: not read (its own test: {r.verdict} {own})"
    if r.verdict == decide.NOT_TESTABLE:
        return r.why
    if o.decided:
        return f"at look {o.look} of {s.replay.schedule.looks}" if s.replay.schedule.looks > 1 else ""
    n = decide.seeds_to_decide(o.sample, r, s.level())
    needs = (f"about {n} seeds would decide it" if n is not None else "no number of seeds decides it")
    return f"{needs} (power {decide.POWER:g} at the observed difference and variance, level {s.level():.2g})"


def body(s: Standing) -> list[list[str]]:
    """The view's rows, one per comparison, entries as text."""
    out = []
    for o in s.replay.outcomes:
        c, r, e = o.comparison, o.result, o.result.evidence
        numbers = ["", "", "", "", "", ""]
        if e is not None and r.interval is not None:
            low, high = r.interval
            numbers = [f"{e.estimate:+.2f}", f"[{low:+.2f}, {high:+.2f}]", f"{r.p_adjusted:.3g}", f"{e.df:g}",
                       e.variance, str(e.seeds)]
        name = c.finding.name + (" (control)" if c.finding.control else "")
        out.append([name, c.finding.claim, _test(c), c.column, *numbers, o.verdict, _note(s, o)])
    return out


def render(s: Standing, fmt: str) -> str:
    """The view as md, latex, html or csv (a row per comparison, numbers unrounded)."""
    if fmt == "csv":
        return to_csv(s)
    return report.layout(title(s), HEADER, body(s), fmt)


def to_csv(s: Standing) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for o in s.replay.outcomes:
        c, r, e = o.comparison, o.result, o.result.evidence
        low, high = r.interval or ("", "")
        numbers = [e.estimate, low, high, r.p, r.p_adjusted, r.level, e.df, e.variance, e.seeds] if e else [""] * 9
        needs = decide.seeds_to_decide(o.sample, r, s.level()) if o.verdict == decide.UNDECIDED else None
        why = o.gate[1] if o.gate else r.why
        writer.writerow([c.finding.name, c.finding.claim, c.a, c.b, c.column_a, c.column_b, c.finding.kind,
                         c.finding.margin or "", c.finding.control, *numbers, o.verdict, o.look or "", needs or "",
                         why, s.family])
    return buffer.getvalue()


def columns(s: Standing) -> dict[str, list[str]]:
    """The view as columns, for MLflow's `log_table`."""
    rows = body(s)
    return {name: [row[i] for row in rows] for i, name in enumerate(HEADER)}
