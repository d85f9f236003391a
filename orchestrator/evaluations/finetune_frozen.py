"""Finetuning with the leading conv layers frozen (the paper: conv1-2 learned from one image,
the rest trained with labels): one cell, and one job, per (k, probe dataset). Settings: the
grid item's values of k (`frozen`) and the spec's `finetune` recipe."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from contract.datasets import LAYERS
from contract.jobs import FinetuneJob, JobCell, PretrainJob
from orchestrator.evaluations.base import EvaluationKind, EvaluationSettings, dataset_of, trunk_note, view_words
from orchestrator.keys import content_key, settings_material

if TYPE_CHECKING:
    from orchestrator.estimate import JobEstimate
    from orchestrator.grid import Cell
    from orchestrator.report import SweepRuns, Table
    from orchestrator.spec import Spec


class FinetuneFrozenSettings(EvaluationSettings):
    """Finetuning on the probe dataset with conv1..convk frozen, one cell per (k, probe
    dataset); settings in the spec's `finetune`."""

    name: Literal["finetune_frozen"] = "finetune_frozen"
    frozen: tuple[int, ...] = Field((0, 1, 2, 3, 4, 5), min_length=1, description="values of k")

    @field_validator("frozen", mode="before")
    @classmethod
    def _one_or_many(cls, frozen: Any) -> Any:
        return (frozen,) if isinstance(frozen, int) and not isinstance(frozen, bool) else frozen

    @field_validator("frozen")
    @classmethod
    def _layers(cls, frozen: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= k <= len(LAYERS) for k in frozen):
            raise ValueError(
                f"k = {list(frozen)}: the network has {len(LAYERS)} conv layers, so 0 <= k <= {len(LAYERS)}"
            )
        if len(set(frozen)) < len(frozen):
            raise ValueError(f"{[k for k in frozen if frozen.count(k) > 1][0]!r} is listed twice")
        return frozen


class FinetuneFrozen(EvaluationKind):
    settings = FinetuneFrozenSettings
    coordinates = {"frozen": int}
    resumable = True

    def points(self, item: Any, spec: Spec, uses_labels: bool) -> Iterator[dict[str, Any]]:
        for dataset, k in itertools.product(spec.grid.probe_dataset, item.frozen):
            yield {"probe_dataset": dataset, "frozen": k}

    def identity(
        self, item: Any, point: dict[str, Any], trunk: PretrainJob, spec: Spec, context: Any
    ) -> tuple[str, str, str]:
        dataset = point["probe_dataset"]
        material = {"pretrain": trunk.key, "finetune": settings_material(spec.finetune), "dataset": dataset,
                    "frozen": point["frozen"]}
        key = content_key("finetune", material)
        return key, key, f"{trunk.label} finetune k{point['frozen']} {dataset}"

    def job(
        self, item: Any, spec: Spec, base_dir: Path, key: str, trunk: PretrainJob, cells: list[Cell], context: Any
    ) -> FinetuneJob:
        (cell,) = cells
        return FinetuneJob(
            key=key, label=cell.label, evaluation=self.name, pretrain_key=trunk.key, network=trunk.network,
            seed=trunk.seed, finetune=spec.finetune, frozen=cell.frozen,  # type: ignore[attr-defined]
            **dataset_of(spec, base_dir, cell.probe_dataset),  # type: ignore[arg-type]
            checkpoint_every=spec.checkpoint_every, divergence_threshold=spec.divergence_threshold,
            cells=(JobCell(key=cell.key, label=cell.label, coordinates=cell.coordinates()),),
        )

    def shape(self, job: FinetuneJob) -> str:
        return f"{self.name} k={job.frozen} {job.dataset}{trunk_note(job.network)}"

    def cost(self, job: FinetuneJob, costs: Any) -> JobEstimate:
        from orchestrator import estimate

        return estimate.finetune(job, costs)

    def labelled_data(self, job: FinetuneJob) -> dict[str, str]:
        return {job.dataset: job.data_root}

    def step_samples(self, job: FinetuneJob) -> int:
        return job.finetune.batch_size

    def run(self, job: Any, checkpoint: Path, recorder: Any, workdir: Path, resume: Path | None) -> dict[str, Any]:
        from workers import finetune

        return finetune.finetune(job, checkpoint, recorder, workdir, resume)

    def column(self, cell: Cell) -> str:
        return f"k={cell.frozen}"  # type: ignore[attr-defined]

    def order(self, columns: list[str]) -> list[str]:
        return sorted(columns, key=lambda k: int(k[2:]))

    def title(self, table: Table) -> str:
        return f"{view_words(table)} on {table.dataset} after finetuning with conv1..convk frozen"

    def figures(self, rec: SweepRuns, tables: list[Table], out: Path) -> list[Path]:
        from orchestrator import figures

        return [
            figures.layer_curves(
                tables, out / "finetune_top1.png", "frozen layers k (conv1..convk)", "finetuned top-1 (%)"
            )
        ]
