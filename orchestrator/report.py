"""MLflow -> the paper's tables and figures, from the record alone.

The planned cells come from the sweep run's `cells.json`, the scores from the latest FINISHED
run of each cell key, so a report works from another machine, on a partial sweep, and while
the sweep runs. Table rows are method x N x augmentation; columns are each evaluation kind's
own (conv1..conv5 for linear probes, k for finetuning, the (content, style) pairs for style
transfer); values: mean, standard deviation and count over seeds. A cell without a finished
run shows its state (failed, killed, running) or `-` (never run): nothing is dropped. Views of
a table: its values, their difference to random's mean or percentage of supervised's
(`relative`), or the paired differences seed by seed (orchestrator/report_paired.py).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import NoSweep
from orchestrator.evaluations import EVALUATIONS
from orchestrator.evaluations.base import EvaluationKind, row_label
from orchestrator.grid import Cell
from orchestrator.record import queries, store
from orchestrator.record.schema import CELL, PRETRAIN, RunView

FORMATS = ("md", "csv", "latex", "html")
VIEWS = ("mean", "diff_random", "pct_supervised", "paired", "findings")  # findings: orchestrator/report_findings.py
RENAMED_VIEWS = {"top1": "mean"}  # old name -> view: still read, with a warning


@dataclass
class SweepRuns:
    """One sweep as MLflow holds it: its planned cells and the latest run of each key."""

    name: str
    uri: str
    experiment_id: str
    sweep_run_id: str
    cells: list[Cell]
    cell_runs: dict[str, RunView]  # each cell key's latest run
    pretrain: dict[str, RunView]


def load(uri: str, name: str, cells: list[Cell] | None = None) -> SweepRuns:
    """The sweep's record; `cells` (the current plan) replaces the planned cells it holds.

    Raises:
        NoSweep: the store holds no such sweep.
    """
    store.check_reachable(uri)
    experiment = store.experiment_id(uri, name)
    sweep_run = queries.sweep_run_id(uri, experiment) if experiment else None
    if experiment is None or sweep_run is None:
        raise NoSweep(f"no sweep {name!r} in {store.shown(uri)}")
    if cells is None:
        cells = [Cell(**c) for c in json.loads(store.read_text(uri, sweep_run, "cells.json"))]
    return SweepRuns(
        name, uri, experiment, sweep_run, cells,
        queries.latest_runs(uri, experiment, CELL), queries.latest_runs(uri, experiment, PRETRAIN),
    )


@dataclass
class Stat:
    """One table entry: the finished seeds' values, and the states of the others."""

    values: list[float] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)  # each value's seed: what the paired view pairs by

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.values) if self.values else None

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def text(self, digits: int = 2) -> str:
        if not self.values:
            return ", ".join(sorted(set(self.states))) or "-"
        out = f"{self.mean:.{digits}f}"
        if len(self.values) + len(self.states) > 1:
            out += f" ± {self.std:.{digits}f} (n={len(self.values)})"
        return out

    @property
    def ci(self) -> tuple[float, float] | None:
        """A 95% confidence interval of the mean, in the views that define one (paired)."""
        return None


@dataclass
class Table:
    dataset: str | None
    columns: list[str]
    rows: dict[str, dict[str, Stat]]  # row label -> column -> entry
    view: str
    evaluation: str  # the kind whose cells fill it
    metric: str
    reference: str | None = None  # the paired view's reference row

    @property
    def digits(self) -> int:
        return EVALUATIONS[self.evaluation].digits

    @property
    def title(self) -> str:
        return EVALUATIONS[self.evaluation].title(self)


def tables(rec: SweepRuns, kind: EvaluationKind, metric: str) -> list[Table]:
    """One table per probe dataset of one evaluation kind (one in all for a folded kind), rows
    in grid order, columns the kind's (conv1..conv5, k, (content, style) pairs, ...)."""
    cells = [c for c in rec.cells if c.evaluation == kind.name]
    if not cells:
        return []
    columns = kind.order(list(dict.fromkeys(kind.column(c) for c in cells)))
    out = []
    for dataset in [None] if kind.folded else dict.fromkeys(c.probe_dataset for c in cells):
        rows: dict[str, dict[str, Stat]] = defaultdict(lambda: defaultdict(Stat))
        seeds: dict[tuple[str, str], set[int]] = defaultdict(set)
        for cell in cells:
            if not kind.folded and cell.probe_dataset != dataset:
                continue
            place = (kind.row(cell), kind.column(cell))
            if cell.seed in seeds[place]:  # an entry averages seeds, never two different settings
                raise ValueError(
                    f"{cell.label!r} shares row {place[0]!r}, column {place[1]!r} and seed {cell.seed} with "
                    "another cell: an axis they differ in is missing from the report's row label "
                    "(orchestrator/evaluations/base.py row_label) or the kind's column"
                )
            seeds[place].add(cell.seed)
            entry = rows[place[0]][place[1]]
            run = rec.cell_runs.get(cell.key)
            if run is not None and run.status == "FINISHED" and metric in run.metrics:
                entry.values.append(run.metrics[metric])
                entry.seeds.append(cell.seed)
            else:
                entry.states.append(run.status.lower() if run else "-")
        out.append(Table(dataset, columns, rows, "mean", kind.name, metric))
    return out


def all_tables(rec: SweepRuns) -> list[Table]:
    """Every table the sweep's cells fill, kind by kind, a table per metric of each."""
    return [t for kind in EVALUATIONS for metric in kind.metrics for t in tables(rec, kind, metric)]


def relative(table: Table, view: str) -> Table:
    """The table as difference from the random row, or as a percentage of the supervised row."""
    reference = "random" if view == "diff_random" else "supervised"
    base = next((r for label, r in table.rows.items() if label.split()[0] == reference), None)
    if base is None:
        return Table(table.dataset, table.columns, {}, view, table.evaluation, table.metric)
    rows: dict[str, dict[str, Stat]] = {}
    for label, by_column in table.rows.items():
        rows[label] = {}
        for col in table.columns:
            ref = base[col].mean
            stat = by_column[col]
            if ref is None:
                rows[label][col] = Stat(states=["no " + reference])
                continue
            convert = (lambda v: v - ref) if view == "diff_random" else (lambda v: 100 * v / ref)  # noqa: B023
            rows[label][col] = Stat([convert(v) for v in stat.values], stat.states, stat.seeds)
    return Table(table.dataset, table.columns, rows, view, table.evaluation, table.metric)


def render(table: Table, fmt: str) -> str:
    if fmt == "csv":
        return to_csv([table])
    header = ["pre-training", *table.columns]
    body = [
        [label, *(by_column[col].text(table.digits) for col in table.columns)]
        for label, by_column in table.rows.items()
    ]
    return layout(table.title, header, body, fmt)


def layout(title: str, header: list[str], body: list[list[str]], fmt: str) -> str:
    """A titled table of text as markdown, a LaTeX tabular or an HTML table."""
    if fmt == "md":
        row = lambda cells: "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"  # noqa: E731  (|a - b| < m)
        return "\n".join([title, "", row(header), "|---" * len(header) + "|", *map(row, body)])
    if fmt == "latex":
        cols = "l" + "r" * (len(header) - 1)
        esc = lambda s: re.sub(r"([_%#&])", r"\\\1", s).replace("±", r"$\pm$")  # noqa: E731
        lines = [
            f"% {title}",
            rf"\begin{{tabular}}{{{cols}}}",
            r"\toprule",
            " & ".join(map(esc, header)) + r" \\",
            r"\midrule",
        ]
        lines += [" & ".join(map(esc, row)) + r" \\" for row in body]
        return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"])
    if fmt == "html":
        cells = lambda row, tag: "".join(f"<{tag}>{html.escape(str(v))}</{tag}>" for v in row)  # noqa: E731
        rows = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in body)
        return f"<table><caption>{html.escape(title)}</caption><tr>{cells(header, 'th')}</tr>{rows}</table>"
    raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")


def columns(table: Table) -> dict[str, list[str]]:
    """The table as columns (the row labels first), entries as `render` writes them: what
    MLflow's `log_table` takes."""
    out = {"pre-training": list(table.rows)}
    for col in table.columns:
        out[col] = [by_column[col].text(table.digits) for by_column in table.rows.values()]
    return out


def file_name(table: Table) -> str:
    """A name for the table's own file: `linear_probe_top1_fashion_mnist_diff_random`."""
    words = [table.evaluation, table.metric, table.dataset or "", table.view]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(w for w in words if w)).strip("_")


def spec_of(rec: SweepRuns) -> dict[str, Any] | None:
    """The resolved experiment file the sweep run keeps (`spec.json`), if it keeps one."""
    if "spec.json" not in store.artifact_names(rec.uri, rec.sweep_run_id):
        return None
    return json.loads(store.read_text(rec.uri, rec.sweep_run_id, "spec.json"))


def convergence(rec: SweepRuns) -> list[str]:
    """One line per pre-training row whose finished runs say whether they converged (the
    `converged` metric a method records when it ends: BiGAN, by the criterion of
    workers/methods/bigan.py D_WINS), seeds counted: `bigan fashion_mnist 10 asano2020:
    converged in 1/3 seeds (discriminator accuracy at the end 0.99, 0.81, 0.98)`."""
    seen: dict[str, dict[str, RunView]] = defaultdict(dict)
    for cell in rec.cells:
        run = rec.pretrain.get(cell.pretrain_key)
        if run is not None and run.status == "FINISHED" and "converged" in run.metrics:
            seen[row_label(cell)][cell.pretrain_key] = run
    lines = []
    for label, runs in seen.items():
        converged = sum(r.metrics["converged"] == 1 for r in runs.values())
        ends = ", ".join(f"{r.metrics.get('discriminator_accuracy_end', float('nan')):.2f}" for r in runs.values())
        lines.append(f"{label}: converged in {converged}/{len(runs)} seeds (discriminator accuracy at the end {ends})")
    return lines


CSV_FIELDS = ("dataset", "evaluation", "metric", "view", "pre-training", "column", "mean", "std", "n", "state",
              "ci95_low", "ci95_high")


def to_csv(tables: list[Table]) -> str:
    """Tables of any shape in one long CSV, a row per entry, one header: ready for pandas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for table in tables:
        for label, by_column in table.rows.items():
            for col in table.columns:
                stat = by_column[col]
                mean = "" if stat.mean is None else f"{stat.mean:.4f}"
                std = f"{stat.std:.4f}" if stat.values else ""
                ci = [f"{end:.4f}" for end in stat.ci] if stat.ci else ["", ""]
                writer.writerow([table.dataset or "", table.evaluation, table.metric, table.view, label, col,
                                 mean, std, len(stat.values), ";".join(stat.states), *ci])
    return buffer.getvalue()


def compare(a: Table, b: Table, name_a: str, name_b: str) -> Table:
    """Two sweeps side by side: each entry `A / B`, over the union of their rows."""
    rows: dict[str, dict[str, Stat]] = {}
    for label in dict.fromkeys([*a.rows, *b.rows]):
        rows[label] = {}
        for col in a.columns:
            left, right = a.rows.get(label, {}).get(col, Stat()), b.rows.get(label, {}).get(col, Stat())
            rows[label][col] = Stat(states=[f"{left.text(a.digits)} / {right.text(a.digits)}"])
    return Table(f"{a.dataset} ({name_a} / {name_b})", a.columns, rows, a.view, a.evaluation, a.metric)
