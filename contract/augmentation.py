"""The mono dataset's two stages, as upstream: the generator's augmentation (AugmentConfig: each
op a switch with parameters, and the named presets), which makes samples of 256 px for a 224 px
network as the official script writes them, and a method's loader (LoaderConfig), which crops
the network's input out of each sample anew every epoch, as each method's own code does with
the generated images. AugmentConfig's `loader` switches stage 2 off (false: the centre crop of
every sample, every epoch), so that `{preset: none, loader: false}` is one unaugmented image.

Presets are plain dicts of defaults: `{preset: full, rotation: 0}` is the `full` preset with
rotation switched off, and the resolved values (not the preset's name) enter the content keys.

The shipped ops' settings are AugmentConfig's fields. An op added from a package of its own
(entry-point group `monosweep.ops`) has an `OpSettings` class here, registered with
`@AUGMENTATION_OPS.add`, and is switched on in an augmentation's `ops` list:
`{preset: full, ops: [{name: toy_invert, p: 0.3}]}`; its renders live in the worker module its
settings name (workers/data/ops.py says what that module provides).
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from contract.base import Frozen, KeyNeutral, apply_preset
from contract.registry import Registry

# The paper's seed note (arXiv 1904.13132): crops of at least beta*H*W, rotation up to 35 degrees,
# flip with p = 0.5, colour jitter, rescale. The text gives no beta or jitter strengths: beta,
# the aspect range and the jitter are the official script's.
_ASANO2020_OPS: dict[str, dict[str, Any]] = {
    "crop": {"crop_scale": (1 / 500, 1.0), "crop_ratio": (3 / 4, 4 / 3)},
    "rotation": {"rotation": 35.0},
    # The text lists the flip; for RotNet and DeepCluster the loader flips as well (LoaderConfig).
    "flip": {"hflip": 0.5},
    "jitter": {"jitter": (0.4, 0.4, 0.4, 0.1), "jitter_p": 0.5},
}
_NONE: dict[str, Any] = {
    "initial_crop": None,
    "crop_scale": None,
    "crop_ratio": (3 / 4, 4 / 3),
    "rotation": 0.0,
    "shear": 0.0,
    "hflip": 0.0,
    "vflip": 0.0,
    "jitter": None,
    "jitter_p": 0.0,
}
# yukimasano/single_img_pretraining's make_dataset_single.py defaults. The script has no
# horizontal flip ("hflip ... is usually in the pretraining method's codebase already"): as
# there, the flip is the method's loader's (LoaderConfig), redrawn every epoch. Its --vflip is
# off by default.
_OFFICIAL_SCRIPT: dict[str, Any] = {
    **_NONE,
    "initial_crop": 0.5,
    "crop_scale": (1 / 500, 1.0),
    "rotation": 30.0,
    "shear": 30.0,
    "jitter": (0.4, 0.4, 0.4, 0.1),
    "jitter_p": 0.5,
}


def _ablations() -> dict[str, dict[str, Any]]:
    """The paper's augmentation study: every subset of asano2020's ops, named by its ops
    (`crop`, `crop+rotation`, ..., `crop+rotation+flip+jitter`, which is asano2020 itself)."""
    out: dict[str, dict[str, Any]] = {}
    for r in range(1, len(_ASANO2020_OPS) + 1):
        for ops in itertools.combinations(_ASANO2020_OPS, r):
            out["+".join(ops)] = {k: v for op in ops for k, v in _ASANO2020_OPS[op].items()}
    return {name: {**_NONE, **values} for name, values in out.items()}


AUGMENTATION_PRESETS: dict[str, dict[str, Any]] = {
    # `full` is an alias of `official_script`: the paper's full augmentation as its code ran.
    "full": _OFFICIAL_SCRIPT,
    # Every sample is the (resized) source image itself.
    "none": _NONE,
    "asano2020": {**_NONE, **{k: v for op in _ASANO2020_OPS.values() for k, v in op.items()}},
    "official_script": _OFFICIAL_SCRIPT,
    **_ablations(),
}


# Stream ids below this are the shipped ops' and the loader's (workers/data/ops.py): an added op
# takes one at or above it, its own, fixed forever like theirs (it seeds every sample it draws).
FIRST_ADDED_STREAM = 100


class OpSettings(Frozen):
    """An added augmentation op's torch-free side: its settings, validated with the experiment
    file, and what the worker needs to find the rest. `stream`: the id its random streams are
    seeded with (>= FIRST_ADDED_STREAM, unique). `implementation`: the module that provides its
    draw and renders (`OP`, a workers.data.ops Crop, Warp or Paint), imported on the worker.
    `on()`: whether these settings switch it on (an op that is off draws nothing and changes no
    pixel, so an augmentation drops it, and its key stays the key without it). `example`:
    settings, beyond its defaults, that switch it on (the pixel test renders every op so)."""

    name: str
    stream: ClassVar[int]
    implementation: ClassVar[str]
    example: ClassVar[dict[str, Any]] = {}

    def on(self) -> bool:
        return True

    def label(self) -> str:
        """Its name, with the settings that differ from its defaults: `toy_invert(p=0.25)`."""
        default = type(self)()
        changed = [f"{k}={v}" for k, v in self if k != "name" and getattr(default, k) != v]
        return self.name + (f"({','.join(changed)})" if changed else "")


class OpRegistry(Registry[OpSettings]):
    """The added ops: a name and a stream id each, neither shared."""

    def add(self, cls: type[OpSettings]) -> type[OpSettings]:
        """Register an added op's settings (usable as a decorator).

        Raises:
            ValueError: its stream id is reserved or another op's, or its name is taken.
        """
        name = cls.model_fields["name"].default
        if cls.stream < FIRST_ADDED_STREAM:
            raise ValueError(f"augmentation op {name!r}: stream {cls.stream} is reserved (added ops take "
                             f"{FIRST_ADDED_STREAM} or above)")
        taken = {c.stream: c for c in self}
        if taken.get(cls.stream, cls) is not cls:
            other = taken[cls.stream].model_fields["name"].default
            raise ValueError(f"augmentation op {name!r}: stream {cls.stream} is already {other!r}'s")
        return super().add(cls)


AUGMENTATION_OPS = OpRegistry("augmentation op", OpSettings)


class AugmentConfig(Frozen):
    """The mono dataset's augmentation, op by op; each op is a switch with parameters. `ops`:
    the added ops switched on, held in name order (their order in the file changes nothing: they
    apply in that order) and without those whose settings switch them off."""

    preset: str = "full"
    initial_crop: float | None = Field(
        None, gt=0, le=1, description="side of a first random square crop, as a fraction of min(H, W)"
    )
    crop_scale: tuple[float, float] | None = Field(
        None, description="random-resized-crop area fraction range (beta, max); None resizes the whole image"
    )
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation: float = Field(0.0, ge=0, le=180, description="max absolute rotation, degrees")
    shear: float = Field(0.0, ge=0, le=60, description="max absolute shear, degrees")
    hflip: float = Field(0.0, ge=0, le=1, description="probability of a horizontal flip")
    vflip: float = Field(0.0, ge=0, le=1, description="probability of a vertical flip")
    jitter: tuple[float, float, float, float] | None = Field(
        None, description="colour jitter: brightness, contrast, saturation, hue"
    )
    jitter_p: float = Field(0.0, ge=0, le=1)
    # Stage 2, not an op of the generator: true keeps the method's own loader (its
    # LoaderConfig, as upstream's code ran on the generated images, so the paper's ablation
    # rows all had the loaders' crop and flip); false shows the network each sample's centre
    # crop in every epoch (DeepCluster's clustering view). Part of the augmentation, not of a
    # method, because it is what an ablation row varies: its label shows it
    # (`none(loader=False)`) and every method of the row gets it. A boolean, as YAML reads
    # `off` as one. Key-neutral: keys before it had the loaders on.
    loader: Annotated[bool, KeyNeutral(True)] = True
    # KeyNeutral: no added op, every key as before ops existed.
    ops: Annotated[tuple[AUGMENTATION_OPS.field, ...], KeyNeutral(())] = ()  # type: ignore[name-defined]

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return apply_preset(data, AUGMENTATION_PRESETS, "full")

    @field_validator("ops")
    @classmethod
    def _ops_on_in_name_order(cls, ops: tuple[OpSettings, ...]) -> tuple[OpSettings, ...]:
        names = [op.name for op in ops]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"{', '.join(twice)} given twice")
        return tuple(sorted((op for op in ops if op.on()), key=lambda op: op.name))

    def label(self) -> str:
        """The preset's name, with the fields that differ from it and the added ops:
        `full(rotation=0.0)+toy_invert(p=0.25)`."""
        preset = AugmentConfig(preset=self.preset)
        changed = [f"{k}={v}" for k, v in self if k not in ("preset", "ops") and getattr(preset, k) != v]
        added = "".join(f"+{op.label()}" for op in self.ops)
        return self.preset + (f"({','.join(changed)})" if changed else "") + added

    @model_validator(mode="after")
    def _ranges(self) -> AugmentConfig:
        if self.crop_scale and not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale {self.crop_scale} must satisfy 0 < min <= max <= 1")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio {self.crop_ratio} must satisfy 0 < min <= max")
        if self.jitter and not (all(0 <= s <= 1 for s in self.jitter[:3]) and 0 <= self.jitter[3] <= 0.5):
            raise ValueError(f"jitter {self.jitter}: strengths in [0, 1], hue in [0, 0.5]")
        return self


class LoaderConfig(Frozen):
    """Stage 2: a method's own loader over the generated samples, redrawn every epoch. `crop`:
    `random_resized` (torchvision's RandomResizedCrop to the input size: area fraction in
    `scale`, aspect in `ratio`, bilinear) or `random` (a plain crop of the input size at a
    uniform position; `scale` and `ratio` unused); then a horizontal flip with p = `hflip`.
    `crop` and `hflip` have no default: a method's settings give its upstream loader, and a
    partial override cannot silently take another method's."""

    crop: Literal["random_resized", "random"]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = Field(ge=0, le=1, description="probability of a horizontal flip")

    @model_validator(mode="after")
    def _ranges(self) -> LoaderConfig:
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale {self.scale} must satisfy 0 < min <= max <= 1")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio {self.ratio} must satisfy 0 < min <= max")
        return self
