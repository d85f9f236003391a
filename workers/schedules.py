"""Learning-rate schedules: one family of pure functions, each a factor on the base rate.

A schedule is data, so a setting can name one and a checkpoint needs nothing to resume it
(the factor is a function of the step alone):

- `("cosine",)`: cosine decay from 1 to 0 over all steps (pre-training);
- `("steps", milestones, gamma)`: x gamma at each milestone epoch (finetuning per step,
  linear probes per epoch; torch's MultiStepLR).

`factor(schedule, step, steps_per_epoch, total)` evaluates one. A user that sets its rate once
an epoch passes the epoch as `step` and 1 as `steps_per_epoch`. A new kind is one function of
(step, steps_per_epoch, total, *arguments) and one entry in KINDS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Schedule = tuple[Any, ...]  # (kind, *arguments)

COSINE: Schedule = ("cosine",)


def step_decay(milestones: tuple[int, ...], gamma: float = 0.1) -> Schedule:
    """x gamma at each of the `milestones` (epochs)."""
    return ("steps", tuple(milestones), gamma)


def cosine(step: int, steps_per_epoch: int, total: int) -> float:
    """0.5 (1 + cos(pi step / total)): 1 at the first step, 0 from `total` on."""
    return 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def steps(
    step: int, steps_per_epoch: int, total: int, milestones: tuple[int, ...], gamma: float
) -> float:
    """gamma ** (the number of milestones the step's epoch has reached)."""
    return gamma ** sum(step // steps_per_epoch >= m for m in milestones)


KINDS: dict[str, Callable[..., float]] = {"cosine": cosine, "steps": steps}


def factor(schedule: Schedule, step: int, steps_per_epoch: int, total: int) -> float:
    """The factor on the base rate at `step` (0-based) of `total`, `steps_per_epoch` an epoch.

    Raises:
        ValueError: the schedule's kind is not one of KINDS.
    """
    kind, *arguments = schedule
    if kind not in KINDS:
        raise ValueError(f"schedule {kind!r} is not one of {', '.join(KINDS)}")
    return KINDS[kind](step, steps_per_epoch, total, *arguments)
