"""Typed settings of the compute side: network, augmentation, methods, probe protocol.

These models are the contract between the driver and the workers. They import pydantic only,
so the driver can plan a sweep without torch and a GPU box can run a job without ray or mlflow.
Presets are plain dicts of defaults: `{preset: full, rotation: 0}` is the `full` preset with
rotation switched off, and the resolved values (not the preset's name) enter the content keys.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Layer = Literal["conv1", "conv2", "conv3", "conv4", "conv5"]
LAYERS: tuple[str, ...] = get_args(Layer)

ProbeDataset = Literal["fashion_mnist", "cifar10", "cifar100", "stl10", "imagenet"]
PROBE_DATASETS: tuple[str, ...] = get_args(ProbeDataset)
# Where each probe dataset is looked for unless the experiment file says otherwise.
DEFAULT_DATA_ROOTS: dict[str, str] = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",  # Debian's dataset-fashion-mnist
    "cifar10": "data/cifar10",
    "cifar100": "data/cifar100",
    "stl10": "data/stl10",
    "imagenet": "data/imagenet",
}
# Images in each train split: lets the driver check a draw of N without seeing the data.
TRAIN_SIZES: dict[str, int] = {
    "fashion_mnist": 60_000,
    "cifar10": 50_000,
    "cifar100": 50_000,
    "stl10": 5_000,  # the labelled train split
    "imagenet": 1_281_167,
}


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
    """The trunk. `alexnet_bn` is the paper's AlexNet (DESIGN.md), `alexnet` torchvision's
    shape (64-192-384-256-256, no BatchNorm); width and input size shrink it for CPU runs
    (width 1.0 at 224 px is the paper's network). `sobel` puts DeepCluster's fixed Sobel
    filter first (a method such as deepcluster switches it on for its own jobs)."""

    arch: Literal["alexnet_bn", "alexnet"] = "alexnet_bn"
    width: float = Field(1.0, gt=0, le=4)
    # 64 px is the smallest input whose pool5 is not empty (conv5 at 3x3, pool5 at 1x1).
    input_size: int = Field(224, ge=64, le=512)
    sobel: bool = False


# The paper's seed note (DESIGN.md): crops of at least beta*H*W, rotation up to 35 degrees,
# flip with p = 0.5, colour jitter, rescale. The text gives no beta or jitter strengths: beta,
# the aspect range and the jitter are the official script's.
_ASANO2020_OPS: dict[str, dict[str, Any]] = {
    "crop": {"crop_scale": (1 / 500, 1.0), "crop_ratio": (3 / 4, 4 / 3)},
    "rotation": {"rotation": 35.0},
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
# yukimasano/single_img_pretraining's make_dataset_single.py defaults (DESIGN.md). The script
# leaves the horizontal flip to the pre-training code ("hflip ... is usually in the pretraining
# method's codebase already"), which applies it with p = 0.5: it is here, so the network sees
# what it saw upstream. Its --vflip is off by default.
_OFFICIAL_SCRIPT: dict[str, Any] = {
    **_NONE,
    "initial_crop": 0.5,
    "crop_scale": (1 / 500, 1.0),
    "rotation": 30.0,
    "shear": 30.0,
    "hflip": 0.5,
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


class AugmentConfig(Frozen):
    """The mono dataset's augmentation, op by op; each op is a switch with parameters."""

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
        if self.jitter and not (all(0 <= s <= 1 for s in self.jitter[:3]) and 0 <= self.jitter[3] <= 0.5):
            raise ValueError(f"jitter {self.jitter}: strengths in [0, 1], hue in [0, 0.5]")
        return self


class RandomConfig(Frozen):
    """No training: the seeded random initialisation, the paper's lower reference."""

    name: Literal["random"] = "random"
    uses_images: ClassVar[bool] = False
    uses_labels: ClassVar[bool] = False


class RotNetConfig(Frozen):
    """RotNet (Gidaris et al., ICLR 2018): predict which of 4 rotations was applied.
    Defaults are upstream's (DESIGN.md): batch 192, SGD lr 0.1 Nesterov, wd 5e-4, 50 epochs,
    over a mono dataset of d = 1,281,167 samples (the ImageNet train size)."""

    name: Literal["rotnet"] = "rotnet"
    uses_images: ClassVar[bool] = True
    uses_labels: ClassVar[bool] = False
    samples: int = Field(1_281_167, ge=1, description="mono dataset length d")
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(192, ge=1, description="source samples per step; x4 rotations")
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    nesterov: bool = True


class DeepClusterConfig(Frozen):
    """DeepCluster (Caron et al., ECCV 2018): k-means on the network's own features gives
    pseudo-labels, re-computed every epoch. Defaults are upstream's (DESIGN.md): Sobel input,
    k = 10000 on PCA-256 whitened, L2-normalised features, 20 k-means iterations (faiss's
    niter), SGD lr 0.05, wd 1e-5, batch 256, 200 epochs (main.py's default)."""

    name: Literal["deepcluster"] = "deepcluster"
    uses_images: ClassVar[bool] = True
    uses_labels: ClassVar[bool] = False
    samples: int = Field(1_281_167, ge=1, description="mono dataset length d")
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-5, ge=0)
    nesterov: bool = False
    k: int = Field(10_000, ge=2, description="clusters")
    pca_dim: int = Field(256, ge=2, description="PCA-whitened feature size before k-means")
    kmeans_iterations: int = Field(20, ge=1)
    cluster_samples: int | None = Field(
        None, ge=2, description="mono samples clustered each epoch (a seeded draw); None: all d"
    )
    sobel: bool = True

    @model_validator(mode="after")
    def _enough_samples(self) -> DeepClusterConfig:
        clustered = self.cluster_samples or self.samples
        if clustered > self.samples:
            raise ValueError(f"cluster_samples {clustered} exceeds the dataset length {self.samples}")
        if self.k > clustered:
            raise ValueError(f"k = {self.k} clusters need at least as many clustered samples ({clustered})")
        return self


class BiGANConfig(Frozen):
    """BiGAN (Donahue, Kraehenbuehl, Darrell, ICLR 2017): an encoder E (the trunk and a linear
    map to z), a generator G and a discriminator D of (x, z) pairs. Defaults are the paper's
    ImageNet settings: z of 200 dims, Adam lr 2e-4, betas (0.5, 0.999), wd 2.5e-5, batch 128,
    100 epochs; `gan_channels` is DCGAN's base width of G and D."""

    name: Literal["bigan"] = "bigan"
    uses_images: ClassVar[bool] = True
    uses_labels: ClassVar[bool] = False
    samples: int = Field(1_281_167, ge=1, description="mono dataset length d")
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = Field(2.5e-5, ge=0)
    z_dim: int = Field(200, ge=1)
    gan_channels: int = Field(64, ge=4)


class SupervisedConfig(Frozen):
    """Supervised training with the labels of the probe dataset's train split: the paper's
    upper reference. Defaults are torchvision's AlexNet reference recipe (SGD lr 0.01,
    momentum 0.9, wd 1e-4, batch 256, 90 epochs), not confirmed as the paper's."""

    name: Literal["supervised"] = "supervised"
    uses_images: ClassVar[bool] = False
    uses_labels: ClassVar[bool] = True
    train_samples: int | None = Field(
        None, ge=10, description="stratified subset of the train split; None = all"
    )
    epochs: int = Field(90, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    nesterov: bool = False


# RandomConfig and RotNetConfig first: error messages list the names in this order.
MethodConfig = Annotated[
    RandomConfig | RotNetConfig | SupervisedConfig | DeepClusterConfig | BiGANConfig,
    Field(discriminator="name"),
]
METHODS: tuple[str, ...] = ("random", "rotnet", "supervised", "deepcluster", "bigan")


PROBE_PRESETS: dict[str, dict[str, Any]] = {
    # yukimasano/linear-probes (DESIGN.md): 36 epochs, lr 0.01 x0.1 at 10/20/30, wd 1e-5;
    # BN without affine; test Resize(256/224 x size) + ten crops, their logits averaged.
    "asano2020": {
        "epochs": 36,
        "batch_size": 192,
        "lr": 0.01,
        "lr_milestones": (10, 20, 30),
        "momentum": 0.9,
        "weight_decay": 1e-5,
        "cache_features": False,
        "train_augment": True,
        "bn_affine": False,
        "test_crops": "ten",
    },
    # VISSL's AlexNet linear protocol (DESIGN.md): 28 epochs, wd 5e-4, lr steps 8/16/24,
    # affine BN, one centre crop. lr and batch are not given there: asano2020's are kept.
    "vissl": {
        "epochs": 28,
        "batch_size": 192,
        "lr": 0.01,
        "lr_milestones": (8, 16, 24),
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "cache_features": False,
        "train_augment": True,
        "bn_affine": True,
        "test_crops": "center",
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
        "bn_affine": False,
        "test_crops": "resize",
    },
}


class Subsets(Frozen):
    """How much of a labelled dataset an evaluation reads: all of it, or stratified subsets
    (CPU-sized runs)."""

    train_samples: int | None = Field(
        None, ge=10, description="stratified subset of the train split; None = all"
    )
    test_samples: int | None = Field(None, ge=10, description="test subset; None = the full split")


class ProbeConfig(Subsets):
    """Linear-probe protocol: a named preset with optional overrides, recorded on every run.
    `test_crops`: `resize` scales the whole image to the input size; `center` resizes the
    short side to 256/224 x the input size and takes the centre crop; `ten` takes the four
    corners, the centre and their mirrors and averages the logits."""

    preset: str = "asano2020"
    epochs: int = Field(36, ge=1)
    batch_size: int = Field(192, ge=2)
    lr: float = Field(0.01, gt=0)
    lr_milestones: tuple[int, ...] = (10, 20, 30)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-5, ge=0)
    cache_features: bool = False
    train_augment: bool = True
    bn_affine: bool = False
    test_crops: Literal["resize", "center", "ten"] = "ten"

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return apply_preset(data, PROBE_PRESETS, "asano2020")

    @model_validator(mode="after")
    def _cache_means_no_augmentation(self) -> ProbeConfig:
        if self.cache_features and self.train_augment:
            raise ValueError("cache_features computes features once, so train_augment must be false")
        return self


FINETUNE_PRESETS: dict[str, dict[str, Any]] = {
    # torchvision's AlexNet reference recipe (SGD lr 0.01, momentum 0.9, wd 1e-4, batch 256,
    # 90 epochs, x0.1 every 30), the classic supervised protocol; not confirmed as the paper's.
    "torchvision": {
        "epochs": 90,
        "batch_size": 256,
        "lr": 0.01,
        "lr_milestones": (30, 60),
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "test_crops": "center",
    },
    # A few epochs at a higher rate: CPU-sized example sweeps, not protocol-equal.
    "fast": {
        "epochs": 3,
        "batch_size": 64,
        "lr": 0.02,
        "lr_milestones": (2,),
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "test_crops": "resize",
    },
}


class FinetuneConfig(Subsets):
    """Finetuning with the leading conv layers frozen (the paper: conv1-2 learned from one
    image, the rest trained with labels, comes close to full supervision). The unfrozen conv
    layers are re-initialised (seeded) when `reinit` is set (the default; DESIGN.md does not
    say whether the paper kept them), so what is measured is the frozen layers alone: then
    k = 0 is supervised training from scratch, the same number for every trunk. Train inputs: RandomResizedCrop + flip; AlexNet's classifier
    (fc6, fc7, fc8) as the head."""

    preset: str = "torchvision"
    epochs: int = Field(90, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(0.01, gt=0)
    lr_milestones: tuple[int, ...] = (30, 60)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    nesterov: bool = False
    reinit: bool = Field(True, description="re-initialise the unfrozen conv layers")
    test_crops: Literal["resize", "center"] = "center"

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return apply_preset(data, FINETUNE_PRESETS, "torchvision")


class StyleConfig(Frozen):
    """Gatys-style transfer (Gatys, Ecker, Bethge, CVPR 2016) through the trunk: an image,
    started from the content image, is optimised so that its Gram matrices on `style_layers`
    match the style image's and its `content_layer` features match the content image's. Each
    loss is relative (divided by its target's squared norm), so trunks whose features differ
    in scale are compared on one footing. Images: bundled names (photos for contents, style
    images for styles) or files."""

    contents: tuple[str, ...] = Field(("astronaut",), min_length=1)
    styles: tuple[str, ...] = Field(("hubble", "ihc"), min_length=1)
    style_layers: tuple[Layer, ...] = Field(("conv1", "conv2"), min_length=1)
    content_layer: Layer = "conv2"
    # 64 px, as for the network's input: the smallest image whose conv5 still has a pool5.
    size: int = Field(256, ge=64, le=1024, description="side of the stylised image, pixels")
    steps: int = Field(300, ge=1)
    lr: float = Field(0.01, gt=0, description="Adam's rate on pixels in [0, 1]")
    style_weight: float = Field(10.0, ge=0)
    content_weight: float = Field(3.0, ge=0)
    # conv1's stride of 4 leaves a 4-pixel grid on the image; total variation smooths it.
    tv_weight: float = Field(2.0, ge=0, description="weight of the total-variation term")

    @model_validator(mode="after")
    def _no_repeats(self) -> StyleConfig:
        for name, refs in (("contents", self.contents), ("styles", self.styles)):
            if len(set(refs)) < len(refs):
                raise ValueError(f"{name}: an image is listed twice")
        return self


class ImageFile(Frozen):
    """One source image as a worker needs it: where it is and what its bytes hash to."""

    path: str
    sha256: str


class DatasetImages(Frozen):
    """N source images drawn (seeded) from a labelled dataset's train split, labels unused.
    Drawn on the worker, where the data is: the driver may not see it. `data_root` is where,
    not what, so it is no part of any key."""

    dataset: ProbeDataset
    data_root: str
    n: int = Field(ge=1)
    draw_seed: int = Field(0, ge=0)


class LabelledData(Frozen):
    """The labelled train split a supervised pre-training learns from."""

    dataset: ProbeDataset
    data_root: str


class PretrainJob(Frozen):
    """Everything one pre-training needs; `key` is the hash of everything but `label`,
    `coordinates`, `checkpoint_every` and `divergence_threshold` (whether a run ends, not what
    it computes), `images[].path`, the data roots (locations, not content) and `key`. The
    source images are `images` (files) or `drawn` (from a dataset)."""

    key: str
    label: str
    method: MethodConfig
    network: NetworkConfig
    seed: int
    images: tuple[ImageFile, ...] = ()
    drawn: DatasetImages | None = None
    augmentation: AugmentConfig | None = None
    labels: LabelledData | None = None
    coordinates: dict[str, Any] = {}  # the grid values it came from, for records and reports
    checkpoint_every: int = Field(0, ge=0, description="steps between resume checkpoints; 0: none")
    divergence_threshold: float | None = Field(
        None, gt=0, description="a pretext loss above it fails the job as diverged; None: no check"
    )

    @model_validator(mode="after")
    def _inputs_for_method(self) -> PretrainJob:
        method = type(self.method)
        if self.images and self.drawn:
            raise ValueError("give the source images as files or as a draw from a dataset, not both")
        if method.uses_images and (not (self.images or self.drawn) or self.augmentation is None):
            raise ValueError(f"method {self.method.name!r} needs source images and an augmentation")
        if method.uses_labels and self.labels is None:
            raise ValueError(f"method {self.method.name!r} needs a labelled dataset")
        return self


class JobCell(Frozen):
    """A cell of an evaluation job: one MLflow run; `part` routes the job's records to it
    (None: the job's one run)."""

    key: str
    label: str
    coordinates: dict[str, Any] = {}

    @property
    def part(self) -> str | None:
        return None


class ProbeCell(JobCell):
    layer: Layer

    @property
    def part(self) -> str:
        return self.layer


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


class FinetuneJob(Frozen):
    """Finetune the trunk of one pretrain job on a labelled dataset with conv1..conv`frozen`
    frozen: one cell, one run."""

    key: str
    label: str
    pretrain_key: str
    network: NetworkConfig
    finetune: FinetuneConfig
    frozen: int = Field(ge=0, le=len(LAYERS))
    dataset: ProbeDataset
    data_root: str
    seed: int
    cells: tuple[JobCell, ...]  # one
    # Like a pretrain job's: whether and when a run saves its state or fails, not what it computes.
    checkpoint_every: int = Field(0, ge=0, description="steps between resume checkpoints; 0: none")
    divergence_threshold: float | None = None


class StyleCell(JobCell):
    """One (content, style) pair of a style-transfer job."""

    content: ImageFile
    style: ImageFile

    @property
    def part(self) -> str:
        return self.key  # two pairs may share file names (photos/a.jpg, mine/a.jpg), never a key


class StyleJob(Frozen):
    """Style transfer through the trunk of one pretrain job, every pending pair."""

    key: str
    label: str
    pretrain_key: str
    network: NetworkConfig
    style: StyleConfig
    seed: int
    cells: tuple[StyleCell, ...]


# Every job that evaluates a finished trunk; one MLflow run per cell.
EvaluationJob = ProbeJob | FinetuneJob | StyleJob
