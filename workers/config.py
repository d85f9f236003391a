"""Typed settings of the compute side: network, augmentation, methods, probe protocol.

These models are the contract between the driver and the workers. They import pydantic only,
so the driver can plan a sweep without torch and a GPU box can run a job without ray or mlflow.
Presets are plain dicts of defaults: `{preset: full, rotation: 0}` is the `full` preset with
rotation switched off, and the resolved values (not the preset's name) enter the content keys.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Layer = Literal["conv1", "conv2", "conv3", "conv4", "conv5"]
LAYERS: tuple[str, ...] = get_args(Layer)


class Frozen(BaseModel):
    """Immutable, strict: unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def apply_preset(data: Any, presets: dict[str, dict[str, Any]], default: str) -> Any:
    """Merge a named preset's defaults under the given fields (a bare string names a preset)."""
    if isinstance(data, str):
        data = {"preset": data}
    if not isinstance(data, dict):
        return data
    name = data.get("preset", default)
    if name not in presets:
        allowed = ", ".join(presets)
        raise ValueError(f"unknown preset {name!r}; allowed: {allowed}")
    return {**presets[name], **data, "preset": name}


class NetworkConfig(Frozen):
    """The trunk. `alexnet_bn` is the paper's AlexNet (DESIGN.md); width and input size
    shrink it for CPU runs (width 1.0 at 224 px is the paper's network)."""

    arch: Literal["alexnet_bn"] = "alexnet_bn"
    width: float = Field(1.0, gt=0, le=4)
    # 64 px is the smallest input whose pool5 is not empty (conv5 at 3x3, pool5 at 1x1).
    input_size: int = Field(224, ge=64, le=512)


AUGMENTATION_PRESETS: dict[str, dict[str, Any]] = {
    # The paper's full augmentation: the official script's defaults (DESIGN.md) plus the
    # horizontal flip with p = 0.5 that the paper's text names.
    "full": {
        "initial_crop": 0.5,
        "crop_scale": (1 / 500, 1.0),
        "crop_ratio": (3 / 4, 4 / 3),
        "rotation": 30.0,
        "shear": 30.0,
        "hflip": 0.5,
        "jitter": (0.4, 0.4, 0.4, 0.1),
        "jitter_p": 0.5,
    },
    # Every sample is the (resized) source image itself.
    "none": {
        "initial_crop": None,
        "crop_scale": None,
        "rotation": 0.0,
        "shear": 0.0,
        "hflip": 0.0,
        "jitter": None,
        "jitter_p": 0.0,
    },
}


class AugmentConfig(Frozen):
    """The mono dataset's augmentation, op by op; each op is a switch with parameters."""

    preset: str = "full"
    initial_crop: float | None = Field(
        None, gt=0, le=1, description="side of a first random square crop, as a fraction of min(H, W)"
    )
    crop_scale: tuple[float, float] | None = Field(
        None, description="random-resized-crop area fraction range; None resizes the whole image"
    )
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation: float = Field(0.0, ge=0, le=180, description="max absolute rotation, degrees")
    shear: float = Field(0.0, ge=0, le=60, description="max absolute shear, degrees")
    hflip: float = Field(0.0, ge=0, le=1, description="probability of a horizontal flip")
    jitter: tuple[float, float, float, float] | None = Field(
        None, description="colour jitter: brightness, contrast, saturation, hue"
    )
    jitter_p: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return apply_preset(data, AUGMENTATION_PRESETS, "full")

    @model_validator(mode="after")
    def _ranges(self) -> AugmentConfig:
        if self.crop_scale and not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale {self.crop_scale} must satisfy 0 < min <= max <= 1")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio {self.crop_ratio} must satisfy 0 < min <= max")
        return self


class RandomConfig(Frozen):
    """No training: the seeded random initialisation, the paper's lower reference."""

    name: Literal["random"] = "random"
    uses_images: ClassVar[bool] = False


class RotNetConfig(Frozen):
    """RotNet (Gidaris et al., ICLR 2018): predict which of 4 rotations was applied.
    Defaults are upstream's (DESIGN.md): batch 192, SGD lr 0.1 Nesterov, wd 5e-4, 50 epochs,
    over a mono dataset of d = 1,281,167 samples (the ImageNet train size)."""

    name: Literal["rotnet"] = "rotnet"
    uses_images: ClassVar[bool] = True
    samples: int = Field(1_281_167, ge=1, description="mono dataset length d")
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(192, ge=1, description="source samples per step; x4 rotations")
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)


MethodConfig = Annotated[RandomConfig | RotNetConfig, Field(discriminator="name")]
METHODS: tuple[str, ...] = ("random", "rotnet")


PROBE_PRESETS: dict[str, dict[str, Any]] = {
    # yukimasano/linear-probes (DESIGN.md): 36 epochs, lr 0.01 x0.1 at 10/20/30, wd 1e-5.
    "asano2020": {
        "epochs": 36,
        "batch_size": 192,
        "lr": 0.01,
        "lr_milestones": (10, 20, 30),
        "momentum": 0.9,
        "weight_decay": 1e-5,
        "cache_features": False,
        "train_augment": True,
    },
    # Pooled features computed once and the heads trained from the cache: fast, but no
    # train-time augmentation, so its numbers are not protocol-equal to asano2020.
    "fast": {
        "epochs": 12,
        "batch_size": 256,
        "lr": 0.01,
        "lr_milestones": (8, 11),
        "momentum": 0.9,
        "weight_decay": 1e-5,
        "cache_features": True,
        "train_augment": False,
    },
}


class ProbeConfig(Frozen):
    """Linear-probe protocol: a named preset with optional overrides, recorded on every run."""

    preset: str = "asano2020"
    epochs: int = Field(36, ge=1)
    batch_size: int = Field(192, ge=1)
    lr: float = Field(0.01, gt=0)
    lr_milestones: tuple[int, ...] = (10, 20, 30)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-5, ge=0)
    cache_features: bool = False
    train_augment: bool = True
    train_samples: int | None = Field(
        None, ge=10, description="stratified subset of the train split; None = all"
    )
    test_samples: int | None = Field(None, ge=10, description="test subset; None = the full split")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return apply_preset(data, PROBE_PRESETS, "asano2020")

    @model_validator(mode="after")
    def _cache_means_no_augmentation(self) -> ProbeConfig:
        if self.cache_features and self.train_augment:
            raise ValueError("cache_features computes features once, so train_augment must be false")
        return self


class ImageFile(Frozen):
    """One source image as a worker needs it: where it is and what its bytes hash to."""

    path: str
    sha256: str


class PretrainJob(Frozen):
    """Everything one pre-training needs; `key` is the hash of everything but `label`,
    `coordinates`, `checkpoint_every`, `images[].path` (location, not content) and `key`."""

    key: str
    label: str
    method: MethodConfig
    network: NetworkConfig
    seed: int
    images: tuple[ImageFile, ...] = ()
    augmentation: AugmentConfig | None = None
    coordinates: dict[str, Any] = {}  # the grid values it came from, for records and reports
    checkpoint_every: int = Field(0, ge=0, description="steps between resume checkpoints; 0: none")

    @model_validator(mode="after")
    def _inputs_for_method(self) -> PretrainJob:
        if type(self.method).uses_images and (not self.images or self.augmentation is None):
            raise ValueError(f"method {self.method.name!r} needs source images and an augmentation")
        return self


class ProbeCell(Frozen):
    layer: Layer
    key: str
    label: str
    coordinates: dict[str, Any] = {}


class ProbeJob(Frozen):
    """All pending layers of one (pretrain job, probe dataset): one pass of the frozen trunk."""

    key: str
    label: str
    pretrain_key: str
    network: NetworkConfig
    probe: ProbeConfig
    dataset: ProbeDataset
    data_root: str
    seed: int
    cells: tuple[ProbeCell, ...]


ProbeDataset = Literal["fashion_mnist", "cifar10", "cifar100"]
PROBE_DATASETS: tuple[str, ...] = get_args(ProbeDataset)
# Where each probe dataset is looked for unless the experiment file says otherwise.
DEFAULT_DATA_ROOTS: dict[str, str] = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",  # Debian's dataset-fashion-mnist
    "cifar10": "data/cifar10",
    "cifar100": "data/cifar100",
}
