"""Finetuning with frozen leading layers: how much of a supervised network the first k conv
layers of a pre-trained trunk are worth (the paper: conv1-2 from one image come close).

conv1..convk keep the trunk's weights and their BatchNorm its running statistics (those blocks
stay in eval mode while the rest trains); the other conv layers are re-initialised (seeded)
when the protocol says so, and train with AlexNet's classifier on the labelled train split.
"""

from __future__ import annotations

from pathlib import Path

import torch

from contract.datasets import LAYERS
from contract.evaluations import FinetuneConfig
from contract.jobs import FinetuneJob
from contract.network import NetworkConfig
from contract.recorder import Recorder
from contract.schedules import Schedule
from workers.compute import Compute
from workers.data.probe_sets import (
    LabelledSamples,
    ProbeSplit,
    capped,
    decoded,
    eval_views,
    load_split,
    subset_of,
)
from workers.methods.supervised import Supervised
from workers.models.alexnet import AlexNet, build_trunk, load_trunk
from workers.probes import topk_correct
from workers.training import Loop, device, fit


def freeze(trunk: AlexNet, k: int) -> None:
    """conv1..convk (with the Sobel layer in front) stop learning; their BatchNorm keeps its
    statistics (eval mode)."""
    trunk.sobel.eval()
    for block in trunk.blocks[:k]:
        block.eval()
        for p in block.parameters():
            p.requires_grad_(False)


def reinitialise(trunk: AlexNet, network: NetworkConfig, k: int, seed: int) -> None:
    """Fresh weights for conv(k+1)..conv5 from a stream of their own: the same seed gives the
    same init whatever the trunk was."""
    with torch.random.fork_rng():  # the global streams (CPU and every GPU) come back as they were
        torch.manual_seed(seed)
        fresh = build_trunk(network)
    for own, new in zip(trunk.blocks[k:], fresh.blocks[k:], strict=True):
        own.load_state_dict(new.state_dict())


class Finetuning(Supervised):
    """Supervised training of conv(k+1)..conv5 and AlexNet's classifier with conv1..convk
    frozen: `train()` puts the frozen blocks straight back in eval mode."""

    def __init__(self, config: FinetuneConfig, trunk: AlexNet, input_size: int, classes: int, frozen: int):
        super().__init__(config, trunk, input_size, classes)
        self.frozen = frozen
        freeze(trunk, frozen)

    def train(self, mode: bool = True) -> Finetuning:
        super().train(mode)
        freeze(self.trunk, self.frozen)
        return self


def finetune(
    job: FinetuneJob, checkpoint: Path, recorder: Recorder, workdir: Path, resume: Path | None = None
) -> dict[str, float]:
    """Finetune the job's trunk on the train split; returns the test split's top-1 / top-5
    (capped at `job.max_steps` steps: scored on one test batch). `resume`: a `resume.pt` an
    earlier attempt left, to continue from."""
    torch.manual_seed(job.seed)
    dev = device()
    cfg = job.finetune
    train = subset_of(load_split(job.dataset, job.data_root, train=True), cfg.train_samples)
    test = load_split(job.dataset, job.data_root, train=False)
    test = subset_of(test, capped(cfg.test_samples, None if job.max_steps is None else 1, cfg.batch_size))
    model = finetuned(job, load_trunk(job.network, checkpoint), train, recorder, dev, workdir, resume)
    scores = evaluate(model, test, job.network.input_size, cfg, Compute(job.compute, dev))
    recorder.params({"test_size": len(test.labels)})
    recorder.metrics(scores, cfg.epochs)
    return scores


def finetuned(
    job: FinetuneJob, trunk: AlexNet, train: ProbeSplit, recorder: Recorder, dev: torch.device, workdir: Path,
    resume: Path | None = None,
) -> Finetuning:
    """The trunk (changed in place: its unfrozen layers) with AlexNet's classifier, trained by
    the pre-training loop (resume checkpoints and the loss checks included)."""
    cfg, k = job.finetune, job.frozen
    if cfg.reinit:
        reinitialise(trunk, job.network, k, job.seed)
    model = Finetuning(cfg, trunk, job.network.input_size, train.classes, k).to(dev)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    recorder.params({"frozen_layers": ",".join(LAYERS[:k]) or "none", "trainable_params": trainable,
                     "train_size": len(train.labels)})
    schedule = Schedule.at_epochs(cfg.lr_milestones, cfg.epochs)
    loop = Loop(job.seed, cfg.epochs, cfg.batch_size, cfg.lr, schedule, job.checkpoint_every,
                job.divergence_threshold, loss_name="train_loss", max_steps=job.max_steps, compute=job.compute)
    samples = LabelledSamples(train, job.network.input_size, job.seed, augment=cfg.train_augment)
    fit(loop, model, samples, recorder, dev, workdir, resume)
    return model


@torch.no_grad()
def evaluate(
    model: Supervised, split: ProbeSplit, size: int, cfg: FinetuneConfig, compute: Compute
) -> dict[str, float]:
    """Top-1 / top-5 (%) of the finetuned model (as fit prepared it) on one view of each image,
    in the job's precision."""
    model.eval()
    top1 = top5 = 0
    for i in range(0, len(split.labels), 512):
        views = eval_views(decoded(split.images[i : i + 512]), size, cfg.test_crops)[0]  # one view
        with compute.autocast():
            logits = model.classifier(model.trunk(views.to(compute.device)))
        c1, c5 = topk_correct(logits, split.labels[i : i + 512].to(compute.device))
        top1, top5 = top1 + c1, top5 + c5
    n = len(split.labels)
    return {"top1": 100 * top1 / n, "top5": 100 * top5 / n}

