"""The raw-pixel control: a trunk that is no network. Its tap of every layer is the normalised
input image (B, 3, S, S) itself, so a linear probe of `pixels conv1` reads the input pooled to
as many features as conv1's probe reads (workers.probes.pool_target), through the same adaptive
max-pooling, per-channel BatchNorm and linear head: what the conv layers add over the pixels,
with the probe's pooling and feature count held fixed. Ours (docs/FIDELITY.md): the paper has
no such control. A grey image reaches the trunk as three equal channels, normalised each with
its own mean and std, so for grey data a third of the features carry its information.
"""

from __future__ import annotations

import torch
from torch import nn

from contract.datasets import LAYERS


class Pixels(nn.Module):
    """No parameters, no computation: `taps` gives the input for every requested layer."""

    def taps(self, x: torch.Tensor, layers: tuple[str, ...] = LAYERS) -> dict[str, torch.Tensor]:
        if not layers:
            raise ValueError("taps() needs at least one layer")
        return {layer: x for layer in layers}  # (B, 3, S, S) each

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
