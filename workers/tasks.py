"""The worker entry points: pretrain(job, ...) and probe(job, ...).

The Ray trainables call these, and so do the tests. They need torch and a Recorder, nothing
else: no ray, no mlflow, so the same call runs on any machine with a GPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from contract.jobs import EvaluationJob, PretrainJob, ProbeJob
from workers import pictures
from workers.data.mono import MonoDataset, load_images
from workers.data.probe_sets import (
    LabelledSamples,
    ProbeSplit,
    content_hash,
    draw_sources,
    load_split,
    stratified_subset,
    subset,
)
from workers.methods.base import DivergedLoss, Method, NonFiniteLoss, implementation
from workers.models.alexnet import AlexNet, build_trunk
from workers.probes import LinearProbes, ProbeTrainer, extract, feature_dims, single_view
from workers.recording import Recorder

LOG_EVERY = 20  # steps between pretext-loss points


def device() -> torch.device:
    """The GPU where there is one. cuDNN is kept to deterministic kernels, so a rerun of a key
    repeats its numbers on the same hardware."""
    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        return torch.device("cuda")
    return torch.device("cpu")


def cosine_lr(step: int, total: int, base: float) -> float:
    """Cosine decay from `base` to 0 over `total` steps."""
    return base * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def cosine_factor(step: int, steps_per_epoch: int, total: int) -> float:
    """Pre-training's schedule: cosine decay over all steps."""
    return cosine_lr(step, total, 1.0)


@dataclass(frozen=True)
class Loop:
    """What the training loop needs of a job besides its method and data."""

    seed: int
    epochs: int
    batch_size: int
    lr: float  # the base rate, for the log
    # (step, steps per epoch, total steps) -> the factor on each parameter group's base rate
    schedule: Callable[[int, int, int], float]
    checkpoint_every: int = 0  # steps between resume checkpoints; 0: none
    divergence_threshold: float | None = None
    loss_name: str = "pretext_loss"


def pretrain(job: PretrainJob, recorder: Recorder, workdir: Path, resume: Path | None = None) -> Path:
    """Pre-train the trunk with the job's method; returns the checkpoint.

    Every `job.checkpoint_every` steps the full training state goes to the recorder as
    `resume.pt`; given such a file as `resume`, training continues from its step, and ends
    with the same weights as an uninterrupted run.

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
            job.seed, cfg.epochs, cfg.batch_size, cfg.lr, cosine_factor, job.checkpoint_every, job.divergence_threshold
        )
        step = fit(loop, method, dataset, recorder, dev, workdir, resume)
    recorder.artifact(pictures.conv1_filters(trunk, workdir / "conv1_filters.png"))
    path = workdir / "checkpoint.pt"
    torch.save(
        {"trunk": trunk.state_dict(), "job": job.model_dump(mode="json"), "step": step},
        path,
    )
    recorder.artifact(path)
    return path


def training_set(job: PretrainJob, recorder: Recorder) -> MonoDataset | LabelledSamples:
    """The labelled train split (supervised), or the mono dataset of the job's source images:
    files checked against their hashes, or a seeded draw from a dataset's train split, whose
    content hash is recorded as `images_sha256`."""
    size = job.network.input_size
    if job.labels is not None:
        split = load_split(job.labels.dataset, job.labels.data_root, train=True)
        return LabelledSamples(subset_of(split, job.method.train_samples), size, job.seed)
    if job.drawn is not None:
        split = load_split(job.drawn.dataset, job.drawn.data_root, train=True)
        images = draw_sources(split, job.drawn.n, job.drawn.draw_seed)
        recorder.params({"images_sha256": content_hash(images)})
    else:
        images = load_images(job.images)
    return MonoDataset(images, job.augmentation, size, job.method.samples, job.seed)


def _to(batch: Any, dev: torch.device) -> Any:
    """A collated batch (a tensor, or a tuple of them) on the device."""
    return tuple(b.to(dev) for b in batch) if isinstance(batch, (tuple, list)) else batch.to(dev)


def _rng_state() -> dict[str, Any]:
    """The global torch streams (dropout, BiGAN's noise, DeepCluster's draws), for resuming."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


def fit(
    loop: Loop, method: Method, dataset: Dataset, recorder: Recorder, dev: torch.device, workdir: Path,
    resume: Path | None,
) -> int:
    """Train `method` on `dataset`; returns the number of steps. Every `loop.checkpoint_every`
    steps the full state goes to the recorder as `resume.pt`; given such a file as `resume`,
    training continues from its step and ends with the weights of an uninterrupted run."""
    steps_per_epoch = max(1, len(dataset) // loop.batch_size)  # type: ignore[arg-type]
    total = steps_per_epoch * loop.epochs
    optimizers = method.configure_optimizers()
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]  # the schedule scales each group's own base rate
    step = 0
    if resume is not None:
        state = torch.load(resume, map_location=dev, weights_only=True)
        method.load_state_dict(state["method"])
        for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        _set_rng_state(state["rng"])
        step = state["step"]
        recorder.metrics({"resumed_from_step": step}, step)
    method.train()
    tick, seen = time.perf_counter(), 0
    for epoch in range(step // steps_per_epoch, loop.epochs):
        epoch_data = method.on_epoch_start(epoch, dataset, dev)
        # The order of epoch e depends on (seed, e) only, so a resumed run sees the same batches.
        order = np.random.default_rng([loop.seed, epoch]).permutation(len(epoch_data))  # type: ignore[arg-type]
        for i in range(step - epoch * steps_per_epoch, steps_per_epoch):
            picked = order[i * loop.batch_size : (i + 1) * loop.batch_size]
            batch = default_collate([epoch_data[int(j)] for j in picked])
            factor = loop.schedule(step, steps_per_epoch, total)
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * factor
            loss, extra = method.training_step(_to(batch, dev))
            value = loss.item()  # the step's one device sync, shared by the check and the log
            check_loss(value, step, loop.divergence_threshold, loop.loss_name)
            optimizers[0].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[0].step()
            step += 1
            seen += len(picked)
            if step % LOG_EVERY == 0 or step == total:
                now = time.perf_counter()
                recorder.metrics(
                    {loop.loss_name: value, "lr": loop.lr * factor,
                     "samples_per_s": seen / (now - tick), "epoch": epoch, **extra},
                    step,
                )
                tick, seen = now, 0
            if loop.checkpoint_every and step % loop.checkpoint_every == 0 and step < total:
                path = workdir / "resume.pt"
                torch.save(
                    {"method": method.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
                     "rng": _rng_state(), "step": step},
                    path,
                )
                recorder.artifact(path)
    return step


def check_loss(value: float, step: int, threshold: float | None, name: str = "pretext_loss") -> None:
    """A job fails rather than record garbage.

    Raises:
        NonFiniteLoss: the training loss is NaN or infinite.
        DivergedLoss: it is finite but above `threshold` (None: no such check).
    """
    what = name.replace("_", " ")
    if not math.isfinite(value):
        raise NonFiniteLoss(f"{what} is {value} at step {step}")
    if threshold is not None and value > threshold:
        raise DivergedLoss(
            f"{what} {value:.4g} at step {step} is above divergence_threshold {threshold:g}"
        )


def load_trunk(job: EvaluationJob, checkpoint: Path) -> AlexNet:
    trunk = build_trunk(job.network)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    trunk.load_state_dict(state["trunk"])
    return trunk


def probe(job: ProbeJob, checkpoint: Path, recorder: Recorder) -> dict[str, dict[str, float]]:
    """Train linear probes on all of the job's layers at once; returns final top-1/top-5 per layer."""
    torch.manual_seed(job.seed)
    dev = device()
    cfg, size = job.probe, job.network.input_size
    layers = tuple(c.layer for c in job.cells)
    trunk = load_trunk(job, checkpoint).to(dev).eval()
    train = subset_of(load_split(job.dataset, job.data_root, train=True), cfg.train_samples)
    test = subset_of(load_split(job.dataset, job.data_root, train=False), cfg.test_samples)
    dims = feature_dims(trunk, size, layers)
    for layer in layers:
        recorder.params({"feature_dim": dims[layer], "train_size": len(train.labels), "test_size": len(test.labels)}, layer)
    probes = LinearProbes(dims, train.classes, affine=cfg.bn_affine).to(dev)
    trainer = ProbeTrainer(trunk, probes, cfg, size, job.seed, dev)
    train_cache = test_cache = None
    if cfg.cache_features:
        tick = time.perf_counter()
        train_cache = extract(trunk, train, size, layers, 512, dev, single_view(cfg.test_crops))
        test_cache = extract(trunk, test, size, layers, 512, dev, cfg.test_crops)
        for layer in layers:
            recorder.metrics({"feature_seconds": time.perf_counter() - tick}, 0, layer)
    scores: dict[str, dict[str, float]] = {}
    for epoch in range(cfg.epochs):
        fit = trainer.train_epoch(epoch, train, train_cache)
        last = epoch == cfg.epochs - 1
        # Scoring a cached split is cheap: every epoch. Otherwise only at the end.
        scores = trainer.evaluate(test, test_cache) if (cfg.cache_features or last) else {}
        for layer in layers:
            recorder.metrics({**fit[layer], **scores.get(layer, {})}, epoch + 1, layer)
    return scores


def subset_of(split: ProbeSplit, size: int | None) -> ProbeSplit:
    """A stratified subset of `size` samples (all of them for None)."""
    return subset(split, stratified_subset(split.labels, size))
