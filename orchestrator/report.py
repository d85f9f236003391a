"""MLflow -> the paper's table: rows method x N x augmentation, columns conv1..conv5.

Values are the final probe top-1 of the latest FINISHED run of each cell key, mean and
standard deviation over seeds with the count; a cell with no finished run shows as `-`.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from orchestrator import record
from orchestrator.grid import Cell, Sweep


def final_scores(uri: str, experiment_name: str) -> dict[str, dict[str, float]]:
    """Cell key -> final metrics of its latest FINISHED probe run (one query)."""
    experiment = record.experiment_id(uri, experiment_name)
    if experiment is None:
        return {}
    runs = record.search(uri, experiment, f"tags.`{record.KIND}` = 'probe' and attributes.status = 'FINISHED'")
    scores: dict[str, dict[str, float]] = {}
    for run in runs:  # newest first: keep the first seen
        scores.setdefault(run.data.tags[record.KEY], dict(run.data.metrics))
    return scores


def row_label(cell: Cell) -> str:
    return " ".join(p for p in (cell.method, cell.images, cell.augmentation) if p)


def _cell_text(values: list[float], expected: int) -> str:
    if not values:
        return "-"
    text = f"{statistics.mean(values):.2f}"
    if expected > 1:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        text += f" ± {std:.2f} (n={len(values)})"
    return text


def table(sweep: Sweep, scores: dict[str, dict[str, float]], metric: str = "top1") -> str:
    """One markdown table per probe dataset."""
    layers = sweep.spec.grid.layer
    seeds = len(sweep.spec.grid.seed)
    blocks = []
    for dataset in sweep.spec.grid.probe_dataset:
        rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for cell in sweep.cells:
            if cell.probe_dataset != dataset:
                continue
            values = rows[row_label(cell)][cell.layer]
            if metric in scores.get(cell.key, {}):
                values.append(scores[cell.key][metric])
        lines = [
            f"{metric} (%) of linear probes on {dataset}",
            "",
            "| pre-training | " + " | ".join(layers) + " |",
            "|---|" + "---|" * len(layers),
        ]
        for label, by_layer in rows.items():
            lines.append(f"| {label} | " + " | ".join(_cell_text(by_layer[layer], seeds) for layer in layers) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
