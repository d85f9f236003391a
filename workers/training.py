"""The training loop pre-training and finetuning share: batches in a seeded order per epoch, the
learning-rate schedule, the loss checks, the log every LOG_EVERY steps and resume checkpoints.

Written out, top to bottom (no framework between the reader and the loop): `fit` trains a
Method on a dataset for a `Loop`'s epochs, and a run resumed from its `resume.pt` ends with the
weights of an uninterrupted one. Each batch is made whole, on the job's device, by the epoch's
view (`batch(indices, device)`, workers.methods.base.EpochData).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contract.compute import ComputeConfig
from contract.methods import snapshot_artifact
from contract.recorder import Recorder
from contract.schedules import Schedule
from workers.compute import Compute
from workers.methods.base import DivergedLoss, Method, NonFiniteLoss

LOG_EVERY = 20  # steps between training-loss points (and progress reports: `progress`, the share of
# the job's steps done, goes with them, so a driver can show how far a running job is; and where a
# step's time goes, `step_times`)


def step_times(data_s: float, compute_s: float, steps: int) -> dict[str, float]:
    """Where `steps` steps' time went, as every training loop logs it (`monosweep smoke` names the
    larger a job's bottleneck): `data_s_per_step` making the batch, `compute_s_per_step` the
    rest of the step. Host clocks: on a GPU a batch's kernels can finish inside the step after
    them, which books them to compute (a sync at each clock read would cost the overlap)."""
    return {"data_s_per_step": data_s / steps, "compute_s_per_step": compute_s / steps}


def device() -> torch.device:
    """The GPU where there is one. cuDNN is kept to deterministic kernels, so a rerun of a key
    repeats its numbers on the same hardware."""
    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass(frozen=True)
class Loop:
    """What the training loop needs of a job besides its method and data."""

    seed: int
    epochs: int
    batch_size: int
    lr: float  # the base rate, for the log
    schedule: Schedule  # the factor on each parameter group's base rate
    checkpoint_every: int = 0  # steps between resume checkpoints; 0: none
    divergence_threshold: float | None = None
    loss_name: str = "pretext_loss"
    max_steps: int | None = None  # stop after this many steps (a smoke run); the schedule stays the full run's
    compute: ComputeConfig = ComputeConfig()  # precision, memory format, compile (workers.compute)
    snapshots: tuple[int, ...] = ()  # source samples after which the trunk is saved (whole batches)


def rng_state() -> dict[str, Any]:
    """The global torch streams (dropout, BiGAN's noise, DeepCluster's draws), for resuming."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back the streams `rng_state` saved."""
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


def fit(
    loop: Loop,
    method: Method,
    dataset: Any,
    recorder: Recorder,
    dev: torch.device,
    workdir: Path,
    resume: Path | None,
) -> int:
    """Train `method` on `dataset` (only its first `loop.max_steps` steps, when set); returns
    the number of steps. Every `loop.checkpoint_every` steps the full state goes to the
    recorder as `resume.pt`; given such a file as `resume`, training continues from its step
    and ends with the weights of an uninterrupted run. The method computes as `loop.compute`
    says (workers.compute); it holds that as `method.compute` for the passes it makes outside
    a step (DeepCluster's feature extraction in on_epoch_start).

    After `loop.snapshots` samples the trunk goes to the recorder too, as `snapshot_artifact(n)`
    (before a resume checkpoint of the same step: a run resumed from step s has recorded every
    snapshot up to s).

    The two timings logged add up to the steps' wall time. On a GPU the work a step queues is
    waited for at the next step's loss.item(), so it counts as compute; a batch's own kernels
    count as data only as far as making it waits on them."""
    steps_per_epoch = max(1, len(dataset) // loop.batch_size)  # type: ignore[arg-type]
    total = steps_per_epoch * loop.epochs
    end = total if loop.max_steps is None else min(total, loop.max_steps)
    compute = Compute(loop.compute, dev)
    compute.prepare(method, method.trunk)
    method.compute = compute
    optimizers = method.configure_optimizers()
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]  # the schedule scales each group's own base rate
    step = 0
    if resume is not None:
        state = torch.load(resume, map_location=dev, weights_only=True)
        if state["schedule"] != loop.schedule.model_dump(mode="json"):
            raise ValueError(f"{resume} was written under schedule {state['schedule']}, not {loop.schedule}")
        method.load_state_dict(state["method"])
        for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        set_rng_state(state["rng"])
        step = state["step"]
        recorder.metrics({"resumed_from_step": step}, step)
    method.train()
    tick, seen, data_s, compute_s, timed = time.perf_counter(), 0, 0.0, 0.0, 0
    for epoch in range(step // steps_per_epoch, math.ceil(end / steps_per_epoch)):
        started = time.perf_counter()
        epoch_data = method.on_epoch_start(epoch, dataset, dev)
        tick += time.perf_counter() - started  # samples_per_s is the steps' rate: not a re-clustering
        # The order of epoch e depends on (seed, e) only, so a resumed run sees the same batches.
        order = np.random.default_rng([loop.seed, epoch]).permutation(len(epoch_data))  # type: ignore[arg-type]
        for i in range(step - epoch * steps_per_epoch, min(steps_per_epoch, end - epoch * steps_per_epoch)):
            picked = order[i * loop.batch_size : (i + 1) * loop.batch_size]
            start = time.perf_counter()
            batch = epoch_data.batch(picked, dev)
            made = time.perf_counter()
            scale = loop.schedule.factor(step, steps_per_epoch, total)
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * scale
            value, extra = train_step(method, optimizers, batch, compute, step, loop)
            step += 1
            seen += len(picked)
            stepped = time.perf_counter()
            data_s, compute_s, timed = data_s + made - start, compute_s + stepped - made, timed + 1
            if step % LOG_EVERY == 0 or step == end:
                recorder.metrics(
                    {loop.loss_name: value, "lr": loop.lr * scale,
                     "samples_per_s": seen / (stepped - tick), "epoch": epoch, "progress": step / end,
                     **step_times(data_s, compute_s, timed),
                     **extra},
                    step,
                )
                tick, seen, data_s, compute_s, timed = stepped, 0, 0.0, 0.0, 0
            save(loop, step, end, method, optimizers, workdir, recorder)
    return step


def train_step(
    method: Method, optimizers: list[torch.optim.Optimizer], batch: Any, compute: Compute, step: int, loop: Loop
) -> tuple[float, dict[str, float]]:
    """One step of `fit` (and what bench.gpu times): the method's step inside the compute
    setting's autocast, the loss checked, backward and the first optimizer's step. Returns the
    loss and the method's metrics.

    Raises:
        NonFiniteLoss, DivergedLoss: as `check_loss`.
    """
    with compute.autocast():
        loss, extra = method.training_step(batch)
    value = loss.item()  # the step's one device sync, shared by the check and the log
    check_loss(value, step, loop.divergence_threshold, loop.loss_name)
    optimizers[0].zero_grad(set_to_none=True)
    loss.backward()
    optimizers[0].step()
    return value, extra


def save(
    loop: Loop, step: int, end: int, method: Method, optimizers: list[torch.optim.Optimizer], workdir: Path,
    recorder: Recorder,
) -> None:
    """What `fit` keeps after `step`: the trunk where a snapshot falls, then (so that a run
    resumed from a step has every snapshot up to it) the resume checkpoint where one falls."""
    if step * loop.batch_size in loop.snapshots:
        path = workdir / snapshot_artifact(step * loop.batch_size)
        torch.save({"trunk": method.trunk.state_dict(), "step": step}, path)
        recorder.artifact(path)
    if loop.checkpoint_every and step % loop.checkpoint_every == 0 and step < end:
        path = workdir / "resume.pt"
        torch.save(
            {
                "method": method.state_dict(),
                "optimizers": [o.state_dict() for o in optimizers],
                "rng": rng_state(),
                "schedule": loop.schedule.model_dump(mode="json"),
                "step": step,
            },
            path,
        )
        recorder.artifact(path)


def check_loss(
    value: float, step: int, threshold: float | None, name: str = "pretext_loss"
) -> None:
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
