"""Pure expansion: spec -> cells -> pretrain jobs and evaluation jobs, each with its content key.

A cell is one point of the grid down to its evaluation: a linear probe of one layer on one
probe dataset, a finetuning with k frozen layers on one dataset, or one (content, style) pair
of style transfer. Cells that share everything the pre-training depends on share one pretrain
job. Evaluation jobs group cells that read one trunk together: the layers of one (pretrain
job, probe dataset) share one probe job, which probes them all in one pass of the frozen
trunk; the pairs of one trunk share one style job; each finetuning is a job of its own.
A method that uses no images (random, supervised) ignores the images and augmentation axes:
its cells collapse to one per (seed, layer, probe dataset), so it is trained and probed once.
A whole train split (`n: all`) is trained on without the generator, so its cells ignore the
augmentation axis in the same way (contract.jobs.DatasetImages.real_images).
A method that learns from labels (supervised) gets one pretrain job per probe dataset: the
cells of dataset D probe the trunk trained on D's train split (as does random with its BN
statistics from the probe's train images: `uses_train_split`). A method with `snapshots` gives
its evaluations a trunk per snapshot besides its own (orchestrator/snapshots.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, Field

from contract.augmentation import AugmentConfig
from contract.compute import ComputeConfig
from contract.images import sha256_file
from contract.jobs import DatasetImages, EvaluationJob, ImageFile, LabelledData, PretrainJob
from contract.methods import stream_seed
from contract.network import NetworkConfig
from contract.paper_images import CHOSEN, pinned_sha256
from orchestrator.evaluations import EVALUATIONS
from orchestrator.keys import content_key, settings_material
from orchestrator.snapshots import CHECKPOINT, Trunk, budget_suffix, trunks
from orchestrator.spec import ImageSet, Spec


class Cell(BaseModel, frozen=True, extra="allow"):
    """One grid point, as status and report show it: the shared axes as fields, its kind's own
    coordinates (`EvaluationKind.coordinates`: a linear probe's layer, finetuning's k, style
    transfer's pair, a plugin kind's) as extra fields. Sweeps recorded before kinds declared
    their coordinates kept layer, frozen, content and style on every cell (None where they did
    not apply): their cells.json loads, as extra fields too."""

    key: str
    label: str
    pretrain_key: str
    # The evaluation job that runs it (the cells.json of sweeps recorded before evaluations
    # became an axis calls it probe_job_key).
    job_key: str = Field(validation_alias=AliasChoices("job_key", "probe_job_key"))
    method: str
    n: int | None
    images: str | None
    augmentation: str | None
    # Sweeps recorded before evaluations became an axis probed linearly: the first kind.
    evaluation: str = Field(default_factory=lambda: EVALUATIONS.names()[0])
    probe_dataset: str | None  # None: style transfer through a trunk that learned without labels
    seed: int

    def coordinates(self) -> dict[str, object]:
        """The cell's place in the grid, as recorded on its run."""
        return self.model_dump(exclude={"key", "label", "pretrain_key", "job_key"})


@dataclass
class Expansion:
    """The expanded grid: cells in grid order, jobs by key."""

    spec: Spec
    cells: list[Cell] = field(default_factory=list)
    pretrain_jobs: dict[str, PretrainJob] = field(default_factory=dict)
    evaluation_jobs: dict[str, EvaluationJob] = field(default_factory=dict)  # every evaluation job


@dataclass(frozen=True)
class Sources:
    """An image set as a job needs it: its label, and its files (hashed) or its draw."""

    label: str
    files: tuple[ImageFile, ...] = ()
    drawn: DatasetImages | None = None

    def material(self) -> Any:
        """Content, not location: the set of file hashes (order-free), or what defines a
        draw from a dataset's train split (the worker records the drawn images' hash), or the
        names of the split's images a list chose."""
        d = self.drawn
        if d is not None and d.chosen is not None:
            return {"dataset": d.dataset, "split": "train", "chosen": sorted(d.chosen)}
        if d is not None:
            return {"dataset": d.dataset, "split": "train", "n": d.n, "draw_seed": d.draw_seed}
        return sorted(f.sha256 for f in self.files)

    @property
    def real_images(self) -> bool:
        """Trained on without the generator (the N = all rule, DatasetImages.real_images)."""
        return self.drawn is not None and self.drawn.real_images


def sources(images: ImageSet, spec: Spec, base_dir: Path) -> Sources:
    """The files of an image set, each with the hash of its bytes (a paper image: its pinned
    hash, the file not needed to plan); or its images of a dataset, left to the worker (the
    driver may not see the data)."""
    if images.dataset is not None:
        root = str((base_dir / spec.data_root(images.dataset)).resolve())
        drawn = DatasetImages(
            dataset=images.dataset, data_root=root, n=images.size, draw_seed=images.draw_seed,
            chosen=CHOSEN[images.chosen] if images.chosen else None,
        )
        return Sources(images.label, drawn=drawn)
    refs = images.photos or [None] * images.size  # a pool's files have no names
    files = tuple(
        ImageFile(path=str(p), sha256=(ref and pinned_sha256(ref)) or sha256_file(p))
        for ref, p in zip(refs, images.files(base_dir), strict=True)
    )
    return Sources(images.label, files=files)


FP32_EAGER = ComputeConfig()


def job_network(network: NetworkConfig, method: Any) -> NetworkConfig:
    """The network a method's jobs train and probe: DeepCluster's `sobel` puts the Sobel
    filter in front, the raw-pixel control (`pixels`) replaces the network by its input (the
    method's settings, so one spec mixes them with methods without)."""
    changes = {name: True for name in ("sobel", "pixels") if getattr(method, name, False)}
    return network.model_copy(update=changes) if changes else network


def pretrain_job(
    method: Any,
    method_label: str,
    images: Sources | None,
    augment: AugmentConfig | None,
    network: NetworkConfig,
    seed: int,
    checkpoint_every: int = 0,
    labels: LabelledData | None = None,
    divergence_threshold: float | None = None,
    compute: ComputeConfig = FP32_EAGER,
) -> PretrainJob:
    """A pretrain job; `images` and `augment` are None for methods that use no images,
    `labels` the labelled train split of a method that learns from labels. `compute` is in its
    key where it differs from fp32 eager, and so in the key of every cell of its trunk."""
    network = job_network(network, method)
    material = {
        "method": settings_material(method),
        "network": settings_material(network),
        "seed": seed,
        "images": images.material() if images else [],
        "augmentation": settings_material(augment) if augment else None,
        "labels": labels.dataset if labels else None,  # what it learns from, not where it lies
    }
    if computed := settings_material(compute):  # fp32 eager: absent, as in keys made before it
        material["compute"] = computed
    coordinates = {
        "method": method_label,
        "images": images.label if images else None,
        "augmentation": augment.label() if augment else None,
        "seed": seed,
    }
    learns_from = labels.dataset if labels else None
    parts = (method_label, coordinates["images"], coordinates["augmentation"], learns_from)
    return PretrainJob(
        key=content_key("pretrain", material),
        label=" ".join([v for v in parts if v] + [f"s{seed}"]),
        method=method,
        network=network,
        seed=stream_seed(seed, method.seed_stream),  # the trunk's and its evaluations' randomness
        images=images.files if images else (),
        drawn=images.drawn if images else None,
        augmentation=augment,
        labels=labels,
        compute=compute,
        coordinates=coordinates,
        checkpoint_every=checkpoint_every,
        divergence_threshold=divergence_threshold,
    )


def _method_labels(methods: list[Any]) -> list[str]:
    """`rotnet`, or `rotnet#1`, `rotnet#2` when one method appears with several settings
    (`random` and `random(bn=pretext)` are two labels already); `rotnet@196608` for a run read
    at snapshots too."""
    names = [m.label for m in methods]
    return [
        (n if names.count(n) == 1 else f"{n}#{names[:i].count(n) + 1}") + budget_suffix(m)
        for i, (n, m) in enumerate(zip(names, methods, strict=True))
    ]


def expand(spec: Spec, base_dir: Path = Path(".")) -> Expansion:
    """Cells in grid order (method, images, augmentation, seed, evaluation, probe dataset,
    layer / k / pair), with exclusions applied and duplicates (methods that ignore an axis)
    merged. A method that learns from labels (supervised) is trained once per probe dataset,
    on its train split."""
    sweep = Expansion(spec)
    g = spec.grid
    cells_by_job: dict[str, list[Cell]] = {}
    trunk_of_job: dict[str, Trunk] = {}
    seen: set[str] = set()
    resolved = {images: sources(images, spec, base_dir) for images in g.images}  # hash each set once
    contexts = {e.name: EVALUATIONS[e.name].context(spec, base_dir) for e in g.evaluation}
    for (method, label), images, augmentation, seed in itertools.product(
        zip(g.method, _method_labels(g.method), strict=True), g.images, g.augmentation, g.seeds
    ):
        uses_images, per_dataset = method.uses_images, method.uses_train_split
        # The generator's augmentation applies below the whole split; a whole split (N = all)
        # is trained on as it is, so, like a method without images, it ignores the axis.
        augments = uses_images and not resolved[images].real_images
        jobs: dict[str | None, PretrainJob] = {}  # by the labelled dataset it learns from
        for evaluation in g.evaluation:
            kind = EVALUATIONS[evaluation.name]
            for point in kind.points(evaluation, spec, per_dataset):
                _check_point(kind, point)
                learns_from = point["probe_dataset"] if per_dataset else None
                if learns_from not in jobs:
                    labels = None
                    if learns_from is not None:
                        root = str((base_dir / spec.data_root(learns_from)).resolve())
                        labels = LabelledData(dataset=learns_from, data_root=root)  # type: ignore[arg-type]
                    jobs[learns_from] = pretrain_job(
                        method,
                        label,
                        resolved[images] if uses_images else None,
                        augmentation if augments else None,
                        spec.network,
                        seed,
                        spec.checkpoint_every,
                        labels,
                        spec.divergence_threshold,
                        spec.compute,
                    )
                coordinates = {
                    "method": method.name,
                    "n": images.size if uses_images else None,
                    "augmentation": augmentation.label() if augments else None,
                    "evaluation": evaluation.name,
                    "seed": seed,
                    **point,
                }
                if any(rule.matches(coordinates) for rule in spec.exclude):
                    continue
                for trunk in trunks(jobs[learns_from]):
                    key, job_key, cell_label = kind.identity(
                        evaluation, point, trunk.job, spec, contexts[evaluation.name]
                    )
                    if key in seen:
                        continue
                    seen.add(key)
                    cell = Cell(
                        key=key,
                        label=cell_label,
                        pretrain_key=trunk.run_key,
                        job_key=job_key,
                        images=images.label if uses_images else None,
                        **{**coordinates, "method": trunk.job.coordinates["method"]},
                    )
                    sweep.cells.append(cell)
                    sweep.pretrain_jobs.setdefault(trunk.run_key, jobs[learns_from])
                    cells_by_job.setdefault(job_key, []).append(cell)
                    trunk_of_job[job_key] = trunk

    items = {e.name: e for e in g.evaluation}
    for job_key, cells in cells_by_job.items():
        name, trunk = cells[0].evaluation, trunk_of_job[job_key]
        job = EVALUATIONS[name].job(items[name], spec, base_dir, job_key, trunk.job, cells, contexts[name])
        if job.evaluation != name:  # the worker runs the kind the job names
            raise TypeError(f"evaluation {name!r} made a job for evaluation {job.evaluation!r}")
        # Every kind's job computes as its trunk did: set here, once, not by each kind. A
        # snapshot's job waits for and reads from the run that holds it.
        update: dict[str, Any] = {"compute": trunk.job.compute}
        if trunk.checkpoint != CHECKPOINT:
            update |= {"pretrain_key": trunk.run_key, "checkpoint": trunk.checkpoint}
        sweep.evaluation_jobs[job_key] = job.model_copy(update=update)
    return sweep


def _check_point(kind: Any, point: dict[str, Any]) -> None:
    """A kind's cell has a probe dataset and exactly the coordinates the kind declares.

    Raises:
        TypeError: naming the kind and the coordinates it gave and declared (a bug of the kind).
    """
    if set(point) != {"probe_dataset", *kind.coordinates}:
        raise TypeError(f"evaluation {kind.name!r} made a cell with coordinates {sorted(point)}; it declares "
                         f"{sorted(kind.coordinates)} (and every cell has a probe_dataset)")
