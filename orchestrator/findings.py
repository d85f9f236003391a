"""Findings: the claims an experiment file declares and its sweep decides.

    findings:
      - name: deep_layers_gain
        claim: RotNet on one photo beats a random network on conv4 and conv5
        a: rotnet N1 astronaut full       # rows as the report names them
        b: random
        at: [conv4, conv5]                # a test per column: a's minus b's, paired by seed
        kind: greater                     # greater, less, or equivalent (with a margin)
      - name: frozen_conv12_free
        claim: conv1-conv2 learned from one photo can be frozen for finetuning at no cost
        a: rotnet N1 astronaut full
        a_column: k=2                     # a's k=2 minus b's k=0 (b defaults to a: one row's two columns)
        b: random
        b_column: k=0
        kind: equivalent
        margin: 1.0                       # |a - b| < 1 point, in the metric's units
      - name: probe_separates
        claim: supervised beats random by more than 2 points: the probe can tell trunks apart
        a: supervised fashion_mnist
        b: random
        at: [conv2, conv3, conv4, conv5]
        kind: greater
        margin: 2.0                       # a - b > 2 points
        control: true                     # not held: no other finding's verdict is read

A finding names rows and columns of one report table (an evaluation kind's, on one probe
dataset, of one metric), each inferred where the grid leaves one choice. `resolve` checks the
names against the expanded grid and makes each (finding, column) a `Comparison`: what
orchestrator/decide.py tests and orchestrator/rounds.py adds seeds for.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from contract.base import Frozen
from contract.datasets import LabelledDataset
from orchestrator.evaluations import EVALUATIONS

if TYPE_CHECKING:
    from orchestrator.grid import Cell

Problem = tuple[tuple[Any, ...], str]  # (place in the file, as pydantic locates it; message)
TableId = tuple[str, str, str | None]  # (evaluation kind, metric, probe dataset; None: a folded kind)


class Finding(Frozen):
    """A claim about two entries of a report table: `a` minus `b` is greater than `margin`
    (default 0), less than -`margin`, or within +-`margin` (equivalent), at each column of
    `at`, or at `a_column` against `b_column`. A `control` (a positive control: the measurement
    can separate what it must) gates the rest: until every control is held, no other finding's
    verdict is read."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    claim: str = Field(min_length=1, description="the claim in words")
    a: str = Field(min_length=1, description="a row as the report names it, e.g. `rotnet N1 astronaut full`")
    b: str | None = Field(None, min_length=1, description="the row subtracted from a (default: a, with a_column)")
    at: tuple[str, ...] | None = Field(None, min_length=1, description="columns compared like for like")
    a_column: str | None = Field(None, min_length=1, description="a's column, against b's `b_column` (k=2 against k=0)")
    b_column: str | None = Field(None, min_length=1, description="b's column, with `a_column`")
    kind: Literal["greater", "less", "equivalent"]
    margin: float | None = Field(
        None, gt=0, description="in the metric's units: equivalent |a - b| < margin (required); greater a - b > "
        "margin, less a - b < -margin (default 0)"
    )
    control: bool = Field(False, description="a positive control: other findings are read only once it is held")
    evaluation: str | None = Field(None, description="the table's evaluation kind (default: the one with the columns)")
    dataset: LabelledDataset | None = Field(None, description="the table's probe dataset (default: the grid's one)")
    metric: str | None = Field(None, description="the table's metric (default: the kind's first, top1)")
    variance: Literal["pooled", "paired"] = Field(
        "pooled", description="pooled: an additive model (row + seed) over the column's rows; paired: this "
        "comparison's own seeds alone (always so for two different columns)"
    )

    @field_validator("evaluation")
    @classmethod
    def _known_evaluation(cls, name: str | None) -> str | None:
        if name is not None and name not in EVALUATIONS:
            raise ValueError(f"{name!r} is not one of {', '.join(EVALUATIONS.names())}")
        return name

    @model_validator(mode="after")
    def _one_comparison(self) -> Finding:
        columns = (self.a_column, self.b_column)
        if (self.at is None) == (columns == (None, None)) or (self.at is None and None in columns):
            raise ValueError("give `at` (columns compared like for like) or both `a_column` and `b_column`")
        if self.at is not None and (self.b is None or self.b == self.a):
            raise ValueError("`at` compares two rows: give `b`, a row other than `a`")
        if self.subtracted == self.a and self.a_column == self.b_column and self.at is None:
            raise ValueError(f"compares {self.a!r} at {self.a_column} with itself")
        if self.kind == "equivalent" and self.margin is None:
            raise ValueError("an `equivalent` finding needs a `margin` (|a - b| < margin, in the metric's units)")
        return self

    @property
    def subtracted(self) -> str:
        return self.b or self.a


@dataclass(frozen=True)
class Comparison:
    """One (finding, column): `a` at `column_a` minus `b` at `column_b` in one table."""

    finding: Finding
    table: TableId
    a: str
    column_a: str
    b: str
    column_b: str

    @property
    def column(self) -> str:
        """The column as the findings view shows it: `conv4`, or `k=2 - k=0`."""
        return self.column_a if self.column_a == self.column_b else f"{self.column_a} - {self.column_b}"

    @property
    def pooled(self) -> bool:
        """Pooled where it applies: both sides in one column (the additive model is a column's)."""
        return self.finding.variance == "pooled" and self.column_a == self.column_b

    @property
    def rows(self) -> tuple[str, str]:
        return self.a, self.b


def resolve(findings: Sequence[Finding], cells: Sequence[Cell]) -> tuple[list[Comparison], list[Problem]]:
    """The comparisons of the findings in the tables `cells` fill, and a located problem for each
    name that is not there (row, column, evaluation, dataset, metric)."""
    shapes = _shapes(cells)
    comparisons: list[Comparison] = []
    problems: list[Problem] = []
    for i, finding in enumerate(findings):
        found, trouble = _resolve(finding, shapes)
        comparisons += found
        problems += [(("findings", i, *place), message) for place, message in trouble]
    return comparisons, problems


# (evaluation, dataset) -> row -> its columns; a folded kind's dataset is None.
Shapes = dict[tuple[str, str | None], dict[str, set[str]]]


def _shapes(cells: Sequence[Cell]) -> Shapes:
    shapes: Shapes = defaultdict(lambda: defaultdict(set))
    for cell in cells:
        kind = EVALUATIONS[cell.evaluation]
        shapes[cell.evaluation, None if kind.folded else cell.probe_dataset][kind.row(cell)].add(kind.column(cell))
    return shapes


def _resolve(f: Finding, shapes: Shapes) -> tuple[list[Comparison], list[Problem]]:
    pairs = [(c, c) for c in f.at] if f.at else [(f.a_column, f.b_column)]
    named = [c for pair in pairs for c in pair]
    evaluations = list(dict.fromkeys(evaluation for evaluation, _ in shapes))
    if f.evaluation is not None and f.evaluation not in evaluations:
        return [], [(("evaluation",), f"{f.evaluation!r} is not evaluated in this grid; it evaluates "
                                      f"{', '.join(evaluations)}")]
    if f.evaluation is not None:
        evaluation = f.evaluation
    else:
        fits = [e for e in evaluations if set(named) <= _columns(shapes, e)]
        if len(fits) != 1:
            where = "at" if f.at else "a_column"
            tables = "; ".join(f"{e}: {', '.join(sorted(_columns(shapes, e)))}" for e in evaluations)
            unknown = [c for c in dict.fromkeys(named) if not any(c in _columns(shapes, e) for e in evaluations)]
            several = "name the table with `evaluation`" if fits else "not the columns of one table"
            why = (f"{', '.join(map(repr, unknown))} is not a column here" if unknown
                   else f"{list(dict.fromkeys(named))}: {several}")
            return [], [((where,), f"{why} ({tables})")]
        (evaluation,) = fits
    kind = EVALUATIONS[evaluation]
    datasets = [d for e, d in shapes if e == evaluation]
    if f.dataset is not None and f.dataset not in datasets:
        return [], [(("dataset",), f"{f.dataset!r}: {evaluation} is not run on it here; it is run on "
                                   f"{', '.join(map(str, datasets))}")]
    if f.dataset is None and len(datasets) > 1:
        return [], [((), f"{evaluation} is run on {', '.join(map(str, datasets))}: name one with `dataset`")]
    dataset = f.dataset if f.dataset is not None and not kind.folded else datasets[0]
    metric = f.metric or kind.metrics[0]
    if metric not in kind.metrics:
        return [], [(("metric",), f"{metric!r} is not one of {', '.join(kind.metrics)}")]
    rows = shapes[evaluation, dataset]
    problems = [
        ((side,), f"{row!r} is not a row of the {evaluation} table{_hint(row, rows)}; rows: {', '.join(rows)}")
        for side, row in (("a", f.a), ("b", f.subtracted)) if row not in rows
    ]
    if problems:
        return [], problems
    for j, (column_a, column_b) in enumerate(pairs):
        for side, row, column in (("a", f.a, column_a), ("b", f.subtracted, column_b)):
            if column not in rows[row]:
                where = ("at", j) if f.at else (f"{side}_column",)
                problems.append((where, f"{column!r}: row {row!r} has no cell in that column; its columns: "
                                        f"{', '.join(sorted(rows[row]))}"))
    if problems:
        return [], problems
    table = (evaluation, metric, dataset)
    return [Comparison(f, table, f.a, ca, f.subtracted, cb) for ca, cb in pairs], []  # type: ignore[arg-type]


def _columns(shapes: Shapes, evaluation: str) -> set[str]:
    return {c for (e, _), rows in shapes.items() if e == evaluation for cols in rows.values() for c in cols}


def _hint(row: str, rows: Any) -> str:
    guess = difflib.get_close_matches(row, list(rows), n=1)
    return f" (did you mean {guess[0]!r}?)" if guess else ""
