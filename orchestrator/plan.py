"""Pure planning: the expanded grid against what MLflow says is finished -> what to run."""

from __future__ import annotations

from dataclasses import dataclass

from contract.jobs import EvaluationJob, PretrainJob
from orchestrator.grid import Expansion


@dataclass(frozen=True)
class Plan:
    pretrain: list[PretrainJob]  # to train
    evaluation: list[EvaluationJob]  # to run, each holding only its pending cells
    reused_pretrain: list[str]  # finished pretrain keys that pending evaluations reuse
    done_cells: int
    pending_cells: int

    @property
    def empty(self) -> bool:
        return not self.pretrain and not self.evaluation


def plan(sweep: Expansion, finished_cells: set[str], finished_pretrain: set[str]) -> Plan:
    """Pending cells grouped into evaluation jobs; their pretrain jobs trained unless finished."""
    evaluation: list[EvaluationJob] = []
    for job in sweep.evaluation_jobs.values():
        pending = tuple(c for c in job.cells if c.key not in finished_cells)
        if pending:
            evaluation.append(job.model_copy(update={"cells": pending}))
    needed = list(dict.fromkeys(job.pretrain_key for job in evaluation))
    done = sum(c.key in finished_cells for c in sweep.cells)
    return Plan(
        pretrain=[sweep.pretrain_jobs[k] for k in needed if k not in finished_pretrain],
        evaluation=evaluation,
        reused_pretrain=[k for k in needed if k in finished_pretrain],
        done_cells=done,
        pending_cells=len(sweep.cells) - done,
    )
