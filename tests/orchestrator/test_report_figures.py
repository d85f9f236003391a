"""The figure against N, from run records: drawn where cells span more than one N, a point per
(line, N) with the standard deviation over seeds as its error bar, a line per image source,
and the trunks without source images as horizontal references."""

from __future__ import annotations

import statistics

import pytest
from matplotlib.container import ErrorbarContainer

from orchestrator import figures
from orchestrator.evaluations import EVALUATIONS
from orchestrator.grid import Cell
from orchestrator.record.schema import RunView
from orchestrator.report import Stat, SweepRuns, Table, tables

PNG = b"\x89PNG\r\n\x1a\n"
NS = (1, 10, 100)


def top1(augmentation: str, n: int, layer: str, seed: int) -> float:
    return 20 + 5 * NS.index(n) + (augmentation == "full") + 2 * (layer == "conv3") + seed * (1 + NS.index(n))


def sweep(source: str = "fashion_mnist", references: tuple[str, ...] = ()) -> SweepRuns:
    cells, probe = [], {}
    for method in references:  # trunks that see no source images: top-1 10 + seed, every layer
        for layer in ("conv1", "conv3"):
            for seed in (0, 1, 2):
                key = f"{method}{layer}{seed}"
                cells.append(
                    Cell(
                        key=key,
                        label=key,
                        pretrain_key="p" + key,
                        job_key="j" + key,
                        method=method,
                        n=None,
                        images=None,
                        augmentation=None,
                        layer=layer,
                        probe_dataset="fashion_mnist",
                        seed=seed,
                    )
                )
                probe[key] = RunView(key, key, key, "FINISHED", {}, {"top1": 10.0 + seed}, {}, None, None)
    for augmentation in ("full", "none"):
        for n in NS:
            for layer in ("conv1", "conv3"):
                for seed in (0, 1, 2):
                    key = f"{augmentation}{n}{layer}{seed}"
                    cells.append(
                        Cell(
                            key=key,
                            label=key,
                            pretrain_key="p" + key,
                            job_key="j" + key,
                            method="rotnet",
                            n=n,
                            images=f"N{n} {source}",
                            augmentation=augmentation,
                            layer=layer,
                            probe_dataset="fashion_mnist",
                            seed=seed,
                        )
                    )
                    probe[key] = RunView(
                        key, key, key, "FINISHED", {}, {"top1": top1(augmentation, n, layer, seed)}, {}, None, None
                    )
    return SweepRuns("s", "sqlite://", "1", "r", cells, probe, {})


def test_the_report_writes_the_figure_against_n(tmp_path):
    rec = sweep()
    pictures = EVALUATIONS["linear_probe"].figures(rec, tables(rec, EVALUATIONS["linear_probe"], "top1"), tmp_path)
    assert tmp_path / "top1_vs_n.png" in pictures
    assert (tmp_path / "top1_vs_n.png").read_bytes()[:8] == PNG


def test_every_point_has_its_seeds_std_as_error_bar():
    rec = sweep()
    fig = figures.n_curves(rec, rec.cells)
    for ax, layer in zip(fig.axes, ("conv1", "conv3"), strict=True):
        assert ax.get_title() == layer and ax.get_xscale() == "log"
        lines = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert [c.get_label() for c in lines] == [
            "rotnet fashion_mnist full fashion_mnist",
            "rotnet fashion_mnist none fashion_mnist",
        ]
        for line, augmentation in zip(lines, ("full", "none"), strict=True):
            (bars,) = line.lines[2]
            assert len(bars.get_segments()) == len(NS)  # one error bar per point
            for n, segment in zip(NS, bars.get_segments(), strict=True):
                values = [top1(augmentation, n, layer, seed) for seed in (0, 1, 2)]
                (x0, low), (x1, high) = segment
                mean, std = statistics.mean(values), statistics.stdev(values)
                assert x0 == x1 == n and (low, high) == pytest.approx((mean - std, mean + std))


def test_a_photo_and_a_dataset_at_the_same_n_are_two_series():
    """Mutation tried: the series label without the image source pools N = 1 astronaut with
    N = 1 Fashion-MNIST image into one point of six seeds; this fails."""
    photo, dataset = sweep("astronaut"), sweep("fashion_mnist")
    rec = SweepRuns(
        "s",
        "sqlite://",
        "1",
        "r",
        photo.cells + [c.model_copy(update={"key": "d" + c.key}) for c in dataset.cells],
        {**photo.cell_runs, **{"d" + k: v for k, v in dataset.cell_runs.items()}},
        {},
    )
    ax = figures.n_curves(rec, rec.cells).axes[0]
    labels = [c.get_label() for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert sorted(labels) == sorted(f"rotnet {source} {aug} fashion_mnist"
                                    for source in ("astronaut", "fashion_mnist") for aug in ("full", "none"))


def test_trunks_without_source_images_are_horizontal_references():
    rec = sweep(references=("random", "supervised"))
    for ax in figures.n_curves(rec, rec.cells).axes:
        lines = {
            line.get_label(): line
            for line in ax.get_lines()
            if line.get_label() in ("random fashion_mnist", "supervised fashion_mnist")
        }
        assert set(lines) == {"random fashion_mnist", "supervised fashion_mnist"}
        for line in lines.values():
            assert set(line.get_ydata()) == {statistics.mean([10.0, 11.0, 12.0])}  # the mean over seeds


def test_every_line_per_layer_has_a_colour_of_its_own(tmp_path, monkeypatch):
    """image_choice has 11 rows, one past matplotlib's default cycle. Mutation tried: no wider
    cycle, the eleventh row takes the first's colour; this fails."""
    rows = {f"row {i}": {c: Stat(values=[float(i), i + 1.0]) for c in ("conv1", "conv2")} for i in range(11)}
    table = Table("fashion_mnist", ["conv1", "conv2"], rows, "mean", "linear_probe", "top1")
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    figures.layer_curves([table], tmp_path / "f.png", "layer", "top-1")
    colours = [c.lines[0].get_color() for c in drawn[0].axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(colours) == 11 and len(set(colours)) == 11


def test_a_fourth_reference_is_drawn_too():
    """Mutation tried: the three grey shades zipped without a cycle drop the fourth; this fails."""
    methods = ("random", "supervised", "random-sobel", "supervised-sobel")
    rec = sweep(references=methods)
    labels = {line.get_label() for line in figures.n_curves(rec, rec.cells).axes[0].get_lines()}
    assert {f"{m} fashion_mnist" for m in methods} <= labels
