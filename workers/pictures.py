"""Pictures a researcher looks at rather than reads: conv1 filters and augmented samples."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from workers.data.mono import MonoDataset
from workers.models.alexnet import AlexNetBN


def conv1_filters(trunk: AlexNetBN, path: Path) -> Path:
    """The conv1 kernels as an RGB grid, each scaled to its own range (as in the paper's figure)."""
    w = trunk.blocks[0]["conv"].weight.detach().float().cpu()  # (C1, 3, 11, 11)
    low = w.amin(dim=(1, 2, 3), keepdim=True)
    high = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - low) / (high - low).clamp_min(1e-8)
    w = torch.nn.functional.interpolate(w, scale_factor=4, mode="nearest")  # legible at 100%
    save_image(make_grid(w, nrow=16, padding=2, pad_value=1.0), path)
    return path


def mono_samples(dataset: MonoDataset, path: Path, count: int = 32) -> Path:
    """The first `count` samples of a mono dataset, before normalisation."""
    samples = torch.stack([dataset.raw(i) for i in range(min(count, len(dataset)))])
    save_image(make_grid(samples.float() / 255, nrow=8, padding=2, pad_value=1.0), path)
    return path
