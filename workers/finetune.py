"""Finetuning with frozen leading layers: how much of a supervised network the first k conv
layers of a pre-trained trunk are worth (the paper: conv1-2 from one image come close).

conv1..convk keep the trunk's weights and their BatchNorm its running statistics (those blocks
stay in eval mode while the rest trains); the other conv layers are re-initialised (seeded)
when the protocol says so, and train with AlexNet's classifier on the labelled train split.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from workers.config import LAYERS, FinetuneConfig, FinetuneJob, NetworkConfig
from workers.data.probe_sets import LabelledSamples, ProbeSplit, decoded, eval_views, load_split
from workers.methods.supervised import Supervised
from workers.models.alexnet import AlexNet, build_trunk
from workers.probes import lr_at, topk_correct
from workers.recording import Recorder
from workers.tasks import check_loss, device, load_trunk, subset_of


def freeze(trunk: AlexNet, k: int) -> None:
    """conv1..convk (with the Sobel layer in front) stop learning; their BatchNorm keeps its
    statistics (call again after every `.train()`: it sets the frozen blocks back to eval)."""
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
    for own, new in zip(trunk.blocks[k:], fresh.blocks[k:]):
        own.load_state_dict(new.state_dict())


def finetune(job: FinetuneJob, checkpoint: Path, recorder: Recorder) -> dict[str, float]:
    """Finetune the job's trunk on the train split; returns the test split's top-1 / top-5."""
    torch.manual_seed(job.seed)
    dev = device()
    cfg = job.finetune
    train = subset_of(load_split(job.dataset, job.data_root, train=True), cfg.train_samples)
    test = subset_of(load_split(job.dataset, job.data_root, train=False), cfg.test_samples)
    model = finetuned(job, load_trunk(job, checkpoint), train, recorder, dev)
    scores = evaluate(model, test, job.network.input_size, cfg, dev)
    recorder.params({"test_size": len(test.labels)})
    recorder.metrics(scores, cfg.epochs)
    return scores


def finetuned(job: FinetuneJob, trunk: AlexNet, train: ProbeSplit, recorder: Recorder, dev: torch.device) -> Supervised:
    """The trunk (changed in place: its unfrozen layers) with AlexNet's classifier, trained."""
    cfg, size, k = job.finetune, job.network.input_size, job.frozen
    if cfg.reinit:
        reinitialise(trunk, job.network, k, job.seed)
    model = Supervised(cfg, trunk, size, classes=train.classes).to(dev)
    freeze(trunk, k)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    recorder.params({"frozen_layers": ",".join(LAYERS[:k]) or "none", "trainable_params": trainable,
                     "train_size": len(train.labels)})
    optimizer = model.configure_optimizers()[0]  # over the parameters that still learn
    samples = LabelledSamples(train, size, job.seed)
    steps_per_epoch = max(1, len(samples) // cfg.batch_size)
    for epoch in range(cfg.epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch, cfg)
        model.train()
        freeze(trunk, k)
        epoch_data = samples.at_epoch(epoch)
        order = np.random.default_rng([job.seed, epoch]).permutation(len(epoch_data))
        tick, loss_sum, top1_sum = time.perf_counter(), 0.0, 0.0
        for i in range(steps_per_epoch):
            picked = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x, y = default_collate([epoch_data[int(j)] for j in picked])
            loss, extra = model.training_step((x.to(dev), y.to(dev)))
            value = loss.item()
            check_loss(value, epoch * steps_per_epoch + i, None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += value
            top1_sum += extra["train_top1"]
        seconds = time.perf_counter() - tick
        recorder.metrics(
            {"train_loss": loss_sum / steps_per_epoch, "train_top1": top1_sum / steps_per_epoch,
             "lr": lr_at(epoch, cfg), "samples_per_s": steps_per_epoch * cfg.batch_size / seconds},
            epoch + 1,
        )
    return model


@torch.no_grad()
def evaluate(model: Supervised, split: ProbeSplit, size: int, cfg: FinetuneConfig, dev: torch.device) -> dict[str, float]:
    model.eval()
    top1 = top5 = 0
    for i in range(0, len(split.labels), 512):
        views = eval_views(decoded(split.images[i : i + 512]), size, cfg.test_crops)[0]  # one view
        logits = model.classifier(model.trunk(views.to(dev)))
        c1, c5 = topk_correct(logits, split.labels[i : i + 512].to(dev))
        top1, top5 = top1 + c1, top5 + c5
    n = len(split.labels)
    return {"top1": 100 * top1 / n, "top5": 100 * top5 / n}

