"""Report tables average seeds only: two cells that differ in an axis the table does not show
are an error, not a mean over "seeds" that are different settings."""

from __future__ import annotations

import pytest

from orchestrator.evaluations import EVALUATIONS
from orchestrator.grid import Cell
from orchestrator.report import SweepRuns, tables


def cell(key: str, seed: int, **extra) -> Cell:
    return Cell(key=key, label=key, pretrain_key="p" + key, job_key="j" + key, method="rotnet", n=1,
                images="N1 astronaut", augmentation="full", layer="conv1", probe_dataset="fashion_mnist",
                seed=seed, **extra)


def runs(cells: list[Cell]) -> SweepRuns:
    return SweepRuns("s", "sqlite://", "1", "r", cells, {}, {})


def test_seeds_of_one_setting_share_an_entry():
    (table,) = tables(runs([cell("a", 0), cell("b", 1)]), EVALUATIONS["linear_probe"], "top1")
    assert table.rows["rotnet N1 astronaut full"]["conv1"].states == ["-", "-"]


def test_an_axis_the_row_label_does_not_show_is_an_error():
    """A new grid axis (here `lr_scale`, a coordinate no label shows) must reach the row label."""
    with pytest.raises(ValueError, match="missing from the report's row label"):
        tables(runs([cell("a", 0, lr_scale=1), cell("b", 0, lr_scale=2)]), EVALUATIONS["linear_probe"], "top1")


def test_a_cells_json_that_kept_every_kind_s_coordinates_still_reports():
    """Sweeps recorded before the kinds declared their coordinates wrote layer, frozen, content
    and style on every cell, None where they did not apply: reports and status still read them."""
    from orchestrator import status

    shared = {"pretrain_key": "p", "job_key": "j", "method": "rotnet", "n": 1, "images": "N1 astronaut",
              "augmentation": "full", "probe_dataset": "fashion_mnist", "seed": 0, "content": None, "style": None}
    recorded = [
        {**shared, "key": "c1", "label": "c1", "evaluation": "linear_probe", "layer": "conv1", "frozen": None},
        {**shared, "key": "c5", "label": "c5", "evaluation": "linear_probe", "layer": "conv5", "frozen": None},
        {**shared, "key": "k2", "label": "k2", "evaluation": "finetune_frozen", "layer": None, "frozen": 2},
    ]
    rec = runs([Cell(**c) for c in recorded])
    (probe,) = tables(rec, EVALUATIONS["linear_probe"], "top1")
    (finetune,) = tables(rec, EVALUATIONS["finetune_frozen"], "top1")
    assert (probe.columns, finetune.columns) == (["conv1", "conv5"], ["k=2"])
    states = status.cell_states(rec.cells, {}, {})
    assert status.by_axis(states)["layer"] == {"conv1": status.counts(states[:1]), "conv5": status.counts(states[1:2])}
    assert status.select(states, {"pending"}, {"frozen": {"2"}}) == {"k2"}
