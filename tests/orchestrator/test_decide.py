"""The tests of findings against scipy and statsmodels called directly, on synthetic values:
the paired t (a missing seed included), TOST, the additive model with a seed block, Holm,
the adjusted interval and the seeds an undecided comparison needs.

Mutations tried, each fails here: dropping the Holm step (the adjusted p is p times the
looks); swapping TOST's bounds (ttost_paired(x, y, +margin, -margin)); unpairing the seeds
(pairing by position over each row's own seeds, and an additive model without the seed
factor)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from orchestrator import decide
from orchestrator.decide import Additive, Sample

RNG = np.random.default_rng(25)
SEEDS = range(6)
# row -> seed -> value: seed effects shared by the rows (the block), row effects, noise
BLOCK = RNG.normal(0, 2, len(SEEDS))
COLUMN = {row: {s: mu + BLOCK[s] + RNG.normal(0, 1) for s in SEEDS}
          for row, mu in (("r0", 0.0), ("r1", 1.5), ("r2", 0.2), ("r3", -0.4))}


def without(values: dict[int, float], *seeds: int) -> dict[int, float]:
    return {s: v for s, v in values.items() if s not in seeds}


def formula_fit(column: dict[str, dict[int, float]]):
    """The additive model as statsmodels' formula API writes it: value ~ C(row) + C(seed)."""
    frame = pd.DataFrame([(r, s, v) for r, values in column.items() for s, v in values.items()],
                         columns=["row", "seed", "value"])
    return smf.ols("value ~ C(row) + C(seed)", frame).fit()


def test_the_paired_t_pairs_by_seed_when_a_seed_is_missing():
    a, b = without(COLUMN["r1"], 2), without(COLUMN["r0"], 4)  # a lacks seed 2, b seed 4
    e = decide.evidence(Sample("greater", None, a, b))
    common = [0, 1, 3, 5]
    x, y = np.array([a[s] for s in common]), np.array([b[s] for s in common])
    expected = stats.ttest_rel(x, y)
    assert e.seeds == 4 and e.df == 3 and e.variance == "paired"
    assert e.estimate == pytest.approx(np.mean(x - y))
    assert e.p_boundary == pytest.approx(expected.pvalue)
    assert e.interval(0.9) == pytest.approx(tuple(expected.confidence_interval(0.9)))


def test_tost_is_statsmodels_ttost_paired_at_the_margin():
    a, b = COLUMN["r2"], COLUMN["r0"]
    x, y = np.array([a[s] for s in SEEDS]), np.array([b[s] for s in SEEDS])
    for margin in (0.5, 1.0, 3.0):
        e = decide.evidence(Sample("equivalent", margin, a, b))
        p, (t1, _, df), (t2, _, _) = ttost_paired(x, y, -margin, margin)
        assert e.p_inside == pytest.approx(p)
        # beyond the margin: the complements of TOST's one-sided tests
        assert e.p_outside == pytest.approx(min(stats.t.cdf(t1, df), stats.t.sf(t2, df)))
    # held exactly where the (1 - 2 alpha) interval lies inside the margin
    wide = decide.decide([Sample("equivalent", 3.0, a, b)], 0.05)[0]
    low, high = stats.ttest_rel(x, y).confidence_interval(0.9)
    assert wide.verdict == decide.HELD and -3 < low and high < 3 and wide.interval == pytest.approx((low, high))


def test_the_pooled_variance_is_the_additive_model_with_a_seed_block():
    column = {**COLUMN, "r2": without(COLUMN["r2"], 1)}  # unbalanced: one cell missing
    model = Additive.of(column)
    fit = formula_fit(column)
    for a, b, name in (("r1", "r0", "C(row)[T.r1]"), ("r3", "r2", "C(row)[T.r3] - C(row)[T.r2]")):
        e = decide.evidence(Sample("greater", None, column[a], column[b], a, b, model))
        expected = fit.t_test(f"{name} = 0")
        assert e.variance == "pooled" and e.df == fit.df_resid == 4 * 6 - 1 - (3 + 5 + 1)
        assert e.estimate == pytest.approx(float(np.squeeze(expected.effect)))
        assert e.se == pytest.approx(float(np.squeeze(expected.sd)))
        assert e.p_boundary == pytest.approx(float(expected.pvalue))
        assert e.interval(0.99) == pytest.approx(tuple(np.squeeze(expected.conf_int(alpha=0.01))))


def test_pooled_equivalence_is_tost_on_the_contrast():
    model = Additive.of(COLUMN)
    fit = formula_fit(COLUMN)
    e = decide.evidence(Sample("equivalent", 1.0, COLUMN["r2"], COLUMN["r0"], "r2", "r0", model))
    low = float(np.squeeze(fit.t_test("C(row)[T.r2] = -1").tvalue))
    high = float(np.squeeze(fit.t_test("C(row)[T.r2] = 1").tvalue))
    assert e.p_inside == pytest.approx(max(stats.t.sf(low, fit.df_resid), stats.t.cdf(high, fit.df_resid)))
    # two rows, every seed: the pooled model is the paired t
    two = {r: COLUMN[r] for r in ("r2", "r0")}
    pooled = decide.evidence(Sample("equivalent", 1.0, two["r2"], two["r0"], "r2", "r0", Additive.of(two)))
    paired = decide.evidence(Sample("equivalent", 1.0, two["r2"], two["r0"]))
    expected = (paired.p_inside, paired.p_boundary, paired.df)
    assert (pooled.p_inside, pooled.p_boundary, pooled.df) == pytest.approx(expected)


def test_a_directional_margin_moves_the_boundary_paired_and_pooled():
    """`greater, margin m` claims a - b > m: the p is the paired t's against m (scipy's
    ttest_1samp of the differences), the pooled model's contrast against m (statsmodels'
    t_test with q = m), and the verdict's side is the estimate's against m, not 0."""
    b = COLUMN["r0"]
    noise = np.random.default_rng(3).normal(0, 0.1, len(b))
    a = {seed: value + 5.0 + noise[seed] for seed, value in b.items()}  # 5 points above, tight
    x, y = np.array([a[s] for s in SEEDS]), np.array([b[s] for s in SEEDS])
    gap = float(np.mean(x - y))
    for margin, verdict in ((4.0, decide.HELD), (6.0, decide.CONTRADICTED)):
        e = decide.evidence(Sample("greater", margin, a, b))
        assert e.p_boundary == pytest.approx(stats.ttest_1samp(x - y, margin).pvalue)
        assert e.estimate == pytest.approx(gap) and e.interval(0.9) == pytest.approx(
            tuple(stats.ttest_rel(x, y).confidence_interval(0.9)))
        assert decide.decide([Sample("greater", margin, a, b)], 0.05)[0].verdict == verdict
    less = decide.evidence(Sample("less", 1.0, b, a))  # b - a < -1: the boundary is -1
    assert less.p_boundary == pytest.approx(stats.ttest_1samp(y - x, -1.0).pvalue)
    model, fit = Additive.of(COLUMN), formula_fit(COLUMN)
    pooled = decide.evidence(Sample("greater", 1.5, a, b, "r1", "r0", model))
    assert pooled.p_boundary == pytest.approx(float(fit.t_test("C(row)[T.r1] = 1.5").pvalue))


def test_holm_over_every_comparison_times_the_looks():
    samples = [Sample("greater", None, COLUMN[a], COLUMN["r0"], a, "r0") for a in ("r1", "r2", "r3")]
    samples.append(Sample("less", None, {}, COLUMN["r0"], "gone", "r0"))  # not testable: counts, with p = 1
    for looks in (1, 4):
        results = decide.decide(samples, 0.05, looks)
        ps = [stats.ttest_rel(*(np.array([COLUMN[r][s] for s in SEEDS]) for r in (a, "r0"))).pvalue
              for a in ("r1", "r2", "r3")] + [1.0]
        expected = np.minimum(1, looks * multipletests(ps, method="holm")[1])
        assert [r.p_adjusted for r in results] == pytest.approx(list(expected))
        assert [r.p for r in results] == pytest.approx(ps)
    assert results[3].verdict == decide.NOT_TESTABLE and "'gone' has no finished seed" in results[3].why


@pytest.mark.slow
def test_the_adjusted_interval_excludes_zero_exactly_when_the_adjusted_p_is_below_alpha():
    rng = np.random.default_rng(3)
    for _ in range(40):
        rows = {f"r{i}": {s: rng.normal(0.6 * i, 1) for s in range(4)} for i in range(4)}
        samples = [Sample(k, None, rows[a], rows["r0"], a, "r0", Additive.of(rows))
                   for a, k in (("r1", "greater"), ("r2", "less"), ("r3", "greater"))]
        results = decide.decide(samples, 0.05, looks=2)
        for r in results:
            low, high = r.interval
            assert (r.p_adjusted < 0.05) == (low > 0 or high < 0)
            assert r.level == pytest.approx(0.05 * r.p / r.p_adjusted)
            if r.verdict in decide.DECIDED:
                assert (r.evidence.estimate > 0) == (low > 0)
        smallest = min(results, key=lambda r: r.p)
        if smallest.p_adjusted < 1:  # below the cap, the smallest p's interval is Bonferroni's
            assert smallest.level == pytest.approx(0.05 / (3 * 2))


def test_verdicts_follow_the_sign_and_the_margin():
    up = {s: 10.0 + 0.1 * (-1) ** s for s in SEEDS}
    base = {s: 0.0 + 0.05 * s for s in SEEDS}
    verdicts = [r.verdict for r in decide.decide([
        Sample("greater", None, up, base), Sample("less", None, up, base),
        Sample("equivalent", 2.0, up, base), Sample("equivalent", 20.0, up, base),
    ], 0.05)]
    assert verdicts == [decide.HELD, decide.CONTRADICTED, decide.CONTRADICTED, decide.HELD]


def test_not_testable_says_why():
    one = decide.decide([Sample("greater", None, {0: 1.0}, {0: 0.0, 1: 1.0}, "a", "b")], 0.05)[0]
    assert one.verdict == decide.NOT_TESTABLE and "1 seed(s) finished in both 'a' and 'b'" in one.why
    flat = decide.decide([Sample("greater", None, {0: 1.0, 1: 2.0}, {0: 0.0, 1: 1.0})], 0.05)[0]
    assert flat.verdict == decide.NOT_TESTABLE and "no variance" in flat.why
    exact = {"a": {0: 1.3, 1: 2.1}, "b": {0: 0.1, 1: 0.9}}  # additive to the last bit but rounding
    fit = decide.decide([Sample("greater", None, exact["a"], exact["b"], "a", "b", Additive.of(exact))], 0.05)[0]
    assert fit.verdict == decide.NOT_TESTABLE and "additive model" in fit.why


def test_seeds_to_decide_is_the_power_of_the_paired_t():
    sample = Sample("greater", None, COLUMN["r2"], COLUMN["r0"])
    result = decide.decide([sample], 0.05)[0]
    e = result.evidence
    assert result.verdict == decide.UNDECIDED
    effect = abs(e.estimate) / (e.se * np.sqrt(e.seeds))
    expected = TTestPower().solve_power(effect_size=effect, alpha=0.01, power=0.8, alternative="two-sided")
    assert decide.seeds_to_decide(sample, result, 0.01) == int(np.ceil(expected)) > len(SEEDS)
