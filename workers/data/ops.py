"""The mono dataset's augmentation ops, declared once: order, random stream, settings, switch.

Both the per-sample reference (`workers.data.augment.augment`) and the batched path
(`workers.data.batch_params`, `workers.data.batch_augment`) iterate or consult OPS, so an op is
added in one place (then taught to each path; tests/workers/test_batch_augment.py checks both
know every op). The order is the official script's (docs/FIDELITY.md): initial square crop ->
random-resized crop to sqrt(2) x the output size (bicubic) -> random affine (rotation, shear,
black fill) and centre crop -> horizontal flip -> vertical flip -> colour jitter with
probability p.

Sample i of op `o` draws from a generator seeded from (seed, o.stream, i), never from global
state: two runs with one seed see the same samples, and switching an op off changes only its
draws. An op's stream id is part of every trained number: never renumber one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from contract.augmentation import AugmentConfig


@dataclass(frozen=True)
class Op:
    """One augmentation op: its name, the id in its streams' seeds, the AugmentConfig fields it
    reads, and whether it draws for a config (`on`)."""

    name: str
    stream: int
    fields: tuple[str, ...]
    on: Callable[[AugmentConfig], bool]


def uses_affine(config: AugmentConfig) -> bool:
    """Whether samples are rotated or sheared (then cropped with a margin, see canvas_size)."""
    return config.rotation > 0 or config.shear > 0


OPS: tuple[Op, ...] = (  # in the order they apply
    Op("initial_crop", 1, ("initial_crop",), lambda c: c.initial_crop is not None),
    # Off, the crop still resizes the largest centred square: it just draws nothing.
    Op("crop", 2, ("crop_scale", "crop_ratio"), lambda c: c.crop_scale is not None),
    Op("affine", 3, ("rotation", "shear"), uses_affine),
    Op("hflip", 4, ("hflip",), lambda c: c.hflip > 0),
    Op("vflip", 6, ("vflip",), lambda c: c.vflip > 0),
    Op("jitter", 5, ("jitter", "jitter_p"), lambda c: c.jitter is not None and c.jitter_p > 0),
)
OP_IDS = {op.name: op.stream for op in OPS}


def active(config: AugmentConfig) -> tuple[Op, ...]:
    """The ops that draw for `config`, in order."""
    return tuple(op for op in OPS if op.on(config))


def op_rng(seed: int, op: str, index: int) -> np.random.Generator:
    """The random stream of one op for one sample."""
    return np.random.default_rng([seed, OP_IDS[op], index])


def canvas_size(config: AugmentConfig, size: int) -> int:
    """Side of the random-resized crop: sqrt(2) x size when rotating or shearing (the margin
    keeps the black corners of a rotation out of the final centre crop), else size."""
    return round(math.sqrt(2) * size) if uses_affine(config) else size
