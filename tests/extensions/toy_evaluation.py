"""A toy evaluation kind, driver side: the first of its two files. One cell per trunk: the
norm of each conv layer's weights, a table with a column per layer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from contract.datasets import LAYERS
from contract.jobs import EvaluationJob, JobCell
from orchestrator.evaluations import register
from orchestrator.evaluations.base import EvaluationKind, EvaluationSettings
from orchestrator.keys import content_key


class WeightNormSettings(EvaluationSettings):
    name: Literal["toy_weight_norm"] = "toy_weight_norm"
    ord: int = 2


class WeightNormJob(EvaluationJob):
    ord: int


class WeightNorm(EvaluationKind):
    settings = WeightNormSettings
    job_type = WeightNormJob
    metrics = tuple(f"{layer}_norm" for layer in LAYERS)

    def points(self, item: Any, spec: Any, uses_labels: bool) -> Iterator[dict[str, Any]]:
        yield {"probe_dataset": None}

    def identity(self, item, point, trunk, spec, context) -> tuple[str, str, str]:
        key = content_key("toy_weight_norm", {"pretrain": trunk.key, "ord": item.ord})
        return key, key, f"{trunk.label} weight norm"

    def job(self, spec, base_dir, key, trunk, cells, context) -> WeightNormJob:
        (cell,) = cells
        ord_ = next(e.ord for e in spec.grid.evaluation if e.name == self.name)
        return WeightNormJob(key=key, label=cell.label, pretrain_key=trunk.key, network=trunk.network,
                             seed=trunk.seed, ord=ord_,
                             cells=(JobCell(key=cell.key, label=cell.label, coordinates=cell.coordinates()),))

    def run(self, job, checkpoint: Path, recorder, workdir: Path, resume) -> dict[str, Any]:
        from tests.extensions import toy_worker

        return toy_worker.weight_norms(job, checkpoint, recorder)

    def column(self, cell) -> str:
        return "trunk"

    def title(self, table) -> str:
        return f"{table.metric} of the trunk's weights"


register(WeightNorm())  # the kind's one line in the table
