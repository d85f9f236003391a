"""The worker entry points: pretrain(job, ...) and probe(job, ...).

The Ray trainables call these, and so do the tests. They need torch and a Recorder, nothing
else: no ray, no mlflow, so the same call runs on any machine with a GPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from contract.jobs import PretrainJob, ProbeJob
from contract.recorder import Recorder
from workers import bn_statistics, pictures
from workers.compute import Compute
from workers.data.mono import MonoDataset, load_images
from workers.data.probe_sets import (
    LabelledSamples,
    capped,
    chosen_sources,
    content_hash,
    decoded,
    draw_sources,
    eval_views,
    load_split,
    subset_of,
)
from workers.data.real import RealImages
from workers.methods.base import implementation
from workers.models.alexnet import build_trunk, load_trunk
from workers.probes import LinearProbes, ProbeTrainer, extract, feature_shapes, pool_target, single_view
from workers.training import Loop, device, fit

EXTRACTION_SHARE = 0.5  # of a probe job with cached features: see `probe`


def pretrain(job: PretrainJob, recorder: Recorder, workdir: Path, resume: Path | None = None) -> Path:
    """Pre-train the trunk with the job's method; returns the checkpoint.

    Every `job.checkpoint_every` steps the full training state goes to the recorder as
    `resume.pt`; given such a file as `resume`, training continues from its step, and ends
    with the same weights as an uninterrupted run. A method's `snapshots` go to the recorder
    as they are reached. A method that does not train may still read data: random's
    `bn_statistics` are re-estimated (`bn_inputs`).

    Raises:
        NonFiniteLoss: the pretext loss became NaN or infinite.
        DivergedLoss: the pretext loss rose above `job.divergence_threshold`.
    """
    torch.manual_seed(job.seed)
    dev = device()
    trunk = build_trunk(job.network)
    cls = implementation(job.method)
    step = 0
    if cls.trains:
        dataset = training_set(job, recorder)
        method = cls(job.method, trunk, job.network.input_size, classes=getattr(dataset, "classes", None)).to(dev)
        if resume is None:
            name = "train_samples.png" if job.labels else "mono_samples.png"
            recorder.artifact(pictures.samples(dataset, workdir / name))
        cfg = job.method
        loop = Loop(
            job.seed, cfg.epochs, cfg.batch_size, cfg.lr, cfg.schedule, job.checkpoint_every,
            job.divergence_threshold, max_steps=job.max_steps, compute=job.compute,
            snapshots=getattr(cfg, "snapshots", ()),
        )
        step = fit(loop, method, dataset, recorder, dev, workdir, resume)
        if outcome := method.outcome():
            recorder.metrics(outcome, step)
    elif getattr(job.method, "bn_statistics", "init") != "init":
        seen = bn_statistics.reestimate(trunk.to(dev), bn_inputs(job, recorder, dev))
        recorder.params({"bn_samples": seen})
    if not job.network.pixels:  # the raw-pixel control has no filters
        recorder.artifact(pictures.conv1_filters(trunk, workdir / "conv1_filters.png"))
    path = workdir / "checkpoint.pt"
    torch.save(
        {"trunk": trunk.state_dict(), "job": job.model_dump(mode="json"), "step": step},
        path,
    )
    recorder.artifact(path)
    return path


def training_set(job: PretrainJob, recorder: Recorder) -> MonoDataset | RealImages | LabelledSamples:
    """The labelled train split (supervised); a whole train split's real images, through the
    method's own loader alone (N = all: DatasetImages.real_images); or the mono dataset of the
    job's source images. Source images are files checked against their hashes, a dataset's
    images a list names, or a seeded draw from its train split; a dataset's images have their
    content hash recorded as `images_sha256`. The loader is the method's (None: none), unless
    the augmentation switches it off."""
    size = job.network.input_size
    if job.labels is not None:
        split = load_split(job.labels.dataset, job.labels.data_root, train=True)
        augment = getattr(job.method, "train_augment", True)
        return LabelledSamples(subset_of(split, job.method.train_samples), size, job.seed, augment=augment)
    loader = getattr(job.method, "loader", None)
    if job.drawn is not None:
        drawn = job.drawn
        if drawn.chosen is not None:
            images = chosen_sources(drawn.dataset, drawn.data_root, drawn.chosen)
        else:
            images = draw_sources(load_split(drawn.dataset, drawn.data_root, train=True), drawn.n, drawn.draw_seed)
        recorder.params({"images_sha256": content_hash(images)})
        if drawn.real_images:
            return RealImages(images, size, job.method.samples, job.seed, loader)
    else:
        images = load_images(job.images)
    if not job.augmentation.loader:  # type: ignore[union-attr]
        loader = None
    return MonoDataset(images, job.augmentation, size, job.method.samples, job.seed, loader)


def bn_inputs(job: PretrainJob, recorder: Recorder, dev: torch.device) -> Iterator[torch.Tensor]:
    """What random's BN statistics are re-estimated on, `job.method.samples` of it in batches:
    the probe dataset's train images (its stratified subset of that size, the probes' own when
    theirs is as large), whole images at the input size as the cached probes see them; or the
    row's mono samples through the method's loader (epoch 0's views)."""
    size, samples = job.network.input_size, job.method.samples  # type: ignore[union-attr]
    if job.labels is not None:
        split = subset_of(load_split(job.labels.dataset, job.labels.data_root, train=True), samples)
        for indices in bn_statistics.batches(len(split.labels)):
            yield eval_views(decoded(split.images[torch.from_numpy(indices)]), size, "resize")[0].to(dev)
        return
    view = training_set(job, recorder).at_epoch(0)
    for indices in bn_statistics.batches(samples):
        yield view.batch(indices, dev)  # type: ignore[attr-defined]


def probe(job: ProbeJob, checkpoint: Path, recorder: Recorder) -> dict[str, dict[str, float]]:
    """Train linear probes on all of the job's layers at once; returns final top-1/top-5 per layer.
    Capped (`job.max_steps` K), one epoch of K batches, scored on one test batch: the trunk
    sees only what those steps need."""
    torch.manual_seed(job.seed)
    dev = device()
    cfg, size = job.probe, job.network.input_size
    layers = tuple(c.layer for c in job.cells)
    trunk = load_trunk(job.network, checkpoint).to(dev).eval()
    compute = Compute(job.compute, dev)
    steps, epochs = job.max_steps, cfg.epochs if job.max_steps is None else 1
    train = load_split(job.dataset, job.data_root, train=True)
    train = subset_of(train, capped(cfg.train_samples, steps, cfg.batch_size))
    test = load_split(job.dataset, job.data_root, train=False)
    test = subset_of(test, capped(cfg.test_samples, None if steps is None else 1, cfg.batch_size))
    target = pool_target(job.network, layers, cfg.features)
    shapes = feature_shapes(trunk, size, layers, target)
    compute.prepare(trunk, trunk)  # after the dry run: a compiled trunk compiles for real batches
    # The steps the trunk had trained: a snapshot's tells which point of its run a cell read.
    trained = torch.load(checkpoint, map_location="cpu", weights_only=True)["step"]
    sizes = {"train_size": len(train.labels), "test_size": len(test.labels), "trunk_step": trained}
    for layer in layers:
        grid = "x".join(map(str, shapes[layer]))  # C x h x w: what the head reads
        recorder.params({"feature_dim": math.prod(shapes[layer]), "pooled_grid": grid, **sizes}, layer)
    probes = LinearProbes(shapes, train.classes, affine=cfg.bn_affine).to(dev)
    trainer = ProbeTrainer(trunk, probes, cfg, size, job.seed, compute, target)
    train_cache = test_cache = None
    # `progress` (the share of the job done) lets a driver show how far the job is. With cached
    # features the trunk's passes over both splits count as the first EXTRACTION_SHARE of it,
    # the heads' epochs as the rest (at the shipped CPU shapes the two cost FLOPs of the same
    # order; a driver's estimate corrects itself as the epochs report).
    first = EXTRACTION_SHARE if cfg.cache_features else 0.0
    if cfg.cache_features:
        tick = time.perf_counter()
        images = len(train.labels) + len(test.labels)

        def through(before: int) -> Callable[[int], None]:
            return lambda n: recorder.metrics({"progress": first * (before + n) / images}, 0)

        train_cache = extract(trunk, train, size, layers, 512, compute, single_view(cfg.test_crops), through(0), target)
        test_cache = extract(
            trunk, test, size, layers, 512, compute, cfg.test_crops, through(len(train.labels)), target
        )
        for layer in layers:
            recorder.metrics({"feature_seconds": time.perf_counter() - tick}, 0, layer)
    scores: dict[str, dict[str, float]] = {}
    for epoch in range(epochs):
        tick = time.perf_counter()
        fit = trainer.train_epoch(epoch, train, train_cache)
        rate = len(train.labels) / (time.perf_counter() - tick)  # heads' steps (and trunk's, uncached)
        last = epoch == epochs - 1
        # Scoring a cached split is cheap: every epoch. Otherwise only at the end.
        scores = trainer.evaluate(test, test_cache) if (cfg.cache_features or last) else {}
        done = {"progress": first + (1 - first) * (epoch + 1) / epochs, "samples_per_s": rate}
        for layer in layers:
            recorder.metrics({**fit[layer], **scores.get(layer, {}), **done}, epoch + 1, layer)
    return scores
