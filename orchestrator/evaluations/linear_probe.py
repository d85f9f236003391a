"""Linear probes on the frozen trunk (the paper's main measurement): one cell per (layer,
probe dataset); the layers of one (trunk, dataset) share one job, which probes them all in
one pass of the trunk. Settings: the spec's `probe` protocol."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from contract.datasets import LAYERS, Layer
from contract.jobs import PretrainJob, ProbeCell, ProbeJob
from orchestrator.evaluations.base import EvaluationKind, EvaluationSettings, dataset_of, trunk_note, view_words
from orchestrator.keys import content_key, settings_material

if TYPE_CHECKING:
    from orchestrator.estimate import JobEstimate
    from orchestrator.grid import Cell
    from orchestrator.report import SweepRuns, Table
    from orchestrator.spec import Spec


class LinearProbeSettings(EvaluationSettings):
    """Linear probes on the frozen trunk, one cell per (layer, probe dataset)."""

    name: Literal["linear_probe"] = "linear_probe"


class LinearProbe(EvaluationKind):
    settings = LinearProbeSettings
    coordinates = {"layer": Layer}
    reads_pixels = True

    def points(self, item: Any, spec: Spec, uses_labels: bool) -> Iterator[dict[str, Any]]:
        for dataset, layer in itertools.product(spec.grid.probe_dataset, spec.grid.layer):
            yield {"probe_dataset": dataset, "layer": layer}

    def identity(
        self, item: Any, point: dict[str, Any], trunk: PretrainJob, spec: Spec, context: Any
    ) -> tuple[str, str, str]:
        dataset = point["probe_dataset"]
        probe = {"pretrain": trunk.key, "probe": settings_material(spec.probe), "dataset": dataset}
        key = content_key("cell", {**probe, "layer": point["layer"]})
        return key, content_key("probe", probe), f"{trunk.label} {point['layer']} {dataset}"

    def job(
        self, item: Any, spec: Spec, base_dir: Path, key: str, trunk: PretrainJob, cells: list[Cell], context: Any
    ) -> ProbeJob:
        dataset = cells[0].probe_dataset
        return ProbeJob(
            key=key, label=f"{trunk.label} {dataset}", evaluation=self.name, pretrain_key=trunk.key,
            network=trunk.network, seed=trunk.seed, probe=spec.probe, **dataset_of(spec, base_dir, dataset),  # type: ignore[arg-type]
            cells=tuple(ProbeCell(layer=c.layer, key=c.key, label=c.label, coordinates=c.coordinates())  # type: ignore[attr-defined]
                        for c in cells),
        )

    def shape(self, job: ProbeJob) -> str:
        return f"{self.name} {job.dataset}{trunk_note(job.network)}"

    def cost(self, job: ProbeJob, costs: Any) -> JobEstimate:
        from orchestrator import estimate

        return estimate.probe(job, costs)

    def labelled_data(self, job: ProbeJob) -> dict[str, str]:
        return {job.dataset: job.data_root}

    def step_samples(self, job: ProbeJob) -> int:
        return job.probe.batch_size

    def run(self, job: Any, checkpoint: Path, recorder: Any, workdir: Path, resume: Path | None) -> dict[str, Any]:
        from workers import tasks

        return tasks.probe(job, checkpoint, recorder)

    def column(self, cell: Cell) -> str:
        return cell.layer  # type: ignore[attr-defined]

    def order(self, columns: list[str]) -> list[str]:
        return [layer for layer in LAYERS if layer in columns]

    def title(self, table: Table) -> str:
        return f"{view_words(table)} of linear probes on {table.dataset}"

    def figures(self, rec: SweepRuns, tables: list[Table], out: Path) -> list[Path]:
        from orchestrator import figures

        cells = [c for c in rec.cells if c.evaluation == self.name]
        pictures = [figures.layer_curves(tables, out / "top1_per_layer.png", "probed layer", "linear probe top-1 (%)")]
        if len({c.n for c in cells if c.n}) > 1:  # a curve against N needs more than one N
            pictures.append(figures.top1_vs_n(rec, cells, out / "top1_vs_n.png"))
        if len(tables[0].rows) > 1:
            pictures.append(figures.ablation_bars(tables, out / "augmentation_ablation.png"))
        return pictures
