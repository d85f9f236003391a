"""Stage 2 of the mono dataset: a method's own loader over the generated samples.

Upstream, the generator writes 256 px images once and each method's loader crops its input out
of them anew every epoch (RotNet and DeepCluster: RandomResizedCrop(224) + flip; BiGAN: a random
crop, no flip; DeepCluster's clustering pass: the centre crop). Here the view of sample i in
epoch e draws from workers.data.ops.loader_rng(seed, e, i): a resumed run sees the same views.
This is the per-sample reference; training makes the same views a batch at a time on its
device (workers.data.batch_loader), from the same draws (`draw_view`).
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from contract.augmentation import LoaderConfig
from workers.data.crop_boxes import crop_box


def draw_view(
    config: LoaderConfig, height: int, width: int, size: int, rng: np.random.Generator
) -> tuple[int, int, int, int, bool]:
    """The draws of one loader view of a (height, width) sample: (top, left, h, w, flip). The
    crop first, then the flip (drawn only when its probability is above 0). The per-sample
    `load` and the batched workers.data.batch_loader share it."""
    if config.crop == "random_resized":
        top, left, h, w = crop_box(height, width, config.scale, config.ratio, rng)
    else:
        top = int(rng.integers(0, height - size + 1))
        left = int(rng.integers(0, width - size + 1))
        h = w = size
    flip = bool(config.hflip > 0 and rng.random() < config.hflip)
    return top, left, h, w, flip


def load(
    sample: torch.Tensor, config: LoaderConfig, size: int, rng: np.random.Generator
) -> torch.Tensor:
    """One loader view: uint8 (3, G, G) generated sample -> uint8 (3, size, size)."""
    _, height, width = sample.shape
    top, left, h, w, flip = draw_view(config, height, width, size, rng)
    if config.crop == "random_resized":
        # Bilinear, as torchvision's default; antialiased only where it shrinks (as PIL, which
        # upstream's loaders resize with, does; enlarging, both give the same pixels).
        view = F.resized_crop(
            sample, top, left, h, w, [size, size], InterpolationMode.BILINEAR,
            antialias=h > size or w > size,
        )
    else:
        view = sample[:, top : top + size, left : left + size]
    return F.horizontal_flip(view) if flip else view


def centre(sample: torch.Tensor, size: int) -> torch.Tensor:
    """DeepCluster's clustering view: uint8 (3, G, G) -> its centre (3, size, size), which is
    Resize(256) + CenterCrop(224) of a 256 px sample (the resize leaves it as it is)."""
    return F.center_crop(sample, [size, size])
