"""Learning-rate schedules: a named setting of every training (pre-training, finetuning, probes),
recorded with it and part of its content key.

A schedule is a factor on each parameter group's base rate and a pure function of the step, so
a resumed run needs nothing but its step to continue it. Milestones are fractions of the run
(`at`), so a shortened run keeps upstream's shape: RotNet's steps at 0.3, 0.6, 0.9 fall on
epochs 15, 30, 45 of its 50. Every kind but `cosine` changes the rate once an epoch, as upstream
sets it at epoch starts:

- `constant`: 1 (DeepCluster's main.py has no schedule);
- `cosine`: 0.5 (1 + cos(pi step / total)), per step (not an upstream schedule of these methods);
- `steps`: x gamma at each milestone epoch max(1, round(a x epochs)) (RotNet's LUT_lr, torchvision's StepLR,
  the linear probes' and finetuning's epoch milestones);
- `exponential`: 1 until epoch s = max(1, round(at[0] x epochs)), then final ** ((e - s + 1) / (epochs - s))
  at epoch e, reaching `final` at the last epoch (BiGAN's train_gan.py set_lr).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from contract.base import Frozen


class Schedule(Frozen):
    """The factor on the base rate over a run (see the module's docstring for each kind)."""

    kind: Literal["constant", "cosine", "steps", "exponential"] = "constant"
    at: tuple[float, ...] = Field((), description="fractions of the run: steps' milestones, exponential's start")
    gamma: float = Field(0.1, gt=0, le=1, description="steps: the factor at each milestone")
    final: float = Field(0.01, gt=0, le=1, description="exponential: the factor at the last epoch")

    @model_validator(mode="before")
    @classmethod
    def _bare_kind(cls, data: Any) -> Any:
        return {"kind": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _arguments(self) -> Schedule:
        if any(not 0 < a < 1 for a in self.at) or list(self.at) != sorted(self.at):
            raise ValueError(f"at {list(self.at)} must be ascending fractions of the run, each in (0, 1)")
        wanted = {"constant": "no", "cosine": "no", "steps": "at least one", "exponential": "one"}[self.kind]
        if (wanted == "no" and self.at) or (wanted == "one" and len(self.at) != 1) or (wanted != "no" and not self.at):
            raise ValueError(f"a {self.kind} schedule takes {wanted} fraction in `at`, got {list(self.at)}")
        return self

    @classmethod
    def at_epochs(cls, milestones: tuple[int, ...], epochs: int, gamma: float = 0.1) -> Schedule:
        """x gamma at each of the `milestones` (epochs) of an `epochs`-long run; milestones at or
        after the end never apply."""
        inside = tuple(m / epochs for m in milestones if 0 < m < epochs)
        return cls(kind="steps", at=inside, gamma=gamma) if inside else cls()

    def factor(self, step: int, steps_per_epoch: int, total: int) -> float:
        """The factor at `step` (0-based) of `total`, `steps_per_epoch` an epoch. A user that sets
        its rate once an epoch passes the epoch as `step` and 1 as `steps_per_epoch`."""
        epochs = max(1, total // max(steps_per_epoch, 1))
        epoch = step // max(steps_per_epoch, 1)
        if self.kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
        if self.kind == "steps":
            return self.gamma ** sum(epoch >= milestone(a, epochs) for a in self.at)
        if self.kind == "exponential":
            start = milestone(self.at[0], epochs)
            if epoch < start:
                return 1.0
            return self.final ** (min(epoch - start + 1, epochs - start) / max(epochs - start, 1))
        return 1.0


def milestone(fraction: float, epochs: int) -> int:
    """The epoch a fraction of the run falls on. Never epoch 0: a run trains at its base rate
    from its first epoch (before results version 4, RotNet's 0.3 of a one-epoch run rounded to
    epoch 0, so one-epoch runs trained at a tenth of their rate from the first step); a
    milestone at or past the last epoch never applies."""
    return max(1, round(fraction * epochs))


CONSTANT = Schedule()
