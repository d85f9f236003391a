"""The tests of findings and their verdicts: pure functions from values seed by seed to results.
scipy and statsmodels compute; this module declares what is compared and reads the answers.

A comparison (one finding on one column, orchestrator/findings.py) is the difference a - b,
paired by seed, with its variance either
- pooled (the default where both sides are one column): the additive model value ~ row + seed
  over every row and seed the column holds (statsmodels' OLS, the seed a block factor); the
  difference is the contrast of the two rows' effects, its degrees of freedom the model's
  residual ones; or
- per comparison (`variance: paired`, and always for two different columns): Student's paired t
  over the seeds both sides finished (scipy's `ttest_rel`; statsmodels' `ttost_paired`).

Each comparison has one p, the p of the decision it can reach:
- greater, less: the two-sided p of a - b = its boundary (0, or +margin for greater and -margin
  for less: "beats it by more than the margin"); rejected, the side of the estimate says held
  or contradicted;
- equivalent (|a - b| < margin): the smaller of TOST's p (both one-sided tests against the
  margins: held) and the p of a - b beyond the nearer margin (contradicted).
Multiplicity: Holm over every comparison of the file (statsmodels' `multipletests`), not
testable ones counted with p = 1, times the number of looks when seeds are added until
decided (Bonferroni over the planned looks, orchestrator/rounds.py): the adjusted p. A verdict
is reached where the adjusted p is below alpha.

The adjusted interval is the confidence interval at level 1 - alpha * p / p_adjusted (TOST's
1 - 2 alpha * p / p_adjusted for equivalence): the level at which the procedure judges this
comparison, so it excludes 0 (lies inside or wholly outside the margin) exactly when the
adjusted p is below alpha. For the comparison with the smallest p that is Bonferroni's
1 - alpha / (comparisons x looks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

HELD, CONTRADICTED, UNDECIDED, NOT_TESTABLE = "held", "contradicted", "undecided", "not testable"
DECIDED = (HELD, CONTRADICTED)
POWER = 0.8  # of the seeds an undecided comparison needs
TINY = 1e-9  # a spread this small relative to the values is rounding: no variance

Seeds = Mapping[int, float]  # seed -> value
Column = Mapping[str, Seeds]  # row -> seed -> value: one column of one table


@dataclass(frozen=True)
class Additive:
    """value ~ row + seed over one column: statsmodels' OLS fit, and the order of its rows
    (the first is the baseline, without a coefficient)."""

    fit: Any  # statsmodels RegressionResults; None: fewer values than the model has parameters + 1
    rows: tuple[str, ...]

    @classmethod
    def of(cls, column: Column) -> Additive:
        """The model of every (row, seed) value the column holds."""
        from statsmodels.regression.linear_model import OLS

        rows = tuple(r for r, values in column.items() if values)
        seeds = sorted({s for r in rows for s in column[r]})
        points = [(r, s, v) for r in rows for s, v in column[r].items()]
        if not points or len(points) <= len(rows) + len(seeds) - 1:
            return cls(None, rows)
        design = np.array(
            [[1.0] + [float(r == other) for other in rows[1:]] + [float(s == other) for other in seeds[1:]]
             for r, s, _ in points]
        ).reshape(len(points), len(rows) + len(seeds) - 1)
        return cls(OLS(np.array([v for _, _, v in points]), design).fit(), rows)

    def contrast(self, a: str, b: str) -> np.ndarray:
        """The coefficients' weights of a's effect minus b's."""
        weights = np.zeros(len(self.fit.params))
        for row, sign in ((a, 1.0), (b, -1.0)):
            if row != self.rows[0]:
                weights[self.rows.index(row)] += sign
        return weights


@dataclass(frozen=True)
class Sample:
    """One comparison's data at one look: a's and b's values by seed, and for a pooled
    variance the additive model of their column."""

    kind: str  # greater, less, equivalent
    margin: float | None
    a: Seeds
    b: Seeds
    row_a: str = "a"
    row_b: str = "b"
    model: Additive | None = None  # pooled: the column's model (a's and b's rows among its rows)

    @property
    def boundary(self) -> float:
        """What a directional claim tests a - b against: +margin (greater), -margin (less), 0
        without a margin; equivalence tests against both margins instead (0 here)."""
        if self.kind == "equivalent" or self.margin is None:
            return 0.0
        return self.margin if self.kind == "greater" else -self.margin


@dataclass(frozen=True)
class Evidence:
    """A comparison's test before multiplicity: the estimate of a - b, its standard error and
    degrees of freedom, its p-values, and its confidence interval at any level."""

    estimate: float
    se: float
    df: float
    seeds: int  # seeds both sides finished
    variance: str  # pooled, paired
    p_boundary: float  # two-sided, a - b = the sample's boundary (0 unless a directional margin)
    p_inside: float | None  # TOST: |a - b| < margin (equivalent only)
    p_outside: float | None  # a - b beyond the nearer margin (equivalent only)
    interval: Callable[[float], tuple[float, float]]  # confidence level -> (low, high)


@dataclass(frozen=True)
class Result:
    """A comparison's verdict and what it rests on."""

    verdict: str
    evidence: Evidence | None = None
    p: float = 1.0  # the comparison's p (see the module's docstring)
    p_adjusted: float = 1.0
    level: float | None = None  # alpha * p / p_adjusted: the adjusted interval's
    interval: tuple[float, float] | None = None  # the adjusted interval
    why: str = ""  # not testable: why


def evidence(sample: Sample) -> Evidence | str:
    """The comparison's test, or why it has none."""
    common = sorted(sample.a.keys() & sample.b.keys())
    for row, values in ((sample.row_a, sample.a), (sample.row_b, sample.b)):
        if not values:
            return f"{row!r} has no finished seed here"
    if len(common) < 2:
        return f"{len(common)} seed(s) finished in both {sample.row_a!r} and {sample.row_b!r}: a test needs 2"
    x, y = np.array([sample.a[s] for s in common]), np.array([sample.b[s] for s in common])
    return _pooled(sample, len(common)) if sample.model is not None else _paired(sample, x, y)


def _paired(sample: Sample, x: np.ndarray, y: np.ndarray) -> Evidence | str:
    from scipy import stats
    from statsmodels.stats.weightstats import ttost_paired

    if np.ptp(x - y) <= TINY * max(1.0, np.abs(x - y).max()):
        return "the differences are equal in every seed: no variance to test them against"
    test = stats.ttest_1samp(x - y, sample.boundary)  # the paired t (ttest_rel) against the boundary
    inside = outside = None
    if sample.kind == "equivalent":
        # ttost_paired: t1 tests a - b > -margin, t2 a - b < +margin; each beyond is its complement.
        inside, (t1, _, df1), (t2, _, df2) = ttost_paired(x, y, -sample.margin, sample.margin)
        outside = min(stats.t.cdf(t1, df1), stats.t.sf(t2, df2))
    n = len(x)
    return Evidence(
        float(np.mean(x - y)), float(np.std(x - y, ddof=1) / math.sqrt(n)), float(test.df), n, "paired",
        float(test.pvalue), _float(inside), _float(outside),
        lambda level: tuple(map(float, test.confidence_interval(level))),  # type: ignore[arg-type]
    )


def _pooled(sample: Sample, seeds: int) -> Evidence | str:
    from scipy import stats

    model = sample.model
    assert model is not None
    if model.fit is None or model.fit.df_resid < 1:
        return "the additive model (row + seed) of this column has no residual degrees of freedom"
    weights = model.contrast(sample.row_a, sample.row_b)
    test = model.fit.t_test((weights, [sample.boundary]))
    se, df = float(np.squeeze(test.sd)), float(test.df_denom)
    if not se > TINY * max(1.0, np.abs(model.fit.model.endog).max()):
        return "the additive model (row + seed) fits this column exactly: no variance to test against"
    inside = outside = None
    if sample.kind == "equivalent":
        low = float(np.squeeze(model.fit.t_test((weights, [-sample.margin])).tvalue))  # (a - b + margin) / se
        high = float(np.squeeze(model.fit.t_test((weights, [sample.margin])).tvalue))  # (a - b - margin) / se
        inside = max(stats.t.sf(low, df), stats.t.cdf(high, df))
        outside = min(stats.t.cdf(low, df), stats.t.sf(high, df))
    return Evidence(
        float(np.squeeze(test.effect)), se, df, seeds, "pooled", float(np.squeeze(test.pvalue)),
        _float(inside), _float(outside),
        lambda level: tuple(map(float, np.squeeze(test.conf_int(alpha=1 - level)))),  # type: ignore[arg-type]
    )


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def decide(samples: Sequence[Sample], alpha: float, looks: int = 1) -> list[Result]:
    """Every comparison of a file at one look: Holm over all of them, times `looks`."""
    from statsmodels.stats.multitest import multipletests

    tests = [evidence(s) for s in samples]
    ps = [_p(s, t) if isinstance(t, Evidence) else 1.0 for s, t in zip(samples, tests, strict=True)]
    if not ps:
        return []
    adjusted = np.minimum(1.0, looks * multipletests(ps, method="holm")[1])
    out = []
    for sample, test, p, p_adj in zip(samples, tests, ps, adjusted, strict=True):
        if not isinstance(test, Evidence):
            out.append(Result(NOT_TESTABLE, why=test))
            continue
        # p_adjusted = 0 only where p = 0: the interval is then Bonferroni's.
        level = alpha * p / p_adj if p_adj > 0 else alpha / (looks * len(samples))
        two_sided = 1 - 2 * level if sample.kind == "equivalent" else 1 - level
        out.append(Result(_verdict(sample, test, p, p_adj, alpha), test, p, float(p_adj), level,
                          test.interval(two_sided)))
    return out


def _p(sample: Sample, test: Evidence) -> float:
    if sample.kind == "equivalent":
        return min(test.p_inside, test.p_outside)  # type: ignore[type-var]
    return test.p_boundary


def _verdict(sample: Sample, test: Evidence, p: float, p_adjusted: float, alpha: float) -> str:
    if not p_adjusted < alpha:
        return UNDECIDED
    if sample.kind == "equivalent":
        return HELD if test.p_inside == p else CONTRADICTED
    above = test.estimate > sample.boundary
    return HELD if above == (sample.kind == "greater") else CONTRADICTED


def seeds_to_decide(sample: Sample, result: Result, level: float, power: float = POWER) -> int | None:
    """Seeds at which an undecided comparison is decided with probability `power` at level
    `level`, were the estimate and the variance what they are now (statsmodels' TTestPower:
    the paired t of one seed's difference, whose sd is se x sqrt(seeds); for equivalence the
    one-sided test against the nearer margin). None where the estimate sits on the boundary."""
    from statsmodels.stats.power import TTestPower

    test = result.evidence
    if test is None:
        return None
    sd = test.se * math.sqrt(test.seeds)
    if sample.kind == "equivalent":
        gap, alternative = abs(sample.margin - abs(test.estimate)), "larger"  # type: ignore[operator]
    else:
        gap, alternative = abs(test.estimate - sample.boundary), "two-sided"
    if not gap / sd > 1e-6:
        return None
    return math.ceil(TTestPower().solve_power(effect_size=gap / sd, alpha=level, power=power, alternative=alternative))
