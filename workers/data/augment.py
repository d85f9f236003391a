"""The augmentation ops of the mono dataset, one sample at a time, each from its own stream.

Sample i of op `o` draws from a generator seeded from (seed, o, i), never from global state:
two runs with one seed see the same samples, and switching an op off changes only its draws.
The order follows the official script (DESIGN.md): initial square crop -> random-resized crop
to sqrt(2) x the output size (bicubic) -> random affine (rotation, shear, black fill) -> centre
crop -> horizontal flip -> vertical flip -> colour jitter with probability p.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from contract.augmentation import AugmentConfig

OP_IDS = {"initial_crop": 1, "crop": 2, "affine": 3, "hflip": 4, "jitter": 5, "vflip": 6}
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)  # ImageNet statistics
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def op_rng(seed: int, op: str, index: int) -> np.random.Generator:
    """The random stream of one op for one sample."""
    return np.random.default_rng([seed, OP_IDS[op], index])


def crop_box(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], rng: np.random.Generator
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


def augment(image: torch.Tensor, config: AugmentConfig, size: int, seed: int, index: int) -> torch.Tensor:
    """One augmented sample: uint8 (3, H, W) source -> uint8 (3, size, size)."""
    _, height, width = image.shape
    if config.initial_crop is not None:
        side = max(1, round(config.initial_crop * min(height, width)))
        rng = op_rng(seed, "initial_crop", index)
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        image = image[:, top : top + side, left : left + side]
        height = width = side
    affine = config.rotation > 0 or config.shear > 0
    # The margin keeps the black corners of a rotation out of the final centre crop.
    crop_size = round(math.sqrt(2) * size) if affine else size
    if config.crop_scale is not None:
        rng = op_rng(seed, "crop", index)
        top, left, h, w = crop_box(height, width, config.crop_scale, config.crop_ratio, rng)
    else:  # the largest centred square
        h = w = min(height, width)
        top, left = (height - h) // 2, (width - w) // 2
    image = F.resized_crop(
        image, top, left, h, w, [crop_size, crop_size], InterpolationMode.BICUBIC, antialias=True
    )
    if affine:
        angle, shear = draw_affine(op_rng(seed, "affine", index), config.rotation, config.shear)
        image = F.affine(
            image, angle=angle, translate=[0, 0], scale=1.0, shear=[shear, 0.0],
            interpolation=InterpolationMode.BILINEAR, fill=0,
        )
        image = F.center_crop(image, [size, size])
    if config.hflip > 0 and op_rng(seed, "hflip", index).random() < config.hflip:
        image = F.horizontal_flip(image)
    if config.vflip > 0 and op_rng(seed, "vflip", index).random() < config.vflip:
        image = F.vertical_flip(image)
    if config.jitter is not None and config.jitter_p > 0:
        rng = op_rng(seed, "jitter", index)
        if rng.random() < config.jitter_p:
            image = color_jitter(image, draw_jitter(rng, config.jitter))
    return image


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
    """uint8 (..., 3, H, W) -> float, normalised with ImageNet statistics."""
    return (images.float() / 255 - MEAN) / STD
