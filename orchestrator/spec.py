"""The schema of experiments.yaml: a grid of axes plus the settings every cell shares.

Validation needs a context `{"base_dir": Path}` (the experiment file's folder) so that image
paths are checked, relative to the file, before any compute is spent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from contract.augmentation import AugmentConfig
from contract.base import Frozen, deprecated_name
from contract.compute import ComputeConfig
from contract.datasets import DEFAULT_DATA_ROOTS, LAYERS, TRAIN_SIZES, LabelledDataset, Layer
from contract.evaluations import FinetuneConfig, ProbeConfig, StyleConfig
from contract.images import STYLES_DIR, draw, pool_files, resolve_photo
from contract.methods import MethodConfig
from contract.network import NetworkConfig
from contract.paper_images import CHOSEN, CHOSEN_DATASET, resolve_source
from orchestrator.evaluations import EVALUATIONS, coordinates
from orchestrator.faults import Fault
from orchestrator.findings import Finding

# The tracking stores MLflow reads and writes (a database's driver may follow a `+`:
# postgresql+psycopg://); a plain path is a local file store.
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks")


def _base_dir(info: ValidationInfo) -> Path:
    return Path((info.context or {}).get("base_dir", "."))


class ImageSet(Frozen):
    """One value of the N axis: named photos / image files, N drawn from a pool folder, N
    drawn from a labelled dataset's train split (`n: all` takes the whole split, which is
    trained on without the generator: contract.jobs.DatasetImages.real_images), or a named
    list of a dataset's train images (`chosen: asano2020`, the ten ImageNet images the paper's
    code chose for N = 10).

    A bare string is shorthand for one photo: `astronaut` == `{photos: [astronaut]}`. A photo
    is a bundled name, one of the paper's images (`ameyoko`, `sf`, `animals`: a folder the user
    fills, contract.paper_images) or a file. Photos and pools are read and hashed here (the
    paper's images: their pinned hashes, so no file is needed to plan); a dataset's images are
    read on the worker, where the data is, so a file naming `/data/imagenet` validates on a
    laptop without it.
    """

    photos: tuple[str, ...] | None = None
    pool: str | None = None
    dataset: LabelledDataset | None = Field(None, description="a labelled dataset whose train split is drawn from")
    n: int | None = Field(None, ge=1, description="number of source images N (`all`: a whole train split)")
    draw_seed: int = Field(0, ge=0, description="seed of the draw of N images from the pool or dataset")
    chosen: str | None = Field(None, description="a named list of the dataset's train images, instead of a draw")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"photos": (data,)}
        if isinstance(data, dict) and data.get("n") == "all":
            if data.get("dataset") not in TRAIN_SIZES:
                raise ValueError("`n: all` draws a whole dataset's train split: give `dataset` too")
            return {**data, "n": TRAIN_SIZES[data["dataset"]]}
        if isinstance(data, dict) and isinstance(data.get("chosen"), str) and data["chosen"] in CHOSEN \
                and "n" not in data:
            return {**data, "n": len(CHOSEN[data["chosen"]])}
        return data

    @field_validator("photos")
    @classmethod
    def _photos_exist(cls, photos: tuple[str, ...] | None, info: ValidationInfo):
        for ref in photos or ():
            resolve_source(ref, _base_dir(info))
        return photos

    @field_validator("chosen")
    @classmethod
    def _known_list(cls, chosen: str | None) -> str | None:
        if chosen is not None and chosen not in CHOSEN:
            raise ValueError(f"{chosen!r} is not one of {', '.join(CHOSEN)}")
        return chosen

    @model_validator(mode="after")
    def _one_source(self, info: ValidationInfo) -> ImageSet:
        if sum(x is not None for x in (self.photos, self.pool, self.dataset)) != 1:
            raise ValueError(
                "give exactly one of `photos` (names or files), `pool` (a folder) and `dataset` (a train split)"
            )
        if self.photos is not None:
            if not self.photos:
                raise ValueError("`photos` is empty")
            if self.n is not None and self.n != len(self.photos):
                raise ValueError(f"n = {self.n} but {len(self.photos)} photos are listed")
            return self
        if self.n is None:
            raise ValueError(f"a {'pool' if self.pool else 'dataset'} needs `n`, the number of images to draw")
        if self.chosen is not None:
            return self._check_chosen()
        if self.dataset is not None:
            size = TRAIN_SIZES[self.dataset]
            if self.n > size:
                raise ValueError(f"n = {self.n} but the {self.dataset} train split holds {size} images")
            return self
        folder = _base_dir(info) / self.pool  # type: ignore[operator]
        if not folder.is_dir():
            raise ValueError(f"pool {self.pool!r}: no folder at {folder}")
        available = len(pool_files(folder))
        if self.n > available:
            raise ValueError(f"n = {self.n} but pool {self.pool!r} holds {available} images")
        return self

    def _check_chosen(self) -> ImageSet:
        chosen = CHOSEN[self.chosen]  # type: ignore[index]
        if self.dataset != CHOSEN_DATASET:
            raise ValueError(f"`chosen: {self.chosen}` names {CHOSEN_DATASET} train images: give "
                             f"`dataset: {CHOSEN_DATASET}`")
        if self.n != len(chosen):
            raise ValueError(f"n = {self.n} but `chosen: {self.chosen}` lists {len(chosen)} images")
        if self.draw_seed:
            raise ValueError("`chosen` names its images: a draw seed has nothing to draw")
        return self

    def files(self, base_dir: Path) -> list[Path]:
        """The image files: the photos, or the pool's N drawn (seeded); none for a dataset draw,
        which is made on the worker."""
        if self.photos is not None:
            return [resolve_source(ref, base_dir) for ref in self.photos]
        if self.pool is not None:
            return draw(pool_files(base_dir / self.pool), self.size, self.draw_seed)
        return []

    @property
    def size(self) -> int:
        """N."""
        return len(self.photos) if self.photos is not None else self.n  # type: ignore[return-value]

    @property
    def label(self) -> str:
        """`N1 astronaut`, `N10 pool:imgs`, `N1000 imagenet`, `N10 imagenet asano2020`: how
        reports and run names show this value (a draw seed other than 0 is appended:
        `N10 imagenet d3`)."""
        if self.photos:
            return f"N{self.size} " + "+".join(Path(p).stem for p in self.photos)
        what = f"pool:{self.pool}" if self.pool else self.dataset
        seed = f" d{self.draw_seed}" if self.draw_seed else ""
        chosen = f" {self.chosen}" if self.chosen else ""
        return f"N{self.n} {what}{chosen}{seed}"


def _named(items: Any) -> Any:
    """`[random, {name: rotnet, ...}]`: a bare string is an item with only its name."""
    return [{"name": m} if isinstance(m, str) else m for m in items] if isinstance(items, list) else items


def _unique(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v in seen:
            raise ValueError(f"{_show(v)} is listed twice")
        seen.append(v)
    return values


def _show(value: Any) -> str:
    return repr(getattr(value, "name", getattr(value, "preset", value)))


class SeedRange(Frozen):
    """Seeds until decided (`seed: {min: 3, max: 10}`, in a file with findings): every row
    runs seeds 0..min-1, then each round adds the next seed to the rows an undecided finding
    compares, up to max seeds (orchestrator/rounds.py)."""

    min: int = Field(ge=2, description="seeds every row runs first (a paired test needs 2)")
    max: int = Field(description="the most seeds a row gets")

    @model_validator(mode="after")
    def _ordered(self) -> SeedRange:
        if self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        return self


class Grid(Frozen):
    """The axes. Their product, minus the exclusion rules, is the set of cells."""

    method: list[MethodConfig] = Field(min_length=1)
    images: list[ImageSet] = Field(min_length=1)
    augmentation: list[AugmentConfig] = Field(min_length=1)
    evaluation: list[EVALUATIONS.field] = Field(  # type: ignore[name-defined]
        default_factory=lambda: [next(iter(EVALUATIONS)).settings()], min_length=1
    )
    layer: list[Layer] = Field(list(LAYERS), min_length=1, description="the layers linear probes read")
    probe_dataset: list[LabelledDataset] = Field(min_length=1)
    seed: Annotated[
        Annotated[list[int], Tag("list")] | Annotated[SeedRange, Tag("range")],
        Discriminator(lambda v: "range" if isinstance(v, dict | SeedRange) else "list"),
    ] = Field([0], description="the seeds, or {min, max}: seeds added until the findings are decided")

    @field_validator("method", "evaluation", mode="before")
    @classmethod
    def _shorthand(cls, items: Any) -> Any:
        return _named(items)

    @field_validator("seed")
    @classmethod
    def _seeds(cls, seeds: list[int] | SeedRange) -> list[int] | SeedRange:
        if isinstance(seeds, SeedRange):
            return seeds
        if not seeds:
            raise ValueError("list at least 1 seed")
        if any(s < 0 for s in seeds):
            raise ValueError("seeds must be >= 0")
        return _unique(seeds)

    @field_validator("method", "images", "augmentation", "layer", "probe_dataset")
    @classmethod
    def _no_duplicates(cls, values: list[Any]) -> list[Any]:
        return _unique(values)

    @property
    def seeds(self) -> list[int]:
        """Every seed a row may run, in the order rows get them (a range's: 0..max-1)."""
        return list(range(self.seed.max)) if isinstance(self.seed, SeedRange) else self.seed

    @field_validator("evaluation")
    @classmethod
    def _one_of_each(cls, evaluations: list[Any]) -> list[Any]:
        names = [e.name for e in evaluations]
        if len(set(names)) < len(names):
            raise ValueError("an evaluation is listed twice (list all values of k in one `frozen`)")
        return evaluations

    @model_validator(mode="after")
    def _pixels_only_where_read(self) -> Grid:
        unread = [e.name for e in self.evaluation if not EVALUATIONS[e.name].reads_pixels]
        if unread and any(getattr(m, "pixels", False) for m in self.method):
            raise ValueError(
                f"method pixels (the raw-pixel control) has no layers for {', '.join(unread)}: "
                "list it in a file whose evaluations are linear probes"
            )
        return self


class Bound(Frozen):
    """A numeric condition for an exclusion rule: `{gt: 1}`."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def holds(self, x: float) -> bool:
        return all(
            bound is None or test(x, bound)
            for bound, test in (
                (self.gt, float.__gt__),
                (self.ge, float.__ge__),
                (self.lt, float.__lt__),
                (self.le, float.__le__),
            )
        )


class Exclude(Frozen):
    """Cells matching every given field are dropped: `{method: bigan, n: {gt: 1}}`. Besides the
    shared axes, a rule may name any registered evaluation kind's coordinates (`layer`,
    `frozen`, `content`, `style`, a plugin kind's), each checked against the type its kind
    declares."""

    model_config = ConfigDict(extra="allow")  # the kinds' coordinates, checked by `_coordinates`

    method: str | list[str] | None = None
    n: int | Bound | None = None
    augmentation: str | list[str] | None = None
    evaluation: str | list[str] | None = None
    probe_dataset: str | list[str] | None = None
    seed: int | list[int] | None = None

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """The keys a rule may give (the loader lists them for an unknown key)."""
        return [*cls.model_fields, *coordinates()]

    @field_validator("evaluation")
    @classmethod
    def _known_evaluation(cls, names: str | list[str] | None) -> str | list[str] | None:
        for name in [names] if isinstance(names, str) else names or []:
            if name not in EVALUATIONS:
                raise ValueError(f"{name!r} is not one of {', '.join(EVALUATIONS.names())}")
        return names

    @model_validator(mode="after")
    def _coordinates(self) -> Exclude:
        """Each key beyond the fields is a kind's coordinate, its value (or list of values) of
        the coordinate's type; the errors are located at the key, as a field's are."""
        declared, extra, errors = coordinates(), self.__pydantic_extra__ or {}, []
        for name, value in extra.items():
            if name not in declared:
                errors.append(InitErrorDetails(type="extra_forbidden", loc=(name,), input=value))
                continue
            many = isinstance(value, list)  # one value or a list of them: errors of the form given
            try:
                extra[name] = TypeAdapter(list[declared[name]] if many else declared[name]).validate_python(
                    value, strict=True)
            except ValidationError as e:
                errors += [InitErrorDetails(type=PydanticCustomError(err["type"], err["msg"], err.get("ctx")),
                                            loc=(name, *err["loc"]), input=err["input"])
                           for err in e.errors(include_url=False)]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def matches(self, coordinates: dict[str, Any]) -> bool:
        """Whether a cell at `coordinates` is dropped (a coordinate the cell lacks matches no value)."""
        for field, want in self:
            if want is None:
                continue
            have = coordinates.get(field)
            if isinstance(want, Bound):
                if have is None or not want.holds(float(have)):
                    return False
            elif have not in (want if isinstance(want, list) else [want]):
                return False
        return True


class Resources(Frozen):
    """What one job asks Ray for: the same file runs on a laptop (gpus: 0) or a GPU cluster."""

    cpus: float = Field(1, gt=0)
    gpus: float = Field(0, ge=0)


class StageResources(Frozen):
    """What each stage's jobs ask for: pre-training, and evaluation (linear probes,
    finetuning, style transfer, any registered kind)."""

    pretrain: Resources = Resources()
    evaluation: Resources = Resources()

    @model_validator(mode="before")
    @classmethod
    def _probe_is_evaluation(cls, data: Any) -> Any:
        return deprecated_name(data, "probe", "evaluation", "resources")


class Spec(Frozen):
    """A sweep: its name, the grid, the shared settings, where it runs and is recorded."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    grid: Grid
    exclude: list[Exclude] = []
    network: NetworkConfig = NetworkConfig()
    compute: ComputeConfig = ComputeConfig()
    probe: ProbeConfig = ProbeConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    style: StyleConfig = StyleConfig()
    resources: StageResources = StageResources()
    retries: int = Field(2, ge=0, description="times Ray retries a failed job")
    checkpoint_every: int = Field(500, ge=0, description="pretrain steps between resume checkpoints; 0: none")
    # Healthy pretext losses here stay well below 100 (cross-entropy starts near ln k: 1.4 for
    # RotNet, 9.2 for DeepCluster's k = 10000; BiGAN's summed BCE in the tens): 1000 is a
    # blow-up, caught before it turns into NaN a few steps later.
    divergence_threshold: float | None = Field(
        1000.0, gt=0, description="a pretext loss above it fails the pretrain job as `diverged`; "
        "null: no check"
    )
    max_gpu_hours: float | None = Field(
        None, gt=0, description="`monosweep run` refuses to start when the estimate of what is left to run "
        "is above this many GPU-hours (--max-gpu-hours wins); null: no limit"
    )
    faults: list[Fault] = Field([], description="fault injection for tests and drills (MONOSWEEP_FAULTS wins)")
    # How a job was run, not what it computes: in no key (as resources and retries are not).
    system_metrics: bool = Field(
        True, description="pretrain and cell runs record their machine's CPU, memory, disk, network "
        "and GPU use (MLflow's system/ metrics, every 10 s); false: none"
    )
    tracking_uri: str = Field(
        "sqlite:///mlflow.db", description="MLflow store; MLFLOW_TRACKING_URI overrides it"
    )
    ray_address: str | None = Field(
        None, description="Ray cluster address; None starts a local Ray; RAY_ADDRESS overrides it"
    )
    storage: str = Field(".monosweep", description="Ray Tune's trial storage (a shared path on a cluster)")
    data_roots: dict[LabelledDataset, str] = {}
    findings: list[Finding] = Field([], description="claims the sweep decides (orchestrator/findings.py)")
    alpha: float = Field(
        0.05, gt=0, lt=0.5, description="the findings' family-wise error rate: Holm over every (finding, "
        "column) of the file, and Bonferroni over the looks of seeds until decided"
    )

    @field_validator("network")
    @classmethod
    def _pixels_by_method(cls, network: NetworkConfig) -> NetworkConfig:
        if network.pixels:
            raise ValueError("pixels: the raw-pixel control is a method (`grid.method: [pixels]`), not the network")
        return network

    @field_validator("tracking_uri")
    @classmethod
    def _store_mlflow_serves(cls, uri: str) -> str:
        scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
        if scheme and scheme not in TRACKING_SCHEMES:
            raise ValueError(f"{scheme}:// is not a store MLflow serves; use a path or one of "
                             + ", ".join(f"{s}://" for s in TRACKING_SCHEMES))
        # The resolved spec is recorded on the sweep run: a password here would be recorded too.
        if "@" in uri.split("://", 1)[-1].split("/", 1)[0]:
            raise ValueError("credentials do not belong in the experiment file; set "
                             "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment")
        return uri

    @field_validator("style")
    @classmethod
    def _style_images_exist(cls, style: StyleConfig, info: ValidationInfo) -> StyleConfig:
        for ref in style.contents:
            resolve_photo(ref, _base_dir(info))
        for ref in style.styles:
            resolve_photo(ref, _base_dir(info), STYLES_DIR)
        return style

    @field_validator("findings")
    @classmethod
    def _findings_named_once(cls, findings: list[Finding]) -> list[Finding]:
        _unique([f.name for f in findings])
        return findings

    def data_root(self, dataset: str) -> str:
        return self.data_roots.get(dataset, DEFAULT_DATA_ROOTS[dataset])  # type: ignore[call-overload]
