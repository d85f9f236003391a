"""The mono dataset's augmentation ops, declared once: the table both paths iterate.

An op (`Op`) is its name, the id of its random streams, the settings it reads, its switch, and
what it does, which is one of three kinds, each with its draw and its render in both paths:

- a `Crop` cuts its input down to a box it draws (the initial square crop, the random-resized
  crop); the batched path adds the boxes up into one box in the source;
- a `Warp` moves pixels, on the canvas (the affine op: what it moves off the canvas is black,
  torchvision's fill) or on the output (the flips, which map the output onto itself): per
  sample a torchvision transform, batched a (3, 3) map per sample, all of them composed into
  one grid-sample (workers.data.batch_augment);
- a `Paint` changes pixel values (colour jitter), after every warp: per sample on uint8
  images, batched on the float batch, on the samples its draws select.

Per sample (`workers.data.augment.augment`, the reference) and batched (`workers.data.
batch_params` draws, `workers.data.batch_augment` renders: what training uses), the generator
runs `table(config)` stage by stage, with the generator's fixed geometry between the stages:

    crops -> resize to the sqrt(2) x size canvas (bicubic) -> canvas warps -> centre crop to
    size -> output warps -> paints

The shipped ops, in that order, are the official script's (docs/FIDELITY.md): initial square
crop -> random-resized crop -> random affine (rotation, shear, black fill) -> horizontal flip
-> vertical flip -> colour jitter with probability p. As upstream, the canvas and the centre
crop apply whatever ops are on (a sample of `none` is the central 1/sqrt(2) of the source's
largest centred square: the crop op, off, cuts that square); switching an op off removes only
that op. An op added from a package of its own has its torch-free side in contract.augmentation
(`OpSettings`: name, stream, settings, switch) and its `OP` (a Crop, Warp or Paint) in the
module those settings name; `table` joins them after the shipped ops of its kind, by name.

This is stage 1, the generator, which makes samples of `generated_size(input_size)` (256 px
for a 224 px network, as the official script writes 256 px images). Stage 2, each method's own
loader, crops them to the input size every epoch (workers.data.loader), from a stream of its
own (LOADER_STREAM).

Sample i of op `o` draws from a generator seeded from (seed, o.stream, i), never from global
state: two runs with one seed see the same samples, and switching an op off changes only its
draws. An op's stream id is part of every trained number: never renumber one.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from contract.augmentation import AugmentConfig, OpSettings
from workers.data.batch_jitter import color_jitter_batch
from workers.data.crop_boxes import crop_box, crop_sizes
from workers.data.streams import Streams

Draw = dict[str, Any]  # one sample's draws of one op
Draws = dict[str, np.ndarray]  # a batch's: one row per sample
Box = tuple[Any, Any, Any, Any]  # (top, left, height, width): ints, or arrays for a batch


@dataclass(frozen=True, kw_only=True)
class Crop:
    """Cuts its input (a source, or the previous crop's box) down to a box.

    `draw(rng, settings, height, width)`: the box in its input, from the op's stream.
    `draw_batch(streams, at, settings, heights, widths)`: the same boxes for many samples at
    once, bit-identical (optional: without it the batch draws sample by sample).
    `off(height, width)`: the box when the op is off (None: its whole input). Both take ints or
    arrays."""

    draw: Callable[[np.random.Generator, Any, int, int], Box]
    draw_batch: Callable[[Streams, np.ndarray, Any, np.ndarray, np.ndarray], Box] | None = None
    off: Callable[[Any, Any], Box] | None = None


@dataclass(frozen=True, kw_only=True)
class Warp:
    """Moves pixels within its frame: the canvas or the output.

    `draw(rng, settings)`: one sample's draw. `render(image, draw)`: per sample, uint8
    (3, S, S) -> the same. `matrix(draws, side)`: batched, (B, 3, 3) homogeneous maps from its
    output's pixel-edge coordinates (pixel j spans [j, j + 1)) to its input's, in a frame of
    `side` pixels; required. `draw_batch(streams, at, settings)`: optional, as Crop's."""

    frame: Literal["canvas", "output"]
    draw: Callable[[np.random.Generator, Any], Draw]
    render: Callable[[torch.Tensor, Draw], torch.Tensor]
    matrix: Callable[[Draws, int], np.ndarray] | None = None
    draw_batch: Callable[[Streams, np.ndarray, Any], Draws] | None = None


@dataclass(frozen=True, kw_only=True)
class Paint:
    """Changes pixel values, after every warp.

    `draw(rng, settings)`, `draw_batch` as Warp's. `render(image, draw)`: per sample, uint8
    (3, S, S) -> the same. `paint(x, draws)`: batched, float (b, 3, S, S) in [0, 1] -> the
    same, for the samples it applies to, their draws as tensors on x's device (floats as
    float32); required. `applies(draws)`: (B,) bool, the samples it changes (None: all)."""

    draw: Callable[[np.random.Generator, Any], Draw]
    render: Callable[[torch.Tensor, Draw], torch.Tensor]
    paint: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor] | None = None
    applies: Callable[[Draws], np.ndarray] | None = None
    draw_batch: Callable[[Streams, np.ndarray, Any], Draws] | None = None


def _whole(config: AugmentConfig) -> AugmentConfig:
    return config


@dataclass(frozen=True)
class Op:
    """One augmentation op. `fields`: the settings it reads; `on(config)`: whether it draws;
    `settings(config)`: what its draws read (the AugmentConfig itself for a shipped op, its own
    OpSettings for an added one); `example`: AugmentConfig fields that switch it on over the
    `none` preset (tests/workers/test_op_pixels.py renders every op so).

    Raises:
        ValueError: it lacks its batched render (Warp.matrix, Paint.paint): the batched path,
            the one training uses, could not render it.
    """

    name: str
    stream: int
    fields: tuple[str, ...]
    on: Callable[[AugmentConfig], bool]
    kind: Crop | Warp | Paint
    settings: Callable[[AugmentConfig], Any] = _whole
    example: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = {Warp: "matrix", Paint: "paint"}.get(type(self.kind))
        if missing and getattr(self.kind, missing) is None:
            raise ValueError(f"augmentation op {self.name!r} has no batched render ({type(self.kind).__name__}."
                             f"{missing}): training renders its samples in batches")

    def draw(self, config: AugmentConfig, seed: int, index: int, *shape: int) -> Any:
        """Its draw for sample `index`, from its stream (a crop's also takes its input's height and
        width)."""
        return self.kind.draw(op_rng(seed, self.stream, index), self.settings(config), *shape)

    def box(self, config: AugmentConfig, seed: int, index: int, height: int, width: int) -> Box | None:
        """A crop's box in an input of (height, width) for sample `index`: drawn when it is on, its
        `off` box when it is off, None for the whole input."""
        if self.on(config):
            return self.draw(config, seed, index, height, width)
        return self.kind.off(height, width) if self.kind.off is not None else None


# --- matrices -----------------------------------------------------------------------------


def homogeneous(linear: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """(B, 2, 2) linear part and (B, 2) offset -> (B, 3, 3) homogeneous matrices."""
    out = np.zeros((len(linear), 3, 3))
    out[:, :2, :2], out[:, :2, 2], out[:, 2, 2] = linear, offset, 1.0
    return out


def axis_aligned(sx: np.ndarray, sy: np.ndarray, ox: np.ndarray, oy: np.ndarray) -> np.ndarray:
    """(B,) scales and offsets per axis -> (B, 3, 3): x -> sx x + ox, y -> sy y + oy."""
    n = len(sx)
    return homogeneous(
        np.stack([np.stack([sx, np.zeros(n)], -1), np.stack([np.zeros(n), sy], -1)], -2),
        np.stack([ox, oy], -1),
    )


# --- the shipped ops ----------------------------------------------------------------------


def _initial_crop_draw(rng: np.random.Generator, config: AugmentConfig, height: int, width: int) -> Box:
    """A random square of side initial_crop x min(H, W)."""
    side = max(1, round(config.initial_crop * min(height, width)))
    return int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1)), side, side


def _initial_crop_draw_batch(
    streams: Streams, at: np.ndarray, config: AugmentConfig, height: np.ndarray, width: np.ndarray
) -> Box:
    side = np.maximum(1, np.rint(config.initial_crop * np.minimum(height, width))).astype(np.int64)
    return streams.integers(at, height - side + 1), streams.integers(at, width - side + 1), side, side


def _crop_draw(rng: np.random.Generator, config: AugmentConfig, height: int, width: int) -> Box:
    """A random-resized crop's box (then resized to the canvas, as every sample's last box)."""
    return crop_box(height, width, config.crop_scale, config.crop_ratio, rng)


def _crop_draw_batch(
    streams: Streams, at: np.ndarray, config: AugmentConfig, height: np.ndarray, width: np.ndarray
) -> Box:
    h, w = crop_sizes(streams, at, height, width, config.crop_scale, config.crop_ratio)
    return streams.integers(at, height - h + 1), streams.integers(at, width - w + 1), h, w


def _centred_square(height: Any, width: Any) -> Box:
    """The largest centred square: the crop op's box when it is off."""
    side = np.minimum(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def _affine_draw(rng: np.random.Generator, config: AugmentConfig) -> Draw:
    """Angle and shear in degrees, uniform in [-rotation, rotation] and [-shear, shear]."""
    return {"angle": float(rng.uniform(-config.rotation, config.rotation)),
            "shear": float(rng.uniform(-config.shear, config.shear))}


def _affine_draw_batch(streams: Streams, at: np.ndarray, config: AugmentConfig) -> Draws:
    angle = streams.uniform(at, -config.rotation, config.rotation)
    return {"angle": angle, "shear": streams.uniform(at, -config.shear, config.shear)}


def _affine_render(image: torch.Tensor, draw: Draw) -> torch.Tensor:
    """Rotation and shear about the centre, black fill."""
    return F.affine(
        image, angle=draw["angle"], translate=[0, 0], scale=1.0, shear=[draw["shear"], 0.0],
        interpolation=InterpolationMode.BILINEAR, fill=0,
    )


def _inverse_affine(angle: np.ndarray, shear: np.ndarray) -> np.ndarray:
    """(B, 2, 2): torchvision's inverse rotation-shear matrix (_get_inverse_affine_matrix with
    centre 0, no translation, scale 1, shear (shear, 0)), per sample."""
    rot, sx = np.radians(angle), np.radians(shear)
    a, c = np.cos(rot), np.sin(rot)
    b = -np.cos(rot) * np.tan(sx) - np.sin(rot)
    d = -np.sin(rot) * np.tan(sx) + np.cos(rot)
    return np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2)


def _affine_matrix(draws: Draws, side: int) -> np.ndarray:
    """The rotation and shear about the canvas centre."""
    n, c = len(draws["angle"]), float(side)
    one = np.ones(n)
    rotate = homogeneous(_inverse_affine(draws["angle"], draws["shear"]), np.zeros((n, 2)))
    centre, back = axis_aligned(one, one, one * c / 2, one * c / 2), axis_aligned(one, one, -one * c / 2, -one * c / 2)
    return centre @ rotate @ back


def _flip_draw(probability: str, rng: np.random.Generator, config: AugmentConfig) -> Draw:
    return {"flip": bool(rng.random() < getattr(config, probability))}


def _flip_draw_batch(probability: str, streams: Streams, at: np.ndarray, config: AugmentConfig) -> Draws:
    return {"flip": streams.random(at) < getattr(config, probability)}


def _hflip_render(image: torch.Tensor, draw: Draw) -> torch.Tensor:
    return F.horizontal_flip(image) if draw["flip"] else image


def _vflip_render(image: torch.Tensor, draw: Draw) -> torch.Tensor:
    return F.vertical_flip(image) if draw["flip"] else image


def _hflip_matrix(draws: Draws, side: int) -> np.ndarray:
    flip, n = draws["flip"], len(draws["flip"])
    return axis_aligned(np.where(flip, -1.0, 1.0), np.ones(n), np.where(flip, float(side), 0.0), np.zeros(n))


def _vflip_matrix(draws: Draws, side: int) -> np.ndarray:
    flip, n = draws["flip"], len(draws["flip"])
    return axis_aligned(np.ones(n), np.where(flip, -1.0, 1.0), np.zeros(n), np.where(flip, float(side), 0.0))


FACTORS = ("brightness", "contrast", "saturation", "hue")
_UNJITTERED = (1.0, 1.0, 1.0, 0.0)


def _jitter_draw(rng: np.random.Generator, config: AugmentConfig) -> Draw:
    """With probability jitter_p: brightness, contrast, saturation factors uniform in [1 - s,
    1 + s] and a hue shift uniform in [-h, h] (torchvision's ColorJitter ranges), drawn only
    then; otherwise the identity."""
    if not rng.random() < config.jitter_p:
        return {"applies": False, **dict(zip(FACTORS, _UNJITTERED, strict=True))}
    b, c, s, h = config.jitter
    ranges = ((1 - b, 1 + b), (1 - c, 1 + c), (1 - s, 1 + s), (-h, h))
    return {"applies": True, **{k: float(rng.uniform(lo, hi)) for k, (lo, hi) in zip(FACTORS, ranges, strict=True)}}


def _jitter_draw_batch(streams: Streams, at: np.ndarray, config: AugmentConfig) -> Draws:
    # Every stream draws the factors; those that did not apply drew them past their last use.
    applies = streams.random(at) < config.jitter_p
    b, c, s, h = config.jitter
    ranges = ((1 - b, 1 + b), (1 - c, 1 + c), (1 - s, 1 + s), (-h, h))
    drawn = [streams.uniform(at, lo, hi) for lo, hi in ranges]
    return {"applies": applies, **{k: np.where(applies, d, unjittered)
                                   for k, d, unjittered in zip(FACTORS, drawn, _UNJITTERED, strict=True)}}


def color_jitter(image: torch.Tensor, factors: tuple[float, float, float, float]) -> torch.Tensor:
    """uint8 (3, H, W) -> the same with brightness, contrast, saturation factors and a hue
    shift applied in that fixed order (torchvision shuffles it; a fixed one is reproducible)."""
    brightness, contrast, saturation, hue = factors
    image = F.adjust_brightness(image, brightness)
    image = F.adjust_contrast(image, contrast)
    image = F.adjust_saturation(image, saturation)
    return F.adjust_hue(image, hue)


def _jitter_render(image: torch.Tensor, draw: Draw) -> torch.Tensor:
    return color_jitter(image, tuple(draw[k] for k in FACTORS)) if draw["applies"] else image


def _jitter_paint(x: torch.Tensor, draws: dict[str, torch.Tensor]) -> torch.Tensor:
    return color_jitter_batch(x, *(draws[k] for k in FACTORS))


def uses_affine(config: AugmentConfig) -> bool:
    """Whether samples are rotated or sheared (the affine op draws)."""
    return config.rotation > 0 or config.shear > 0


# --- the table ----------------------------------------------------------------------------

# The stream of stage 2 (a method's loader), seeded from (seed, LOADER_STREAM, epoch, i): an id
# no op has, fixed forever like theirs.
LOADER_STREAM = 7


def _checked(ops: tuple[Op, ...]) -> tuple[Op, ...]:
    """`ops`, if no two share a name or a stream (nor the loader's).

    Raises:
        ValueError: two do.
    """
    for attribute in ("name", "stream"):
        values = [getattr(op, attribute) for op in ops] + ([LOADER_STREAM] if attribute == "stream" else [])
        if twice := sorted({v for v in values if values.count(v) > 1}):
            raise ValueError(f"augmentation ops share a {attribute}: {twice}")
    return ops


OPS: tuple[Op, ...] = _checked((  # the shipped ops, in the order they apply
    Op("initial_crop", 1, ("initial_crop",), lambda c: c.initial_crop is not None,
       Crop(draw=_initial_crop_draw, draw_batch=_initial_crop_draw_batch), example={"initial_crop": 0.5}),
    # Off, the crop still cuts the largest centred square: it just draws nothing.
    Op("crop", 2, ("crop_scale", "crop_ratio"), lambda c: c.crop_scale is not None,
       Crop(draw=_crop_draw, draw_batch=_crop_draw_batch, off=_centred_square), example={"crop_scale": (0.08, 1.0)}),
    Op("affine", 3, ("rotation", "shear"), uses_affine,
       Warp(frame="canvas", draw=_affine_draw, render=_affine_render, matrix=_affine_matrix,
            draw_batch=_affine_draw_batch), example={"rotation": 30.0, "shear": 30.0}),
    Op("hflip", 4, ("hflip",), lambda c: c.hflip > 0,
       Warp(frame="output", draw=partial(_flip_draw, "hflip"), render=_hflip_render, matrix=_hflip_matrix,
            draw_batch=partial(_flip_draw_batch, "hflip")), example={"hflip": 0.5}),
    Op("vflip", 6, ("vflip",), lambda c: c.vflip > 0,
       Warp(frame="output", draw=partial(_flip_draw, "vflip"), render=_vflip_render, matrix=_vflip_matrix,
            draw_batch=partial(_flip_draw_batch, "vflip")), example={"vflip": 0.5}),
    Op("jitter", 5, ("jitter", "jitter_p"), lambda c: c.jitter is not None and c.jitter_p > 0,
       Paint(draw=_jitter_draw, render=_jitter_render, paint=_jitter_paint, applies=lambda d: d["applies"],
             draw_batch=_jitter_draw_batch), example={"jitter": (0.4, 0.4, 0.4, 0.1), "jitter_p": 0.5}),
))
OP_IDS = {op.name: op.stream for op in OPS}


def _stage(op: Op) -> int:
    """0 crops, 1 canvas warps, 2 output warps, 3 paints: the order the generator runs them."""
    kind = op.kind
    return 0 if isinstance(kind, Crop) else 3 if isinstance(kind, Paint) else 1 if kind.frame == "canvas" else 2


def _added_on(name: str, config: AugmentConfig) -> bool:
    return any(op.name == name for op in config.ops)


def _added_settings(name: str, config: AugmentConfig) -> OpSettings:
    return next(op for op in config.ops if op.name == name)


def added(settings: type[OpSettings]) -> Op:
    """An added op: its settings class (name, stream, fields; contract.augmentation) joined
    with the `OP` of the module it names.

    Raises:
        ValueError: that module has no OP, or OP lacks its batched render.
    """
    name = settings.model_fields["name"].default
    kind = getattr(importlib.import_module(settings.implementation), "OP", None)
    if not isinstance(kind, Crop | Warp | Paint):
        raise ValueError(f"augmentation op {name!r}: {settings.implementation} has no OP (a Crop, Warp or Paint "
                         f"of workers.data.ops), found {kind!r}")
    return Op(name, settings.stream, tuple(f for f in settings.model_fields if f != "name"),
              partial(_added_on, name), kind, partial(_added_settings, name),
              example={"ops": ({"name": name, **settings.example},)})


def table(config: AugmentConfig) -> tuple[Op, ...]:
    """The ops `config` applies, in the order they apply: by stage (crops, canvas warps, output
    warps, paints), within one the shipped ops first, then its added ops by name.

    Raises:
        ValueError: an added op's module does not provide its renders, or its name is taken.
    """
    if not config.ops:
        return OPS
    return _checked(tuple(sorted(OPS + tuple(added(type(s)) for s in config.ops), key=_stage)))


def stages(ops: tuple[Op, ...]) -> tuple[list[Op], list[Op], list[Op], list[Op]]:
    """A table's crops, canvas warps, output warps and paints, each in table order."""
    split: tuple[list[Op], ...] = ([], [], [], [])
    for op in ops:
        split[_stage(op)].append(op)
    return split  # type: ignore[return-value]


def op_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The random stream of one op (its stream id) for one sample."""
    return np.random.default_rng([seed, stream, index])


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
