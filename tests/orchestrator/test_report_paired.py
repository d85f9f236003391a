"""The paired view on tables built from run records: differences pair by seed, the interval is
Student's t over the paired seeds, one seed gives no interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from orchestrator import report
from orchestrator.errors import UserError
from orchestrator.evaluations import EVALUATIONS
from orchestrator.grid import Cell
from orchestrator.record.schema import RunView
from orchestrator.report import SweepRuns, tables
from orchestrator.report_paired import paired, t_quantile

# (method, augmentation) -> seed -> conv1 top-1; random's seed 0 failed
TOP1 = {
    ("random", None): {1: 20.0, 2: 27.0, 3: 25.5},
    ("rotnet", "full"): {0: 12.0, 1: 25.0, 2: 31.0, 3: 30.0},
    ("rotnet", "none"): {1: 20.5},
}


def sweep(top1: dict = TOP1) -> SweepRuns:
    cells, probe = [], {}
    for (method, augmentation), by_seed in top1.items():
        for seed in range(4):
            key = f"{method}-{augmentation}-{seed}"
            images = None if method == "random" else "N1 astronaut"
            cells.append(
                Cell(
                    key=key,
                    label=key,
                    pretrain_key="p" + key,
                    job_key="j" + key,
                    method=method,
                    n=1 if images else None,
                    images=images,
                    augmentation=augmentation,
                    layer="conv1",
                    probe_dataset="fashion_mnist",
                    seed=seed,
                )
            )
            status = "FINISHED" if seed in by_seed else "FAILED"
            metrics = {"top1": by_seed[seed]} if seed in by_seed else {}
            probe[key] = RunView(key, key, key, status, {}, metrics, {}, None, None)
    return SweepRuns("s", "sqlite://", "1", "r", cells, probe, {})


def by_hand(row: dict[int, float], reference: dict[int, float]) -> tuple[float, float, float]:
    """Mean difference over the seeds both rows finished, and its 95% t-interval (scipy's)."""
    d = np.array([row[s] - reference[s] for s in sorted(row.keys() & reference.keys())])
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(len(d)))
    return d.mean(), low, high


@pytest.mark.parametrize(("df", "quantile"), [(1, 12.706), (2, 4.303), (4, 2.776), (30, 2.042)])
def test_t_quantiles_are_the_textbook_ones(df, quantile):
    assert t_quantile(0.975, df) == pytest.approx(quantile, abs=5e-4)


def test_differences_pair_by_seed_and_the_interval_is_t_over_the_pairs():
    """Mutations tried, each fails here: pairing the values by position instead of by seed
    (random's seed 0 failed, so positions shift); the normal quantile 1.96 instead of t(0.975,
    n-1); subtracting the reference's mean instead of its same-seed value (same mean, other sd)."""
    (table,) = tables(sweep(), EVALUATIONS["linear_probe"], "top1")
    view = paired(table)
    entry = view.rows["rotnet N1 astronaut full"]["conv1"]
    mean, low, high = by_hand(TOP1[("rotnet", "full")], TOP1[("random", None)])
    assert entry.seeds == [1, 2, 3] and entry.states == ["unpaired"]  # seed 0 has no random to pair with
    assert entry.mean == pytest.approx(mean)
    assert entry.ci == pytest.approx((low, high))
    assert entry.text() == f"{mean:+.2f} [{low:+.2f}, {high:+.2f}] * (n=3)"  # +4.50 [+3.26, +5.74]: excludes 0
    assert view.rows["random"]["conv1"].text() == "reference"
    assert view.title.startswith("top-1 minus random seed by seed (mean [95% CI]")


def test_an_interval_that_holds_zero_is_not_marked():
    top1 = {("random", None): {0: 20.0, 1: 30.0}, ("rotnet", "full"): {0: 25.0, 1: 27.0}}
    (table,) = tables(sweep(top1), EVALUATIONS["linear_probe"], "top1")
    entry = paired(table).rows["rotnet N1 astronaut full"]["conv1"]
    mean, low, high = by_hand(top1[("rotnet", "full")], top1[("random", None)])
    assert low < 0 < high and entry.text() == f"{mean:+.2f} [{low:+.2f}, {high:+.2f}] (n=2)"


def test_one_paired_seed_has_no_interval():
    (table,) = tables(sweep(), EVALUATIONS["linear_probe"], "top1")
    entry = paired(table).rows["rotnet N1 astronaut none"]["conv1"]
    assert entry.values == [0.5] and entry.ci is None and entry.text() == "+0.50 (n=1, no CI)"
    csv_row = [line for line in report.to_csv([paired(table)]).splitlines() if "astronaut none" in line]
    assert csv_row == [
        "fashion_mnist,linear_probe,top1,paired,rotnet N1 astronaut none,conv1,0.5000,0.0000,1,failed;failed;failed,,"
    ]


def test_the_reference_is_any_row():
    (table,) = tables(sweep(), EVALUATIONS["linear_probe"], "top1")
    view = paired(table, "rotnet N1 astronaut none")
    assert view.rows["rotnet N1 astronaut full"]["conv1"].text() == "+4.50 (n=1, no CI)"  # seed 1: 25 - 20.5
    assert view.title.startswith("top-1 minus rotnet N1 astronaut none seed by seed")
    assert paired(table, "supervised").rows == {}  # no such row: no table
    with pytest.raises(UserError, match="name one by its whole label"):
        paired(table, "rotnet")
