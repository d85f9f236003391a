"""The atlas the batched augmentation samples from: every source image at a few resolutions
(a mip pyramid), packed into one float image on the device.

A large crop shrunk to the canvas reads a pre-filtered level instead of aliasing. Memory: about
21 bytes per source pixel with its pyramid (float32): right for the paper's N = 1..1000
photographs, not for N = ImageNet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PAD = (
    2  # replicated border around each atlas tile, so bilinear reads at an edge clamp as resize does
)


@dataclass(frozen=True)
class Tile:
    """Where one pyramid level of one source sits in the atlas, and its scale to level 0."""

    x: int
    y: int
    scale_x: float
    scale_y: float


def _levels(height: int, width: int, canvas: int) -> int:
    """Levels 0..L-1: enough that the largest crop (the whole image) finds its nearest level."""
    return 1 + max(0, int(round(math.log2(max(1.0, min(height, width) / canvas)))))


def build_atlas(
    images: Sequence[torch.Tensor], canvas: int
) -> tuple[torch.Tensor, list[list[Tile]]]:
    """uint8 (3, H_n, W_n) sources -> float (3, Ha, Wa) in [0, 1] and each source's tiles.

    A source's block: level 0 on the left, levels 1.. (antialiased bicubic halvings, the filter
    of augment's resized_crop) stacked on its right, each tile with a PAD-pixel replicated
    border. Blocks are packed in shelves (rows) about as wide as the atlas is tall, so many
    small sources make a square atlas, whose coordinates float32 resolves finely."""
    pyramids, blocks = [], []
    for image in images:
        image = image.expand(3, -1, -1) if image.shape[0] == 1 else image  # grey -> RGB
        x = image.float().div(255).unsqueeze(0)  # (1, 3, H, W)
        h0, w0 = image.shape[-2:]
        levels = [x]
        for k in range(1, _levels(h0, w0, canvas)):
            size = (max(1, round(h0 / 2**k)), max(1, round(w0 / 2**k)))
            levels.append(
                F.interpolate(
                    x, size=size, mode="bicubic", antialias=True, align_corners=False
                ).clamp_(0, 1)
            )
        pyramid = [F.pad(level, (PAD,) * 4, mode="replicate")[0] for level in levels]
        pyramids.append(pyramid)
        rest = pyramid[1:]
        blocks.append(
            (
                max(pyramid[0].shape[-2], sum(t.shape[-2] for t in rest)),
                pyramid[0].shape[-1] + max((t.shape[-1] for t in rest), default=0),
            )
        )
    shelf_width = max(max(w for _, w in blocks), math.isqrt(sum(h * w for h, w in blocks)))
    corners, x, y, shelf_height = [], 0, 0, 0
    for h, w in blocks:  # (top, left) of each block, filling shelves left to right
        if x + w > shelf_width:
            x, y, shelf_height = 0, y + shelf_height, 0
        corners.append((y, x))
        x, shelf_height = x + w, max(shelf_height, h)
    width = max(left + w for (_, left), (_, w) in zip(corners, blocks, strict=True))
    atlas = torch.zeros(3, y + shelf_height, width)
    tiles: list[list[Tile]] = []
    for pyramid, (top, left) in zip(pyramids, corners, strict=True):
        h0, w0 = pyramid[0].shape[-2] - 2 * PAD, pyramid[0].shape[-1] - 2 * PAD
        row, tx, ty = [], left, top
        for k, tile in enumerate(pyramid):
            th, tw = tile.shape[-2:]
            atlas[:, ty : ty + th, tx : tx + tw] = tile
            row.append(Tile(tx + PAD, ty + PAD, (tw - 2 * PAD) / w0, (th - 2 * PAD) / h0))
            if k == 0:
                tx, ty = left + tw, top  # the smaller levels go in a column on its right
            else:
                ty += th
        tiles.append(row)
    return atlas, tiles
