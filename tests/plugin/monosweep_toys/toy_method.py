"""A toy SSL method's implementation: the second of its two files, imported by the worker
that runs the method (named by the settings' `implementation`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workers.methods.base import Method
from workers.models.alexnet import pool5_shape


class Brightness(Method):
    def __init__(self, config, trunk, input_size: int, classes: int | None = None):
        super().__init__(config, trunk, input_size)
        c, h, w = pool5_shape(trunk, input_size)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 1))

    def training_step(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        target = batch.mean(dim=(1, 2, 3))  # (B,)
        loss = F.mse_loss(self.head(self.trunk(batch)).squeeze(1), target)
        return loss, {}
