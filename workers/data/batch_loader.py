"""Stage 2 of the mono dataset for a whole batch at once, on the device: a method's loader views
(workers.data.loader.load, one sample at a time) and DeepCluster's centre crops.

The draws are load()'s own, bit-identical: view i of epoch e comes from loader_rng(seed, e, i),
replayed on arrays (workers.data.streams.Streams; seeds, epochs or indices at or above 2**32
take the scalar path, draw_view itself). The pixels: every view's crop box, resize and flip is
one affine map, so the batch is one `F.grid_sample` (bilinear) over the generated samples.
What differs from load(): no antialiasing where a crop shrinks (load antialiases, as PIL; at
224 px a crop shrinks by at most 256 / 224 = 1.14x), and bilinear reads at a crop's edge may
take the sample's pixels just outside it where resized_crop clamps to the crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from contract.augmentation import LoaderConfig
from workers.data.batch_augment import affine_grid
from workers.data.crop_boxes import crop_sizes
from workers.data.loader import draw_view
from workers.data.ops import LOADER_STREAM, loader_rng
from workers.data.streams import Streams


@dataclass(frozen=True)
class Views:
    """One row per sample: the crop box in generated-sample pixels and the flip."""

    top: np.ndarray  # (B,) int
    left: np.ndarray
    height: np.ndarray
    width: np.ndarray
    flip: np.ndarray  # (B,) bool


def draw_views(
    config: LoaderConfig, generated: int, size: int, seed: int, epoch: int,
    indices: Sequence[int] | np.ndarray,
) -> Views:
    """What load() draws for samples `indices` of side `generated` in `epoch`, bit-identical.

    Raises:
        ValueError: no crop fits after 1000 tries (as crop_box).
    """
    idx = np.asarray(indices, dtype=np.int64)
    n = len(idx)
    if n and (min(seed, epoch, idx.min()) < 0 or max(seed, epoch, idx.max()) >= 2**32):
        return draw_views_reference(config, generated, size, seed, epoch, idx)
    words = (np.full(n, seed), np.full(n, LOADER_STREAM), np.full(n, epoch), idx)
    streams = Streams(np.stack(words))  # loader_rng's entropy, one column per view
    at, side = np.arange(n), np.full(n, generated, np.int64)
    if config.crop == "random_resized":
        h, w = crop_sizes(streams, at, side, side, config.scale, config.ratio)
    else:
        h = w = np.full(n, size, np.int64)
    top = streams.integers(at, side - h + 1)
    left = streams.integers(at, side - w + 1)
    flip = streams.random(at) < config.hflip if config.hflip > 0 else np.zeros(n, bool)
    return Views(top, left, h, w, flip)


def draw_views_reference(
    config: LoaderConfig, generated: int, size: int, seed: int, epoch: int,
    indices: Sequence[int] | np.ndarray,
) -> Views:
    """The spec of draw_views: load()'s draws (draw_view), one loader_rng per sample."""
    rows = [
        draw_view(config, generated, generated, size, loader_rng(seed, epoch, int(i)))
        for i in indices
    ]
    columns = list(zip(*rows, strict=True)) if rows else [()] * 5
    types = [np.int64] * 4 + [bool]
    return Views(*(np.array(c, dtype=t) for c, t in zip(columns, types, strict=True)))


def crop_views(samples: torch.Tensor, views: Views, size: int) -> torch.Tensor:
    """float (B, 3, G, G) generated samples -> their views (B, 3, size, size): each crop box
    resized to `size` (bilinear, no antialias) and flipped where drawn."""
    generated = samples.shape[-1]
    # Output coordinate v in [-1, 1] -> sample coordinate (2 left + (v + 1) w) / G - 1 (pixel
    # edges, align_corners=False); a flip negates v.
    sx = np.where(views.flip, -1.0, 1.0) * views.width / generated
    sy = views.height / generated
    ox = (2 * views.left + views.width) / generated - 1
    oy = (2 * views.top + views.height) / generated - 1
    zero = np.zeros(len(sx))
    theta = np.stack([np.stack([sx, zero, ox], -1), np.stack([zero, sy, oy], -1)], -2)  # (B, 2, 3)
    grid = affine_grid(torch.from_numpy(theta).float().to(samples.device), size)
    return F.grid_sample(samples, grid, mode="bilinear", padding_mode="border", align_corners=False)


def centre_views(samples: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, G, G) -> the centre (B, 3, size, size), as loader.centre (F.center_crop's offset)."""
    offset = int(round((samples.shape[-1] - size) / 2.0))
    return samples[..., offset : offset + size, offset : offset + size]
