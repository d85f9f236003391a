"""The paired view of a report table: each row minus a reference row (random by default), seed
by seed, with a 95% confidence interval of the mean difference.

Only seeds finished in both rows pair; the interval is Student's t over those n seeds, mean ±
t(0.975, n-1) · sd / √n, and an entry is marked `*` where it excludes 0. One seed gives no
interval, and the entry says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import UserError
from orchestrator.report import Stat, Table

CONFIDENCE = 0.95


def t_quantile(p: float, df: int) -> float:
    """Student's t distribution's `p` quantile with `df` degrees of freedom."""
    from scipy import stats  # about a second to import: only a paired report pays it

    return float(stats.t.ppf(p, df))


def interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% t-interval of the mean of `values`; None for fewer than two."""
    n = len(values)
    if n < 2:
        return None
    mean = statistics.mean(values)
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return mean - half, mean + half


@dataclass
class Difference(Stat):
    """A paired-view entry: `values` are the row's differences to the reference, a seed each."""

    @property
    def ci(self) -> tuple[float, float] | None:
        return interval(self.values)

    def text(self, digits: int = 2) -> str:
        if not self.values:
            return super().text(digits)
        out = f"{self.mean:+.{digits}f}"
        ci = self.ci
        if ci is None:
            return f"{out} (n=1, no CI)"
        low, high = ci
        mark = " *" if low > 0 or high < 0 else ""
        return f"{out} [{low:+.{digits}f}, {high:+.{digits}f}]{mark} (n={len(self.values)})"


def difference(entry: Stat, reference: Stat) -> Difference:
    """`entry` minus `reference` over the seeds finished in both; the entry's other seeds keep
    their states, its finished ones without a reference seed are `unpaired`."""
    base = dict(zip(reference.seeds, reference.values, strict=True))
    pairs = [(seed, value - base[seed]) for seed, value in zip(entry.seeds, entry.values, strict=True) if seed in base]
    unpaired = ["unpaired"] * (len(entry.values) - len(pairs))
    return Difference([d for _, d in pairs], entry.states + unpaired, [seed for seed, _ in pairs])


def reference_row(table: Table, reference: str) -> str | None:
    """The row `reference` names: the row of that label, else the one row of that method
    (`random`); None where the table has none.

    Raises:
        UserError: several rows are of method `reference`.
    """
    if reference in table.rows:
        return reference
    rows = [label for label in table.rows if label.split()[0] == reference]
    if len(rows) > 1:
        raise UserError(f"--reference {reference!r}: {table.title} has {len(rows)} such rows "
                        f"({', '.join(rows)}); name one by its whole label")
    return rows[0] if rows else None


def paired(table: Table, reference: str = "random") -> Table:
    """The table's rows minus its `reference` row, seed by seed; no rows where it has none."""
    view = Table(table.dataset, table.columns, {}, "paired", table.evaluation, table.metric, reference)
    base = reference_row(table, reference)
    if base is None:
        return view
    for label, by_column in table.rows.items():
        view.rows[label] = {
            col: Difference(states=["reference"])
            if label == base
            else difference(by_column[col], table.rows[base][col])
            for col in table.columns
        }
    return view
