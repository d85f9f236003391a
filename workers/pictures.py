"""Pictures a researcher looks at rather than reads: conv1 filters and augmented samples."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from workers.data.mono import MonoDataset
from workers.data.probe_sets import LabelledSamples
from workers.data.real import RealImages
from workers.models.alexnet import AlexNet


def conv1_filters(trunk: AlexNet, path: Path) -> Path:
    """The conv1 kernels as an RGB grid, each scaled to its own range (as in the paper's
    figure); behind a Sobel layer (2 input channels) each channel is a grey kernel."""
    w = trunk.blocks[0]["conv"].weight.detach().float().cpu()  # (C1, 3 or 2, 11, 11)
    if w.shape[1] != 3:
        w = w.reshape(-1, 1, *w.shape[2:])  # (C1 x 2, 1, 11, 11)
    low = w.amin(dim=(1, 2, 3), keepdim=True)
    high = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - low) / (high - low).clamp_min(1e-8)
    w = torch.nn.functional.interpolate(w, scale_factor=4, mode="nearest")  # legible at 100%
    save_image(make_grid(w, nrow=16, padding=2, pad_value=1.0), path)
    return path


def samples(dataset: MonoDataset | RealImages | LabelledSamples, path: Path, count: int = 32) -> Path:
    """`count` pictures of training samples, before normalisation: a labelled split's first
    train crops, a whole split's first real images as the first epoch shows them, or the first
    count / 2 generated mono samples, each followed by its view in epoch 0 (smaller: the input
    size, on a white margin)."""
    if isinstance(dataset, MonoDataset):
        views, side = dataset.at_epoch(0), dataset.generated
        tiles = []
        for i in range(min(count // 2, len(dataset))):
            view = views.raw(i)  # type: ignore[attr-defined]
            framed = torch.full((3, side, side), 255, dtype=torch.uint8)
            framed[:, : view.shape[1], : view.shape[2]] = view
            tiles += [dataset.raw(i), framed]
    else:
        tiles = [dataset.raw(i) for i in range(min(count, len(dataset)))]
    grid = make_grid(torch.stack(tiles).float() / 255, nrow=8, padding=2, pad_value=1.0)
    save_image(grid, path)
    return path
