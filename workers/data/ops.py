"""The mono dataset's augmentation ops, declared once: order, random stream, settings, switch.

Both the per-sample reference (`workers.data.augment.augment`) and the batched path
(`workers.data.batch_params`, `workers.data.batch_augment`) iterate or consult OPS, so an op is
added in one place (then taught to each path; tests/workers/test_batch_augment.py checks both
know every op). The order is the official script's (docs/FIDELITY.md): initial square crop ->
random-resized crop to sqrt(2) x the output size (bicubic) -> random affine (rotation, shear,
black fill) -> centre crop to the output size -> horizontal flip -> vertical flip -> colour
jitter with probability p. As upstream, the sqrt(2) canvas and the centre crop are the
generator's fixed geometry: they apply whatever ops are on (a sample of `none` is the central
1/sqrt(2) of the source's largest centred square); switching an op off removes only that op.

This is stage 1, the generator, which makes samples of `generated_size(input_size)` (256 px
for a 224 px network, as the official script writes 256 px images). Stage 2, each method's own
loader, crops them to the input size every epoch (workers.data.loader), from a stream of its
own (LOADER_STREAM).

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
    """Whether samples are rotated or sheared (the affine op draws)."""
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
# The stream of stage 2 (a method's loader), seeded from (seed, LOADER_STREAM, epoch, i): an id
# no op has, fixed forever like theirs.
LOADER_STREAM = 7


def active(config: AugmentConfig) -> tuple[Op, ...]:
    """The ops that draw for `config`, in order."""
    return tuple(op for op in OPS if op.on(config))


def op_rng(seed: int, op: str, index: int) -> np.random.Generator:
    """The random stream of one op for one sample."""
    return np.random.default_rng([seed, OP_IDS[op], index])


def loader_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of the loader's view of sample `index` in `epoch`."""
    return np.random.default_rng([seed, LOADER_STREAM, epoch, index])


GENERATED_PER_INPUT = 256 / 224  # the official script writes 256 px for 224 px networks


def generated_size(input_size: int) -> int:
    """Side of the generator's samples for a network input of `input_size` (256 at 224, 73 at
    64): the loaders then crop `input_size` out of them, as upstream's do out of 256 px JPEGs."""
    return round(input_size * GENERATED_PER_INPUT)


def canvas_size(size: int) -> int:
    """Side of the random-resized crop for samples of side `size`: sqrt(2) x size, always (the
    official script's int(sqrt(2) * 256) = 362; the margin keeps the black corners of a
    rotation out of the centre crop to `size`)."""
    return round(math.sqrt(2) * size)
