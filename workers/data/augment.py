"""Stage 1 of the mono dataset, the generator: its augmentation ops, one sample at a time,
each from its own stream.

The per-sample reference (workers.data.mono's `raw`, the pictures, and the spec the batched
generator that training uses, workers.data.batch_augment, is tested against): `augment`
runs the ops of workers.data.ops.table(config) stage by stage, op `o` of sample i drawing from
op_rng(seed, o.stream, i). Every sample goes through the generator's full geometry, as the
official script's: its crops' box resized to sqrt(2) x the output size, then the canvas warps
(the affine op), the centre crop to the output size, the output warps (flips) and the paints
(colour jitter). What the network sees is a method's loader view of it (stage 2,
workers.data.loader), not this sample itself.
"""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from contract.augmentation import AugmentConfig
from workers.data.ops import Op, canvas_size, stages, table

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)  # ImageNet statistics
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def augment(
    image: torch.Tensor, config: AugmentConfig, size: int, seed: int, index: int
) -> torch.Tensor:
    """One generated sample: uint8 (3, H, W) source -> uint8 (3, size, size), `size` being the
    generated size (workers.data.ops.generated_size of the network input)."""
    crops, canvas_warps, output_warps, paints = stages(table(config))
    for op in crops:
        if (box := op.box(config, seed, index, *image.shape[-2:])) is not None:
            top, left, h, w = (int(v) for v in box)
            image = image[:, top : top + h, left : left + w]
    side = canvas_size(size)
    image = F.resize(image, [side, side], InterpolationMode.BICUBIC, antialias=True)
    for op in canvas_warps:
        image = _render(op, image, config, seed, index)
    image = F.center_crop(image, [size, size])
    for op in output_warps + paints:
        image = _render(op, image, config, seed, index)
    return image


def _render(op: Op, image: torch.Tensor, config: AugmentConfig, seed: int, index: int) -> torch.Tensor:
    """A warp's or paint's render of one sample, with its draw (nothing when it is off)."""
    if not op.on(config):
        return image
    return op.kind.render(image, op.draw(config, seed, index))


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float, normalised with ImageNet statistics, on their device."""
    return (images.float() / 255 - MEAN.to(images.device)) / STD.to(images.device)
