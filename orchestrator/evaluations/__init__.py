"""The evaluation kinds: one module each (its grid item, cells, identity, job, worker entry
point, report table and figures), one table here. A new kind is its module, one line in
`KINDS`, and its worker module (docs/ARCHITECTURE.md)."""

from __future__ import annotations

from typing import Any

from contract.registry import Registry
from orchestrator.evaluations.base import EvaluationKind, EvaluationSettings
from orchestrator.evaluations.finetune_frozen import FinetuneFrozen
from orchestrator.evaluations.linear_probe import LinearProbe
from orchestrator.evaluations.style_transfer import StyleTransfer

# The grid's `evaluation` items, any registered kind's settings chosen by `name`.
EVALUATIONS: Registry[EvaluationSettings] = Registry("evaluation", EvaluationSettings)
KINDS: dict[str, EvaluationKind] = {}


def register(kind: EvaluationKind) -> EvaluationKind:
    """Add a kind: its grid item is accepted from then on, and its cells planned, run and reported."""
    EVALUATIONS.add(kind.settings)
    KINDS[kind.name] = kind
    return kind


# The first is the default of `grid.evaluation`.
for _kind in (LinearProbe(), FinetuneFrozen(), StyleTransfer()):
    register(_kind)


def kind_of(job: Any) -> EvaluationKind:
    """The kind whose job `job` is."""
    return next(k for k in KINDS.values() if isinstance(job, k.job_type))
