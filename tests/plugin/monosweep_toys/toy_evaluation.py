"""A toy evaluation kind, driver side: the first of its two files (torch-free: the driver plans
with it). pyproject.toml names this module under `monosweep.evaluations`.

The norm of each conv layer's weights, one cell per trunk and order of the norm: the order is
the kind's own grid coordinate (`ord`), which `exclude`, `resubmit --where` and `status` take
like the shipped kinds' `layer` or `frozen`. A table per layer, a column per order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from contract.datasets import LAYERS
from contract.jobs import EvaluationJob, JobCell
from orchestrator.evaluations import register
from orchestrator.evaluations.base import EvaluationKind, EvaluationSettings
from orchestrator.keys import content_key


class WeightNormSettings(EvaluationSettings):
    name: Literal["toy_weight_norm"] = "toy_weight_norm"
    ords: tuple[int, ...] = Field((2,), min_length=1, description="orders of the norm: a cell each")


class WeightNormJob(EvaluationJob):
    ord: int


class WeightNorm(EvaluationKind):
    settings = WeightNormSettings
    coordinates = {"ord": int}
    metrics = tuple(f"{layer}_norm" for layer in LAYERS)
    folded = True  # reads no labels: one table for all datasets

    def points(self, item: Any, spec: Any, uses_labels: bool) -> Iterator[dict[str, Any]]:
        datasets = spec.grid.probe_dataset if uses_labels else [None]  # a trunk per dataset it learned from
        for dataset, order in itertools.product(datasets, item.ords):
            yield {"probe_dataset": dataset, "ord": order}

    def identity(self, item, point, trunk, spec, context) -> tuple[str, str, str]:
        key = content_key("toy_weight_norm", {"pretrain": trunk.key, "ord": point["ord"]})
        return key, key, f"{trunk.label} weight norm ord={point['ord']}"

    def job(self, item, spec, base_dir, key, trunk, cells, context) -> WeightNormJob:
        (cell,) = cells
        return WeightNormJob(key=key, label=cell.label, evaluation=self.name, pretrain_key=trunk.key,
                             network=trunk.network, seed=trunk.seed, ord=cell.ord,
                             cells=(JobCell(key=cell.key, label=cell.label, coordinates=cell.coordinates()),))

    def cost(self, job: WeightNormJob, costs: Any) -> Any:
        """A multiply and an add per weight; the trunk's weights in memory."""
        from orchestrator.estimate import JobEstimate

        weights = sum(p.numel() for p in costs.frozen_trunk(job.network).parameters())
        return JobEstimate("evaluation", self.shape(job), 0, 2.0 * weights, 4.0 * weights)

    def run(self, job, checkpoint: Path, recorder, workdir: Path, resume) -> dict[str, Any]:
        from monosweep_toys import toy_worker

        return toy_worker.weight_norms(job, checkpoint, recorder)

    def column(self, cell) -> str:
        return f"ord={cell.ord}"

    def title(self, table) -> str:
        return f"{table.metric} of the trunk's weights (a column per order of the norm)"


register(WeightNorm())  # registered when the module is imported
