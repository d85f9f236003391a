"""The jobs the driver hands to the workers: a pretrain job, and the jobs that evaluate a trunk."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from contract.augmentation import AugmentConfig
from contract.base import Frozen
from contract.compute import ComputeConfig
from contract.datasets import LAYERS, TRAIN_SIZES, LabelledDataset, Layer
from contract.evaluations import FinetuneConfig, ProbeConfig, StyleConfig
from contract.methods import MethodConfig
from contract.network import NetworkConfig

# How long a job runs, not what a full run computes (`monosweep smoke` times K steps of each job
# shape): in no key, like `checkpoint_every`.
MAX_STEPS = "stop after this many training steps (a smoke run); None: the whole job"


class ImageFile(Frozen):
    """One source image as a worker needs it: where it is and what its bytes hash to."""

    path: str
    sha256: str


class DatasetImages(Frozen):
    """N source images of a labelled dataset's train split, labels unused: drawn (seeded), or
    the files a named list gives (`chosen`, paths below the split's folder). Read on the worker,
    where the data is: the driver may not see it. `data_root` is where, not what, so it is no
    part of any key."""

    dataset: LabelledDataset
    data_root: str
    n: int = Field(ge=1)
    draw_seed: int = Field(0, ge=0)
    chosen: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _chosen_is_n(self) -> DatasetImages:
        if self.chosen is not None and len(self.chosen) != self.n:
            raise ValueError(f"n = {self.n} but {len(self.chosen)} images are chosen")
        return self

    @property
    def real_images(self) -> bool:
        """The N = all rule: a whole train split is trained on as it is, through each method's
        own pipeline (its loader's views of the real images), with no single-image generator.
        The paper's dataset is "N true images with d - N augmentations": at N = d there are
        none. Below the whole split (N = 1, 10, 1000, ...) the generator makes the d samples."""
        return self.chosen is None and self.n == TRAIN_SIZES[self.dataset]


class LabelledData(Frozen):
    """The labelled train split a pre-training learns from: supervised, its labels; random
    with `bn_statistics: probe_train`, its images only."""

    dataset: LabelledDataset
    data_root: str


class PretrainJob(Frozen):
    """Everything one pre-training needs; `key` is the hash of everything but `label`,
    `coordinates`, `checkpoint_every`, `divergence_threshold` and `max_steps` (whether and when
    a run ends, not what it computes), `images[].path`, the data roots (locations, not content)
    and `key`; `compute` is in it only where it differs from fp32 eager. The source images are
    `images` (files) or `drawn` (from a dataset)."""

    key: str
    label: str
    method: MethodConfig
    network: NetworkConfig
    seed: int
    images: tuple[ImageFile, ...] = ()
    drawn: DatasetImages | None = None
    augmentation: AugmentConfig | None = None
    labels: LabelledData | None = None
    compute: ComputeConfig = ComputeConfig()  # how it computes (precision, memory format, compile)
    coordinates: dict[str, Any] = {}  # the grid values it came from, for records and reports
    checkpoint_every: int = Field(0, ge=0, description="steps between resume checkpoints; 0: none")
    divergence_threshold: float | None = Field(
        None, gt=0, description="a pretext loss above it fails the job as diverged; None: no check"
    )
    max_steps: int | None = Field(None, ge=1, description=MAX_STEPS)

    @model_validator(mode="after")
    def _inputs_for_method(self) -> PretrainJob:
        method = self.method  # what it learns from may depend on its settings
        if self.images and self.drawn:
            raise ValueError("give the source images as files or as a draw from a dataset, not both")
        if method.uses_images:
            if not (self.images or self.drawn):
                raise ValueError(f"method {self.method.name!r} needs source images")
            real = self.drawn is not None and self.drawn.real_images
            if real and self.augmentation is not None:
                raise ValueError("a whole train split is trained on without the generator: no augmentation")
            if not real and self.augmentation is None:
                raise ValueError(f"method {self.method.name!r} needs an augmentation of its source images")
        if method.uses_train_split and self.labels is None:
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


class EvaluationJob(Frozen):
    """A job that evaluates the trunk of one finished pretrain job: one MLflow run per cell,
    under the pretrain run. Each evaluation kind's job adds its settings; two kinds may share a
    job model, so the worker runs the kind the job names, never the first whose model it is."""

    key: str
    label: str
    evaluation: str = Field(description="the evaluation kind that runs it (its name, as the grid's items give it)")
    pretrain_key: str
    network: NetworkConfig
    seed: int
    cells: tuple[JobCell, ...]
    compute: ComputeConfig = ComputeConfig()  # its trunk's: one setting per sweep (the spec's)
    max_steps: int | None = Field(None, ge=1, description=MAX_STEPS)
    # The artifact of the pretrain run that holds the trunk: its own, or a snapshot's
    # (orchestrator/snapshots.py); where the trunk is, not what it is (its key says that).
    checkpoint: str = "checkpoint.pt"


class ProbeJob(EvaluationJob):
    """All pending layers of one (pretrain job, probe dataset): one pass of the frozen trunk."""

    probe: ProbeConfig
    dataset: LabelledDataset
    data_root: str
    cells: tuple[ProbeCell, ...]


class FinetuneJob(EvaluationJob):
    """Finetune the trunk of one pretrain job on a labelled dataset with conv1..conv`frozen`
    frozen: one cell, one run."""

    finetune: FinetuneConfig
    frozen: int = Field(ge=0, le=len(LAYERS))
    dataset: LabelledDataset
    data_root: str
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


class StyleJob(EvaluationJob):
    """Style transfer through the trunk of one pretrain job, every pending pair."""

    style: StyleConfig
    cells: tuple[StyleCell, ...]
