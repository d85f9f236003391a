"""The report's figures (PNG): accuracy per layer, accuracy against N (error bars: std over
seeds), the augmentation ablation, finetuning accuracy against the frozen layers, the
style-transfer grid, and each pretrain run's own pictures (conv1 filters, mono-dataset
samples)."""

from __future__ import annotations

import itertools
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from orchestrator.grid import Cell  # noqa: E402
from orchestrator.record import store  # noqa: E402
from orchestrator.report import Stat, SweepRuns, Table  # noqa: E402

RUN_PICTURES = ("conv1_filters.png", "mono_samples.png", "train_samples.png")


def layer_curves(tables: list[Table], path: Path, xlabel: str, ylabel: str) -> Path | None:
    """Top-1 against the table's columns (the probed layer, or k frozen layers), one line per
    pre-training (mean ± std over seeds), a panel per dataset. None (no figure) with one column:
    a curve needs its axis to vary, and the table says it all."""
    if all(len(t.columns) < 2 for t in tables):
        return None
    fig, axes = plt.subplots(1, len(tables), figsize=(10 * len(tables), 4.5), squeeze=False)  # 4 of 10 the legend's
    for ax, table in zip(axes[0], tables, strict=True):
        if len(table.rows) > 10:  # past the default cycle's 10 colours two lines would share one
            ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
        for label, by_layer in table.rows.items():
            points = [
                (i, s.mean, s.std) for i, layer in enumerate(table.columns) if (s := by_layer[layer]).mean is not None
            ]
            if points:
                x, y, err = zip(*points, strict=True)
                style = "--" if label.split()[0] == "random" else "-"
                ax.errorbar(x, y, yerr=err, marker="o", linestyle=style, capsize=3, label=label)
        ax.set_xticks(range(len(table.columns)), table.columns)
        ax.set(title=table.dataset, xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        # beside the panel, not on it: with many rows an inside legend hid the lowest lines
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    return _save(fig, path)


def top1_vs_n(rec: SweepRuns, cells: list[Cell], path: Path, metric: str = "top1") -> Path:
    """Top-1 of linear-probe `cells` against the number of source images N (log axis), a
    panel per layer (`n_curves`)."""
    return _save(n_curves(rec, cells, metric), path)


def n_curves(rec: SweepRuns, cells: list[Cell], metric: str = "top1") -> Figure:
    """A panel per layer; in each a line per method, image source, augmentation and probe
    dataset, a point per N with its mean ± std over the finished seeds (a photo is its own
    series: N = 1 astronaut and N = 1 Fashion-MNIST image are different points), and the
    trunks that see no source images (random, supervised) as horizontal references, their
    std as a band."""
    layers = list(dict.fromkeys(c.layer for c in cells))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.5 * len(layers), 3.5), squeeze=False, sharey=True)
    for ax, layer in zip(axes[0], layers, strict=True):
        series: dict[str, dict[int, Stat]] = defaultdict(lambda: defaultdict(Stat))
        references: dict[str, Stat] = defaultdict(Stat)
        for cell in cells:
            run = rec.cell_runs.get(cell.key)
            if cell.layer != layer or not run or run.status != "FINISHED" or metric not in run.metrics:
                continue
            if cell.n:
                source = cell.images.split(" ", 1)[1] if cell.images else ""  # `N10 fashion_mnist`
                series[f"{cell.method} {source} {cell.augmentation} {cell.probe_dataset}"][cell.n].values.append(
                    run.metrics[metric]
                )
            else:
                references[f"{cell.method} {cell.probe_dataset}"].values.append(run.metrics[metric])
        for label, by_n in series.items():
            ns = sorted(by_n)
            ax.errorbar(
                ns, [by_n[n].mean for n in ns], yerr=[by_n[n].std for n in ns], marker="o", capsize=3, label=label
            )
        for (label, stat), color in zip(references.items(), itertools.cycle(("0.3", "0.6", "0.8"))):
            ax.axhline(stat.mean, color=color, linestyle="--", label=label)
            ax.axhspan(stat.mean - stat.std, stat.mean + stat.std, color=color, alpha=0.15)
        ax.set_xscale("log")
        ax.set(title=layer, xlabel="source images N")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("linear probe top-1 (%)")
    axes[0][-1].legend(fontsize=7)
    return fig


def ablation_bars(tables: list[Table], path: Path) -> Path:
    """The augmentation ablation: for each layer, one bar per pre-training (mean ± std)."""
    fig, axes = plt.subplots(len(tables), 1, figsize=(10, 4 * len(tables)), squeeze=False)
    for ax, table in zip(axes[:, 0], tables, strict=True):
        labels = list(table.rows)
        width = 0.8 / max(len(labels), 1)
        for j, label in enumerate(labels):
            stats = [table.rows[label][layer] for layer in table.columns]
            ax.bar(
                [i + j * width for i in range(len(table.columns))],
                [s.mean or 0.0 for s in stats], width, yerr=[s.std for s in stats], capsize=2, label=label,
            )
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(table.columns))], table.columns)
        values = [s.mean for r in table.rows.values() for s in r.values() if s.mean is not None]
        if values:
            ax.set_ylim(max(0.0, min(values) - 10), min(100.0, max(values) + 5))
        ax.set(title=f"augmentation ablation, {table.dataset}", ylabel="linear probe top-1 (%)")
        ax.legend(fontsize=8, ncol=2)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def style_grid(rec: SweepRuns, cells: list[Cell], row: Callable[[Cell], str], path: Path) -> Path | None:
    """Style transfer's `cells` side by side: a column per (content, style) pair, its content
    and style on top, then a row per trunk (`row` names it) with its stylised image and final
    losses. None without finished runs."""
    done = {
        c.key: rec.cell_runs[c.key]
        for c in cells
        if c.key in rec.cell_runs and rec.cell_runs[c.key].status == "FINISHED"
    }
    if not done:
        return None
    several_seeds = len({c.seed for c in cells}) > 1

    def trunk(c: Cell) -> str:  # a picture per seed: images do not average
        return row(c) + (f" s{c.seed}" if several_seeds else "")

    pairs = list(dict.fromkeys(f"{c.content}+{c.style}" for c in cells))
    trunks = list(dict.fromkeys(trunk(c) for c in cells))
    fig, axes = plt.subplots(
        1 + len(trunks), len(pairs), figsize=(2.6 * len(pairs), 1.4 + 2.6 * len(trunks)), squeeze=False,
        gridspec_kw={"height_ratios": [0.5] + [1] * len(trunks)},  # the pair row is two images wide
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    with tempfile.TemporaryDirectory() as tmp:
        for cell in cells:
            run = done.get(cell.key)
            if run is None:
                continue
            j = pairs.index(f"{cell.content}+{cell.style}")
            i = 1 + trunks.index(trunk(cell))
            folder = Path(tmp) / run.run_id
            axes[i][j].imshow(plt.imread(store.download(rec.uri, run.run_id, "stylised.png", folder)))
            axes[i][j].set_xlabel(
                f"style {run.metrics['style_loss']:.3f}  content {run.metrics['content_loss']:.3f}", fontsize=7
            )
            if not axes[0][j].images:  # the pair itself, once: content | style
                inputs = [
                    plt.imread(store.download(rec.uri, run.run_id, name, folder))
                    for name in ("content.png", "style.png")
                ]
                axes[0][j].imshow(np.concatenate(inputs, axis=1))
                axes[0][j].set_title(f"{cell.content} + {cell.style}", fontsize=9)
    axes[0][0].set_ylabel("content | style", fontsize=8)
    for i, label in enumerate(trunks, 1):
        axes[i][0].set_ylabel(label, fontsize=8)
    return _save(fig, path)


def run_pictures(rec: SweepRuns, folder: Path) -> list[Path]:
    """Each FINISHED pretrain run's conv1 filter grid and mono samples, named by the run."""
    out = []
    for run in rec.pretrain.values():
        if run.status != "FINISHED":
            continue
        target = folder / run.name.replace(" ", "_")
        target.mkdir(parents=True, exist_ok=True)
        present = store.artifact_names(rec.uri, run.run_id)  # random trunks have no samples
        out += [store.download(rec.uri, run.run_id, name, target) for name in RUN_PICTURES if name in present]
    return out


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # a legend placed beside its panel included
    plt.close(fig)
    return path
