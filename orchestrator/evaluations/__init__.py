"""The evaluation kinds: one module each (its grid item, cells, coordinates, identity, job,
worker entry point, cost, report table and figures), one table here, `EVALUATIONS`. A kind
from another package is its module, registered on import (`register(Kind())`) and named
under the `monosweep.evaluations` entry point (contract/plugins.py), and its worker module
(docs/ARCHITECTURE.md)."""

from __future__ import annotations

from typing import Any

from contract.registry import Registry
from orchestrator.evaluations.base import SHARED_AXES, EvaluationKind, EvaluationSettings
from orchestrator.evaluations.finetune_frozen import FinetuneFrozen
from orchestrator.evaluations.linear_probe import LinearProbe
from orchestrator.evaluations.style_transfer import StyleTransfer

# name -> kind; the grid's `evaluation` items (`EVALUATIONS.field`) are any registered kind's
# settings, chosen by `name`. The first kind is the default of `grid.evaluation`.
EVALUATIONS: Registry[EvaluationKind] = Registry("evaluation", EvaluationSettings, lambda kind: kind.settings)


def register(kind: EvaluationKind) -> EvaluationKind:
    """Add a kind: its grid item is accepted from then on, its coordinates in `exclude`,
    `resubmit --where` and `status`, and its cells planned, costed, run and reported.

    Raises:
        ValueError: its name is taken, or a coordinate it declares is a shared axis or
            another kind's with another type.
    """
    taken = coordinates()
    for name, annotation in kind.coordinates.items():
        if name in SHARED_AXES:
            raise ValueError(f"evaluation {kind.name!r}: coordinate {name!r} is a shared axis of every cell")
        if taken.get(name, annotation) != annotation:
            raise ValueError(f"evaluation {kind.name!r}: coordinate {name!r} is another kind's, typed {taken[name]}")
    return EVALUATIONS.add(kind)


def coordinates() -> dict[str, Any]:
    """The coordinates of every registered kind, name -> type, in the order they were added."""
    return {name: annotation for kind in EVALUATIONS for name, annotation in kind.coordinates.items()}


for _kind in (LinearProbe(), FinetuneFrozen(), StyleTransfer()):
    register(_kind)
