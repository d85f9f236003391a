"""Stage 1 of the mono dataset, the generator: its augmentation ops, one sample at a time,
each from its own stream.

The per-sample reference (workers.data.mono's `raw`, the pictures, and the spec the batched
generator that training uses, workers.data.batch_augment, is tested against): `augment`
applies the ops of workers.data.ops.OPS in their order, op `o` of sample i drawing from
op_rng(seed, o, i).
Every sample goes through the generator's full geometry, as the official script's: a crop
resized to sqrt(2) x the output size, then (when on) the affine op, then the centre crop to
the output size. What the network sees is a method's loader view of it (stage 2,
workers.data.loader), not this sample itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from contract.augmentation import AugmentConfig
from workers.data.ops import OPS, canvas_size, op_rng

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)  # ImageNet statistics
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop whose area fraction lies in `scale` and aspect in
    `ratio` (log-uniform), retried until it fits: no centre-crop fallback, as upstream.

    Raises:
        ValueError: no crop fits after 1000 tries (the ranges cannot be met on this image).
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(1000):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    raise ValueError(f"no crop with scale {scale} and ratio {ratio} fits a {height}x{width} image")


def augment(
    image: torch.Tensor, config: AugmentConfig, size: int, seed: int, index: int
) -> torch.Tensor:
    """One generated sample: uint8 (3, H, W) source -> uint8 (3, size, size), `size` being the
    generated size (workers.data.ops.generated_size of the network input)."""
    for op in OPS:
        rng = op_rng(seed, op.name, index) if op.on(config) else None
        image = APPLY[op.name](image, config, size, rng)
    return image


# Each op: (image, config, output size, its stream or None when off) -> image.
Stream = np.random.Generator | None
Apply = Callable[[torch.Tensor, AugmentConfig, int, Stream], torch.Tensor]


def _initial_crop(
    image: torch.Tensor, config: AugmentConfig, size: int, rng: Stream
) -> torch.Tensor:
    """A random square of side initial_crop x min(H, W)."""
    if rng is None or config.initial_crop is None:
        return image
    _, height, width = image.shape
    side = max(1, round(config.initial_crop * min(height, width)))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    return image[:, top : top + side, left : left + side]


def _crop(image: torch.Tensor, config: AugmentConfig, size: int, rng: Stream) -> torch.Tensor:
    """A random-resized crop (off: the largest centred square) to the sqrt(2) x size canvas,
    bicubic."""
    _, height, width = image.shape
    if rng is not None and config.crop_scale is not None:
        top, left, h, w = crop_box(height, width, config.crop_scale, config.crop_ratio, rng)
    else:  # the largest centred square
        h = w = min(height, width)
        top, left = (height - h) // 2, (width - w) // 2
    side = canvas_size(size)
    return F.resized_crop(
        image, top, left, h, w, [side, side], InterpolationMode.BICUBIC, antialias=True
    )


def _affine(image: torch.Tensor, config: AugmentConfig, size: int, rng: Stream) -> torch.Tensor:
    """Rotation and shear about the centre (black fill) when on; then, on or off, the centre
    crop of the canvas to `size` (upstream's CenterCrop(256) follows every sample)."""
    if rng is not None:
        angle, shear = draw_affine(rng, config.rotation, config.shear)
        image = F.affine(
            image, angle=angle, translate=[0, 0], scale=1.0, shear=[shear, 0.0],
            interpolation=InterpolationMode.BILINEAR, fill=0,
        )
    return F.center_crop(image, [size, size])


def _hflip(image: torch.Tensor, config: AugmentConfig, size: int, rng: Stream) -> torch.Tensor:
    return F.horizontal_flip(image) if rng is not None and rng.random() < config.hflip else image


def _vflip(image: torch.Tensor, config: AugmentConfig, size: int, rng: Stream) -> torch.Tensor:
    return F.vertical_flip(image) if rng is not None and rng.random() < config.vflip else image


def _jitter(image: torch.Tensor, config: AugmentConfig, size: int, rng: Stream) -> torch.Tensor:
    """Colour jitter with probability jitter_p (the factors are drawn only when it applies)."""
    if rng is None or config.jitter is None or not rng.random() < config.jitter_p:
        return image
    return color_jitter(image, draw_jitter(rng, config.jitter))


APPLY: dict[str, Apply] = {
    "initial_crop": _initial_crop,
    "crop": _crop,
    "affine": _affine,
    "hflip": _hflip,
    "vflip": _vflip,
    "jitter": _jitter,
}


def draw_affine(rng: np.random.Generator, rotation: float, shear: float) -> tuple[float, float]:
    """(angle, shear) in degrees, uniform in [-rotation, rotation] and [-shear, shear]."""
    return float(rng.uniform(-rotation, rotation)), float(rng.uniform(-shear, shear))


def draw_jitter(
    rng: np.random.Generator, strengths: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """Brightness, contrast, saturation factors uniform in [1 - s, 1 + s] and a hue shift
    uniform in [-h, h] (torchvision's ColorJitter ranges)."""
    brightness, contrast, saturation, hue = strengths
    return (
        float(rng.uniform(1 - brightness, 1 + brightness)),
        float(rng.uniform(1 - contrast, 1 + contrast)),
        float(rng.uniform(1 - saturation, 1 + saturation)),
        float(rng.uniform(-hue, hue)),
    )


def color_jitter(image: torch.Tensor, factors: tuple[float, float, float, float]) -> torch.Tensor:
    """uint8 (3, H, W) -> the same with brightness, contrast, saturation factors and a hue
    shift applied in that fixed order (torchvision shuffles it; a fixed one is reproducible)."""
    brightness, contrast, saturation, hue = factors
    image = F.adjust_brightness(image, brightness)
    image = F.adjust_contrast(image, contrast)
    image = F.adjust_saturation(image, saturation)
    return F.adjust_hue(image, hue)


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float, normalised with ImageNet statistics, on their device."""
    return (images.float() / 255 - MEAN.to(images.device)) / STD.to(images.device)
