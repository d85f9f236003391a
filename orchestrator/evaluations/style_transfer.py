"""Style transfer through the trunk (the paper: early layers suffice for it): one cell per
(content, style) pair of the spec's `style`; the pairs of one trunk share one job. It reads no
labels, so a trunk that learned without them has one cell per pair, and a supervised trunk
one per pair and probe dataset it was trained on."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from contract.images import PHOTOS_DIR, STYLES_DIR, image_problem, resolve_photo, sha256_file
from contract.jobs import ImageFile, PretrainJob, StyleCell, StyleJob
from orchestrator.evaluations.base import EvaluationKind, EvaluationSettings, row_label, trunk_note
from orchestrator.keys import content_key, settings_material

if TYPE_CHECKING:
    from orchestrator.estimate import JobEstimate
    from orchestrator.grid import Cell
    from orchestrator.report import SweepRuns, Table
    from orchestrator.spec import Spec


class StyleTransferSettings(EvaluationSettings):
    """Style transfer through the trunk, one cell per (content, style) pair of the spec's `style`."""

    name: Literal["style_transfer"] = "style_transfer"


def style_paths(spec: Spec, base_dir: Path) -> list[tuple[tuple[str, int], str, Path]]:
    """The contents (photos) and styles (style images) as (place in the spec, name, file)."""
    return [
        ((field, j), ref, resolve_photo(ref, base_dir, folder))
        for field, refs, folder in (
            ("contents", spec.style.contents, PHOTOS_DIR),
            ("styles", spec.style.styles, STYLES_DIR),
        )
        for j, ref in enumerate(refs)
    ]


class StyleTransfer(EvaluationKind):
    settings = StyleTransferSettings
    coordinates = {"content": str, "style": str}  # the photo's and the style image's names
    metrics = ("style_loss", "content_loss")
    digits = 3  # relative losses are small
    folded = True

    def context(self, spec: Spec, base_dir: Path) -> dict[str, ImageFile]:
        """The contents and styles by name, hashed."""
        return {
            ref: ImageFile(path=str(path), sha256=sha256_file(path)) for _, ref, path in style_paths(spec, base_dir)
        }

    def image_problems(self, spec: Spec, base_dir: Path) -> list[tuple[tuple[Any, ...], str]]:
        return [(("style", *place), f"{ref!r}: {problem}") for place, ref, file in style_paths(spec, base_dir)
                if (problem := image_problem(file, 0, source=False))]

    def points(self, item: Any, spec: Spec, uses_labels: bool) -> Iterator[dict[str, Any]]:
        datasets = spec.grid.probe_dataset if uses_labels else [None]
        for dataset, content, style in itertools.product(datasets, spec.style.contents, spec.style.styles):
            yield {"probe_dataset": dataset, "content": content, "style": style}

    def identity(
        self, item: Any, point: dict[str, Any], trunk: PretrainJob, spec: Spec, context: Any
    ) -> tuple[str, str, str]:
        job_key = content_key(
            "style", {"pretrain": trunk.key, "style": settings_material(spec.style, {"contents", "styles"})}
        )
        pair = {"content": context[point["content"]].sha256, "style_image": context[point["style"]].sha256}
        return (
            content_key("style-pair", {"job": job_key, **pair}),
            job_key,
            f"{trunk.label} style {point['content']}+{point['style']}",
        )

    def job(
        self, item: Any, spec: Spec, base_dir: Path, key: str, trunk: PretrainJob, cells: list[Cell], context: Any
    ) -> StyleJob:
        return StyleJob(
            key=key, label=f"{trunk.label} style", evaluation=self.name, pretrain_key=trunk.key,
            network=trunk.network, seed=trunk.seed, style=spec.style,
            cells=tuple(StyleCell(content=context[c.content], style=context[c.style], key=c.key,  # type: ignore[attr-defined]
                                  label=c.label, coordinates=c.coordinates()) for c in cells),
        )

    def shape(self, job: StyleJob) -> str:
        return f"{self.name} {len(job.cells)} pairs{trunk_note(job.network)}"

    def cost(self, job: StyleJob, costs: Any) -> JobEstimate:
        from orchestrator import estimate

        return estimate.style(job, costs)

    def run(self, job: Any, checkpoint: Path, recorder: Any, workdir: Path, resume: Path | None) -> dict[str, Any]:
        from workers import style_transfer

        return style_transfer.stylise(job, checkpoint, recorder, workdir)

    def column(self, cell: Cell) -> str:
        return f"{cell.content}+{cell.style}"  # type: ignore[attr-defined]

    def row(self, cell: Cell) -> str:
        """Datasets fold into the row: a trunk trained with labels says which."""
        return row_label(cell) + (f" ({cell.probe_dataset})" if cell.probe_dataset else "")

    def title(self, table: Table) -> str:
        view = {
            "mean": "", "diff_random": " minus random", "pct_supervised": " as % of supervised",
            "paired": f" minus {table.reference} seed by seed (mean [95% CI], * where it excludes 0)",
        }[table.view]
        return f"{table.metric.replace('_', ' ')}{view} of style transfer (relative to its target: lower is closer)"

    def figures(self, rec: SweepRuns, tables: list[Table], out: Path) -> list[Path]:
        from orchestrator import figures

        cells = [c for c in rec.cells if c.evaluation == self.name]
        return list(filter(None, [figures.style_grid(rec, cells, self.row, out / "style_transfer.png")]))
