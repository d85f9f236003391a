"""The settings of each SSL method (pretext task), with upstream's defaults, and the table of
methods: a shipped method is its settings class here (added to `METHODS`) and its implementation
in workers/methods/; a package of one's own adds its settings class from its own module, named
under the `monosweep.methods` entry point (contract/plugins.py; docs/ARCHITECTURE.md shows one
added end to end)."""

from __future__ import annotations

import hashlib
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from contract.augmentation import LoaderConfig
from contract.base import Frozen, KeyNeutral
from contract.registry import Registry
from contract.schedules import Schedule


class MethodSettings(Frozen):
    """What every method's settings say: its name, what it learns from, where it is
    implemented ((module, class), imported by the worker that runs it). What it learns from is
    read from the settings (`settings.uses_images`), not the class: a setting may change it
    (random's `bn_statistics`)."""

    name: str
    # The same settings under an independent random stream: `[rotnet, {name: rotnet, seed_stream:
    # 1}]` are two rows (rotnet#1, rotnet#2) that differ by chance alone, an A/A control.
    seed_stream: Annotated[int, KeyNeutral(0), Field(ge=0)] = 0
    uses_images: ClassVar[bool] = True  # the row's source images and augmentation
    uses_labels: ClassVar[bool] = False  # the labels of the probe dataset's train split
    implementation: ClassVar[tuple[str, str]]  # (module, class)

    @property
    def uses_train_split(self) -> bool:
        """Made from the probe dataset's train split (its labels, or only its images), so there
        is one trunk per probe dataset, each made from that dataset's split."""
        return self.uses_labels

    @property
    def label(self) -> str:
        """How report rows and run names call these settings: the name, and whatever setting
        makes the trunk a different kind of reference (`random(bn=pretext)`)."""
        return self.name


def stream_seed(seed: int, stream: int) -> int:
    """The seed the jobs of grid seed `seed` run under in random stream `stream`: `seed` itself
    in stream 0 (as before streams existed), else a number drawn from sha256 of both in [2**31,
    2**32): never a seed a file lists below 2**31, and within the workers' 32-bit streams."""
    if stream == 0:
        return seed
    digest = hashlib.sha256(f"seed {seed} stream {stream}".encode()).digest()
    return 2**31 + int.from_bytes(digest[:4], "big") % 2**31


METHODS: Registry[MethodSettings] = Registry("method", MethodSettings)


def snapshot_artifact(samples: int) -> str:
    """The artifact of a pretrain run that holds its trunk after `samples` source samples."""
    return f"trunk_at_{samples}_samples.pt"


class Snapshots(Frozen):
    """A training-budget curve from one run (ours): the trunk is also saved after `snapshots`
    source samples (each a multiple of the batch, below the run's own `budget`), and each
    snapshot is evaluated as a trunk of its own, its rows named `METHOD@SAMPLES`. A snapshot
    is the run's trunk at that step, under the whole run's schedule: not a shorter run with a
    schedule of its own."""

    snapshots: Annotated[tuple[int, ...], KeyNeutral(())] = Field(
        (), description="source samples after which the trunk is saved and evaluated as its own row"
    )

    @property
    def budget(self) -> int:
        """Source samples the whole run trains on: whole batches, every epoch."""
        return self.epochs * max(1, self.samples // self.batch_size) * self.batch_size  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _snapshots_inside_the_run(self) -> Snapshots:
        taken = self.snapshots
        if list(taken) != sorted(set(taken)):
            raise ValueError(f"snapshots {list(taken)} must be ascending, each once")
        batch = self.batch_size  # type: ignore[attr-defined]
        for n in taken:
            if n <= 0 or n % batch or n >= self.budget:
                raise ValueError(
                    f"snapshot {n}: a multiple of batch_size {batch} below the run's {self.budget} samples "
                    "(the run's own trunk is the last point)"
                )
        return self


# Random's BN statistics, when re-estimated: over this many samples, through RotNet's and
# DeepCluster's loader (the view of the mono samples the trained trunks it is compared to saw).
BN_SAMPLES = 10_000
PRETEXT_LOADER = LoaderConfig(crop="random_resized", hflip=0.5)


@METHODS.add
class RandomConfig(MethodSettings):
    """No training: the seeded random initialisation, the paper's lower reference.

    `bn_statistics` (ours): `init` keeps BatchNorm's initial statistics (mean 0, variance 1),
    which the random trunk is probed with in eval mode, while a trained trunk's come from its
    pretext data: "beats random" could then be BN alone. `pretext` re-estimates them on the
    row's mono dataset (its images and augmentation, through `loader`); `probe_train` on the
    probe dataset's train images (the first `samples` of its stratified subsets, the probes'
    own when the sizes agree; whole images at the input size; labels unused), one trunk per
    probe dataset. Re-estimation: `samples` samples through the trunk in train mode, momentum
    None (the cumulative average of the batches' statistics), no gradient; no weight changes."""

    name: Literal["random"] = "random"
    implementation: ClassVar[tuple[str, str]] = ("workers.methods.random_init", "RandomInit")
    bn_statistics: Annotated[Literal["init", "pretext", "probe_train"], KeyNeutral("init")] = "init"
    samples: Annotated[int, KeyNeutral(BN_SAMPLES)] = Field(
        BN_SAMPLES, ge=2, description="samples the BN statistics are re-estimated over"
    )
    loader: Annotated[LoaderConfig, KeyNeutral(PRETEXT_LOADER)] = PRETEXT_LOADER

    @property
    def uses_images(self) -> bool:  # type: ignore[override]
        return self.bn_statistics == "pretext"

    @property
    def uses_train_split(self) -> bool:
        return self.bn_statistics == "probe_train"

    @property
    def label(self) -> str:
        return self.name if self.bn_statistics == "init" else f"{self.name}(bn={self.bn_statistics})"

    @model_validator(mode="after")
    def _settings_of_the_estimate(self) -> RandomConfig:
        if self.bn_statistics == "init" and self.samples != BN_SAMPLES:
            raise ValueError("samples: the initial BN statistics are not estimated (set bn_statistics)")
        if self.bn_statistics != "pretext" and self.loader != PRETEXT_LOADER:
            raise ValueError("loader: only bn_statistics pretext reads the mono samples")
        return self


@METHODS.add
class RotNetConfig(MethodSettings, Snapshots):
    """RotNet (Gidaris et al., ICLR 2018): predict which of 4 rotations was applied.
    Defaults from gidariss/FeatureLearningRotNet's config/ImageNet_RotNet_AlexNet.py: batch 192,
    SGD Nesterov, wd 5e-4, 50 epochs, over a mono dataset of d = 1,281,167 samples (the
    ImageNet train size), and its LUT_lr: 0.01 -> 1e-3 -> 1e-4 -> 1e-5 at epochs 15/30/45 (the
    config's `lr: 0.1` is overwritten by the LUT before the first epoch)."""

    name: Literal["rotnet"] = "rotnet"
    implementation: ClassVar[tuple[str, str]] = ("workers.methods.rotnet", "RotNet")
    samples: int = Field(1_281_167, ge=1, description="mono dataset length d")
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(192, ge=1, description="source samples per step; x4 rotations")
    lr: float = Field(0.01, gt=0)
    schedule: Schedule = Schedule(kind="steps", at=(0.3, 0.6, 0.9))
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    nesterov: bool = True
    # dataloader.py l.103-108 (random_sized_crop, config l.9): RandomSizedCrop(224) + flip.
    loader: LoaderConfig = LoaderConfig(crop="random_resized", hflip=0.5)


@METHODS.add
class DeepClusterConfig(MethodSettings, Snapshots):
    """DeepCluster (Caron et al., ECCV 2018): k-means on the network's own features gives
    pseudo-labels, re-computed every epoch. Defaults from facebookresearch/deepcluster: Sobel input,
    k = 10000 on PCA-256 whitened, L2-normalised features, 20 k-means iterations (faiss's
    niter), SGD lr 0.05 constant, wd 1e-5, batch 256, 200 epochs (main.py's default); the top
    layer has its own SGD without momentum.

    `sampler`: which samples an epoch trains on. `upstream` (default: the paper's numbers came
    from it) is what upstream's code executes: util.py's UnifLabelSampler draws image indexes
    uniformly over the clusters, and main.py hands them to clustering.py's ReassignedDataset,
    whose items are stored cluster by cluster and looked up by position, so an index picks the
    image at that position: clusters are trained on about in proportion to their size.
    `uniform` is what UnifLabelSampler's docstring says ("uniformely accross pseudolabels"):
    the drawn images themselves, equally many from every non-empty cluster (our only behaviour
    before this setting, so it keeps those keys)."""

    name: Literal["deepcluster"] = "deepcluster"
    implementation: ClassVar[tuple[str, str]] = ("workers.methods.deepcluster", "DeepCluster")
    samples: int = Field(1_281_167, ge=1, description="mono dataset length d")
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(0.05, gt=0)
    schedule: Schedule = Schedule()
    momentum: float = Field(0.9, ge=0, lt=1, description="trunk and fc6/fc7; the top layer has none")
    weight_decay: float = Field(1e-5, ge=0)
    nesterov: bool = False
    k: int = Field(10_000, ge=2, description="clusters")
    pca_dim: int = Field(256, ge=2, description="PCA-whitened feature size before k-means")
    kmeans_iterations: int = Field(20, ge=1)
    cluster_samples: int | None = Field(
        None, ge=2, description="mono samples clustered each epoch (a seeded draw); None: all d"
    )
    sobel: bool = True
    sampler: Annotated[Literal["upstream", "uniform"], KeyNeutral("uniform")] = "upstream"
    # Training: clustering.py l.142-143, RandomResizedCrop(224) + flip. The clustering pass
    # (main.py l.122-123, Resize(256) + CenterCrop(224)) is fixed: the sample's centre crop.
    loader: LoaderConfig = LoaderConfig(crop="random_resized", hflip=0.5)

    @model_validator(mode="after")
    def _enough_samples(self) -> DeepClusterConfig:
        clustered = self.cluster_samples or self.samples
        if clustered > self.samples:
            raise ValueError(f"cluster_samples {clustered} exceeds the dataset length {self.samples}")
        if self.k > clustered:
            raise ValueError(f"k = {self.k} clusters need at least as many clustered samples ({clustered})")
        return self


@METHODS.add
class BiGANConfig(MethodSettings, Snapshots):
    """BiGAN (Donahue, Kraehenbuehl, Darrell, ICLR 2017): an encoder E (the trunk and a linear
    map to z), a generator G and a discriminator D of (x, z) pairs. Defaults are the paper's
    ImageNet settings: z of 200 dims, Adam lr 2e-4, betas (0.5, 0.999), wd 2.5e-5, batch 128,
    100 epochs, the rate constant for 50 and then decayed exponentially to 0.01 x (the official
    code's train_gan.py set_lr); `gan_channels` is DCGAN's base width of G and D. The loader is the official
    code's (data.py l.71-96, train_imagenet.sh l.19: minor edge 72, a random 64 crop, no flip):
    a random crop of the input size from the generated sample, with no flip. The sample/crop
    ratio differs slightly: upstream 72/64 = 1.125, ours 256/224 = 1.143 (73/64 at 64 px)."""

    name: Literal["bigan"] = "bigan"
    implementation: ClassVar[tuple[str, str]] = ("workers.methods.bigan", "BiGAN")
    samples: int = Field(1_281_167, ge=1, description="mono dataset length d")
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(2e-4, gt=0)
    schedule: Schedule = Schedule(kind="exponential", at=(0.5,), final=0.01)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = Field(2.5e-5, ge=0)
    z_dim: int = Field(200, ge=1)
    gan_channels: int = Field(64, ge=4)
    loader: LoaderConfig = LoaderConfig(crop="random", hflip=0.0)


@METHODS.add
class SupervisedConfig(MethodSettings):
    """Supervised training with the labels of the probe dataset's train split: the paper's
    upper reference. Defaults are torchvision's classification reference (references/
    classification README and train.py: SGD lr 0.1, momentum 0.9, wd 1e-4, batch 256, 90
    epochs, StepLR x0.1 every 30), not confirmed as the paper's. The rate is torchvision's
    default, which its README keeps for networks with batch normalisation (vgg*_bn) and lowers
    to 0.01 only for AlexNet and VGG, "since [they] do not include batch normalization"; this
    trunk has BN after every conv. No upstream code trains AlexNet with BN on labels, so the
    choice is ours, by that rule."""

    name: Literal["supervised"] = "supervised"
    implementation: ClassVar[tuple[str, str]] = ("workers.methods.supervised", "Supervised")
    uses_images: ClassVar[bool] = False
    uses_labels: ClassVar[bool] = True
    train_samples: int | None = Field(
        None, ge=10, description="stratified subset of the train split; None = all"
    )
    epochs: int = Field(90, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(0.1, gt=0)
    schedule: Schedule = Schedule(kind="steps", at=(1 / 3, 2 / 3))
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    nesterov: bool = False
    # Ours: false trains on each whole image resized to the input size (as the `fast` probes
    # read them); torchvision's RandomResizedCrop keeps as little as 8 % of a 28 px image.
    train_augment: Annotated[bool, KeyNeutral(True)] = Field(
        True, description="RandomResizedCrop + flip of the train images; false: each whole image, resized"
    )

    @property
    def label(self) -> str:
        return self.name if self.train_augment else f"{self.name}(train_augment=False)"


@METHODS.add
class PixelsConfig(MethodSettings):
    """The raw-pixel control (ours): no network; each layer's linear probe reads the normalised
    input image pooled to as many features as that layer of the spec's network gives
    (workers/models/pixels.py). A row `pixels` at column conv1 is a linear probe on pixels with
    conv1's feature count."""

    name: Literal["pixels"] = "pixels"
    # Nothing to train or estimate: random's implementation, which does nothing, on the Pixels trunk.
    implementation: ClassVar[tuple[str, str]] = ("workers.methods.random_init", "RandomInit")
    uses_images: ClassVar[bool] = False
    pixels: ClassVar[bool] = True  # orchestrator.grid.job_network: its jobs' network is the input


# A field of any registered method's settings, chosen by the `name` its data gives.
MethodConfig = METHODS.field
