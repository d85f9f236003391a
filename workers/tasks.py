"""The worker entry points: pretrain(job, ...) and probe(job, ...).

The Ray trainables call these, and so do the tests. They need torch and a Recorder, nothing
else: no ray, no mlflow, so the same call runs on any machine with a GPU.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from workers.config import ProbeJob, PretrainJob
from workers.data.mono import MonoDataset, load_images
from workers.data.probe_sets import load_split, stratified_subset, ProbeSplit
from workers.methods.base import NonFiniteLoss, registry
from workers.models.alexnet import build_trunk
from workers.probes import LinearProbes, ProbeTrainer, extract, feature_dims
from workers import pictures
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


def pretrain(job: PretrainJob, recorder: Recorder, workdir: Path, resume: Path | None = None) -> Path:
    """Pre-train the trunk with the job's method on its mono dataset; returns the checkpoint.

    Every `job.checkpoint_every` steps the full training state goes to the recorder as
    `resume.pt`; given such a file as `resume`, training continues from its step, and ends
    with the same weights as an uninterrupted run.

    Raises:
        NonFiniteLoss: the pretext loss became NaN or infinite.
    """
    torch.manual_seed(job.seed)
    dev = device()
    trunk = build_trunk(job.network)
    method = registry()[job.method.name](job.method, trunk, job.network.input_size).to(dev)
    step = 0
    if method.trains:
        dataset = MonoDataset(load_images(job.images), job.augmentation, job.network.input_size, job.method.samples, job.seed)
        if resume is None:
            recorder.artifact(pictures.mono_samples(dataset, workdir / "mono_samples.png"))
        step = _train(job, method, dataset, recorder, dev, workdir, resume)
    recorder.artifact(pictures.conv1_filters(trunk, workdir / "conv1_filters.png"))
    path = workdir / "checkpoint.pt"
    torch.save(
        {"trunk": trunk.state_dict(), "job": job.model_dump(mode="json"), "step": step},
        path,
    )
    recorder.artifact(path)
    return path


def _train(
    job: PretrainJob, method, dataset: MonoDataset, recorder: Recorder, dev: torch.device, workdir: Path,
    resume: Path | None,
) -> int:
    cfg = job.method
    steps_per_epoch = max(1, cfg.samples // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    optimizer = torch.optim.SGD(
        method.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
    )
    step = 0
    if resume is not None:
        state = torch.load(resume, map_location=dev, weights_only=True)
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        recorder.metrics({"resumed_from_step": step}, step)
    method.train()
    tick, seen = time.perf_counter(), 0
    for epoch in range(step // steps_per_epoch, cfg.epochs):
        # The order of epoch e depends on (seed, e) only, so a resumed run sees the same batches.
        order = np.random.default_rng([job.seed, epoch]).permutation(cfg.samples)
        for i in range(step - epoch * steps_per_epoch, steps_per_epoch):
            batch = torch.stack([dataset[int(j)] for j in order[i * cfg.batch_size : (i + 1) * cfg.batch_size]])
            lr = cosine_lr(step, total, cfg.lr)
            loss, extra = method.training_step(batch.to(dev))
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"pretext loss is {loss.item()} at step {step}")
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            seen += len(batch)
            if step % LOG_EVERY == 0 or step == total:
                now = time.perf_counter()
                recorder.metrics(
                    {"pretext_loss": loss.item(), "lr": lr,
                     "samples_per_s": seen / (now - tick), "epoch": epoch, **extra},
                    step,
                )
                tick, seen = now, 0
            if job.checkpoint_every and step % job.checkpoint_every == 0 and step < total:
                path = workdir / "resume.pt"
                torch.save({"method": method.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, path)
                recorder.artifact(path)
    return step


def load_trunk(job: ProbeJob, checkpoint: Path) -> torch.nn.Module:
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
    train = _subset(load_split(job.dataset, job.data_root, train=True), cfg.train_samples)
    test = _subset(load_split(job.dataset, job.data_root, train=False), cfg.test_samples)
    dims = feature_dims(trunk, size, layers)
    for layer in layers:
        recorder.params({"feature_dim": dims[layer], "train_size": len(train.labels), "test_size": len(test.labels)}, layer)
    probes = LinearProbes(dims, train.classes).to(dev)
    trainer = ProbeTrainer(trunk, probes, cfg, size, job.seed, dev)
    train_cache = test_cache = None
    if cfg.cache_features:
        tick = time.perf_counter()
        train_cache = extract(trunk, train, size, layers, 512, dev)
        test_cache = extract(trunk, test, size, layers, 512, dev)
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


def _subset(split: ProbeSplit, size: int | None) -> ProbeSplit:
    idx = stratified_subset(split.labels, size)
    return ProbeSplit(split.images[idx], split.labels[idx], split.classes)
