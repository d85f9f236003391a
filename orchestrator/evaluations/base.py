"""What an evaluation kind is: everything the driver needs to know of one way of judging a
trunk, in one class, so that the grid, the jobs, the report and the figures look a kind up
instead of asking which kind a cell is.

A kind declares its grid item (`settings`, a `name`-tagged model: `{name: KIND, ...its
settings}`), the coordinates its cells have beyond the shared axes (`coordinates`, with their
types: `exclude`, `resubmit --where` and `status` read them), the cells it makes of one trunk
(`points`), their identity (`identity`: key, the key of the job that runs the cell, label), the
job (`job`, a model from contract/jobs or its own, carrying the kind's name: the worker
dispatches by it), its worker entry point (`run`, importing the worker module where it runs),
what planning and checking need of a job (`shape`, `cost`, `labelled_data`, `step_samples`),
and its report (columns, title, figures). Kinds are registered in orchestrator/evaluations/
__init__.py (or by a plugin's module); docs/ARCHITECTURE.md adds one end to end.

No torch, ray, mlflow or matplotlib here: the driver plans without them, and a worker that
unpickles a job class defined beside its kind imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from contract.base import Frozen
from contract.jobs import EvaluationJob, PretrainJob

if TYPE_CHECKING:
    from contract.network import NetworkConfig
    from contract.recorder import Recorder
    from orchestrator.estimate import JobEstimate
    from orchestrator.grid import Cell
    from orchestrator.report import SweepRuns, Table
    from orchestrator.spec import Spec

# The coordinates every cell has, whatever its kind: a kind's own come on top (`coordinates`).
SHARED_AXES = ("method", "n", "images", "augmentation", "evaluation", "probe_dataset", "seed")


class EvaluationSettings(Frozen):
    """A grid item of the `evaluation` axis: the kind's name and its per-item settings."""

    name: str


class EvaluationKind:
    """One way of evaluating a trunk. Subclasses set the class attributes and implement
    `points`, `identity`, `job`, `column`, `title` and `run`; the other methods have defaults."""

    settings: ClassVar[type[EvaluationSettings]]
    # Its cells' own grid coordinates, name -> type (`Layer`, `int`, `str`): what an `exclude`
    # rule and `resubmit --where` may name, and what `status` counts cells by.
    coordinates: ClassVar[dict[str, Any]] = {}
    metrics: ClassVar[tuple[str, ...]] = ("top1",)  # one report table per metric
    digits: ClassVar[int] = 2  # decimals in report tables
    folded: ClassVar[bool] = False  # one table for all probe datasets (a kind that reads no labels)
    resumable: ClassVar[bool] = False  # the job saves resume.pt and continues from it
    reads_pixels: ClassVar[bool] = False  # it reads only taps, so the raw-pixel control (`pixels`) too

    @property
    def name(self) -> str:
        return self.settings.model_fields["name"].default

    # Planning (pure) -------------------------------------------------------------------------

    def context(self, spec: Spec, base_dir: Path) -> Any:
        """What identities and jobs need beyond the spec, computed once per sweep (style
        transfer: its images, hashed)."""
        return None

    def image_problems(self, spec: Spec, base_dir: Path) -> list[tuple[tuple[Any, ...], str]]:
        """(place in the spec, why) for each image of this kind that a worker could not use."""
        return []

    def points(self, item: Any, spec: Spec, uses_labels: bool) -> Iterator[dict[str, Any]]:
        """The cells this item makes of one trunk, as grid coordinates: a `probe_dataset` (None
        for a kind that reads no labels, unless the trunk learned from them: it exists once per
        dataset) and a value of each of `coordinates`."""
        raise NotImplementedError

    def identity(
        self, item: Any, point: dict[str, Any], trunk: PretrainJob, spec: Spec, context: Any
    ) -> tuple[str, str, str]:
        """(cell key, the key of the job that runs it, label): cells of one job share its key."""
        raise NotImplementedError

    def job(
        self, item: Any, spec: Spec, base_dir: Path, key: str, trunk: PretrainJob, cells: list[Cell], context: Any
    ) -> EvaluationJob:
        """The job that runs `cells` (made of grid item `item`) on the trunk as trained
        (DeepCluster's Sobel included), with `evaluation=self.name`: the worker runs the kind
        the job names."""
        raise NotImplementedError

    def shape(self, job: Any) -> str:
        """The job's row in `plan --estimate` and `monosweep smoke` (one row per job shape):
        the kind, with what sets its cost (dataset, k, pairs, a Sobel trunk)."""
        return self.name

    def cost(self, job: Any, costs: Any) -> JobEstimate | None:
        """What the job will compute (`orchestrator.estimate.JobEstimate`), from what one sample
        costs (`costs`: workers.costs, measured on the real modules); None: no estimate."""
        return None

    def labelled_data(self, job: Any) -> dict[str, str]:
        """The labelled datasets the job reads, dataset -> its root on the workers (checked
        to exist before a local run starts)."""
        return {}

    def step_samples(self, job: Any) -> int:
        """Samples one of the job's steps reads (`monosweep smoke`'s samples/s)."""
        return 1

    # Running (on the worker) -----------------------------------------------------------------

    def run(self, job: Any, checkpoint: Path, recorder: Recorder, workdir: Path, resume: Path | None) -> dict[str, Any]:
        """Evaluate the trunk in `checkpoint`; returns the scores. Imports its worker module here."""
        raise NotImplementedError

    # Reporting -------------------------------------------------------------------------------

    def column(self, cell: Cell) -> str:
        """The cell's column in its table."""
        raise NotImplementedError

    def order(self, columns: list[str]) -> list[str]:
        """The table's columns in reading order (default: grid order)."""
        return columns

    def row(self, cell: Cell) -> str:
        """The cell's row: its pre-training (method, N, augmentation)."""
        return row_label(cell)

    def title(self, table: Table) -> str:
        raise NotImplementedError

    def figures(self, rec: SweepRuns, tables: list[Table], out: Path) -> list[Path]:
        """The kind's figures of a sweep, written into `out` (none by default)."""
        return []


def row_label(cell: Cell) -> str:
    """A pre-training as report rows show it: `rotnet N1 astronaut full`."""
    return " ".join(p for p in (cell.method, cell.images, cell.augmentation) if p)


VIEW_WORDS = {
    "mean": "top-1 (%)", "diff_random": "top-1 minus random (points)", "pct_supervised": "top-1 as % of supervised",
    "paired": "top-1 minus {reference} seed by seed (mean [95% CI], * where it excludes 0)",
}


def view_words(table: Table) -> str:
    """What a table of `table.view` shows, its reference row named."""
    return VIEW_WORDS[table.view].format(reference=table.reference)


def trunk_note(network: NetworkConfig) -> str:
    """What sets a trunk's cost apart in a job shape's name (DeepCluster's Sobel input)."""
    return ", Sobel trunk" if network.sobel else ""


def dataset_of(spec: Spec, base_dir: Path, dataset: str) -> dict[str, str]:
    """A job's labelled dataset: its name and its root on the workers."""
    return {"dataset": dataset, "data_root": str((base_dir / spec.data_root(dataset)).resolve())}
