"""The pretext-task interface and the registry: a new method is one file and one line here."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from workers.models.alexnet import AlexNetBN


class NonFiniteLoss(FloatingPointError):
    """The pretext loss became NaN or infinite: the job fails rather than record garbage."""

    reason = "nan_loss"


class Method(nn.Module):
    """A pretext task around the trunk. Subclasses that train set `trains` and implement
    `training_step`; the loop itself (data, optimiser, schedule, logging) is in tasks.py."""

    trains: ClassVar[bool] = True

    def __init__(self, config: Any, trunk: AlexNetBN, input_size: int):
        super().__init__()
        self.config, self.trunk, self.input_size = config, trunk, input_size

    def training_step(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(B, 3, H, W) mono samples -> (loss, metrics to log)."""
        raise NotImplementedError


def registry() -> dict[str, type[Method]]:
    """Method name (the spec's `name`) -> class; imported lazily so one method's import
    cost is paid only where it is used."""
    from workers.methods.random_init import RandomInit
    from workers.methods.rotnet import RotNet

    return {"random": RandomInit, "rotnet": RotNet}
