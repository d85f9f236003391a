"""Report tables average seeds only: two cells that differ in an axis the table does not show
are an error, not a mean over "seeds" that are different settings."""

from __future__ import annotations

import pytest

from orchestrator.evaluations import KINDS
from orchestrator.grid import Cell
from orchestrator.report import SweepRuns, tables


def cell(key: str, seed: int, **extra) -> Cell:
    return Cell(key=key, label=key, pretrain_key="p" + key, job_key="j" + key, method="rotnet", n=1,
                images="N1 astronaut", augmentation="full", layer="conv1", probe_dataset="fashion_mnist",
                seed=seed, **extra)


def runs(cells: list[Cell]) -> SweepRuns:
    return SweepRuns("s", "sqlite://", "1", "r", cells, {}, {})


def test_seeds_of_one_setting_share_an_entry():
    (table,) = tables(runs([cell("a", 0), cell("b", 1)]), KINDS["linear_probe"], "top1")
    assert table.rows["rotnet N1 astronaut full"]["conv1"].states == ["-", "-"]


def test_an_axis_the_row_label_does_not_show_is_an_error():
    """A new grid axis (here `lr_scale`, a coordinate no label shows) must reach the row label."""
    with pytest.raises(ValueError, match="missing from the report's row label"):
        tables(runs([cell("a", 0, lr_scale=1), cell("b", 0, lr_scale=2)]), KINDS["linear_probe"], "top1")
