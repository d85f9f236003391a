"""Neural style transfer through a trunk (Gatys, Ecker, Bethge, CVPR 2016): are the early
layers learned from one image enough to carry a style? (The paper: as good as supervised.)

An image, started from the content image, is optimised with Adam so that the Gram matrices of
its `style_layers` activations match the style image's and its `content_layer` activations
match the content image's, with a total-variation term for smoothness. Both losses are
relative (squared error over the target's squared norm): a random trunk and a trained one
differ in feature scale, and the numbers should say how well each one's targets are met, not
how large its features are.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF
from torchvision.utils import save_image

from contract.evaluations import StyleConfig
from contract.jobs import StyleCell, StyleJob
from contract.recorder import Recorder
from workers.compute import Compute
from workers.data.augment import MEAN, STD
from workers.data.mono import load_images
from workers.models.alexnet import AlexNet, load_trunk
from workers.training import device, step_times

LOG_POINTS = 20  # loss points per pair


def square(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (3, H, W) -> float (1, 3, size, size) in [0, 1]: short side resized, centre crop."""
    resized = TF.resize(image, [size], antialias=True)
    return TF.center_crop(resized, [size, size]).float().div(255).unsqueeze(0)


def gram(features: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> (C, C) channel correlations, averaged over positions."""
    f = features.flatten(2)[0]  # (C, HW)
    return f @ f.t() / f.shape[1]


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels."""
    rows = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
    columns = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
    return rows + columns


def relative_error(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (x - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-12)


class StyleLoss:
    """The two losses of an image against one (content, style) pair, under one trunk: its
    passes in the job's precision (`compute`), the Gram matrices and losses in float32."""

    def __init__(self, trunk: AlexNet, content: torch.Tensor, style: torch.Tensor, cfg: StyleConfig, compute: Compute):
        self.trunk, self.cfg, self.compute = trunk, cfg, compute
        self.layers = tuple(dict.fromkeys([*cfg.style_layers, cfg.content_layer]))
        with torch.no_grad():
            self.grams = {layer: gram(f) for layer, f in self.taps(style).items() if layer in cfg.style_layers}
            self.content = self.taps(content)[cfg.content_layer]

    def taps(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (image - MEAN.to(image.device)) / STD.to(image.device)
        with self.compute.autocast():
            taps = self.trunk.taps(x, self.layers)
        return {layer: f.float() for layer, f in taps.items()}

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(style loss, content loss): the style loss is the mean over the style layers."""
        taps = self.taps(image)
        style = sum(relative_error(gram(taps[layer]), g) for layer, g in self.grams.items()) / len(self.grams)
        return style, relative_error(taps[self.cfg.content_layer], self.content)  # type: ignore[return-value]


def transfer(
    loss: StyleLoss, content: torch.Tensor, cfg: StyleConfig
) -> tuple[torch.Tensor, list[tuple[int, dict[str, float]]]]:
    """The stylised image (1, 3, S, S) in [0, 1], and the loss points on the way."""
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=cfg.lr)
    every = max(1, cfg.steps // LOG_POINTS)
    points = []
    for step in range(cfg.steps + 1):
        style, content_loss = loss(image)
        total = cfg.style_weight * style + cfg.content_weight * content_loss + cfg.tv_weight * total_variation(image)
        if step % every == 0 or step == cfg.steps:
            points.append(
                (step, {"style_loss": style.item(), "content_loss": content_loss.item(), "loss": total.item()})
            )
        if step == cfg.steps:
            break
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
    return image.detach(), points


def stylise(job: StyleJob, checkpoint: Path, recorder: Recorder, workdir: Path) -> dict[str, dict[str, float]]:
    """Every pair of the job through the frozen trunk (each for `job.max_steps` steps at most,
    when capped); the stylised images are artifacts of their cells' runs. Returns each pair's
    final losses."""
    torch.manual_seed(job.seed)
    dev = device()
    cfg = job.style
    if job.max_steps is not None:
        cfg = cfg.model_copy(update={"steps": min(cfg.steps, job.max_steps)})
    trunk = load_trunk(job.network, checkpoint).to(dev).eval()
    for p in trunk.parameters():
        p.requires_grad_(False)
    compute = Compute(job.compute, dev)
    compute.prepare(trunk, trunk)
    scores = {}
    for i, cell in enumerate(job.cells):
        scores[cell.part] = _pair(trunk, cell, cfg, recorder, workdir, compute)
        # The share of the job's pairs done, so a driver can show how far the job is.
        recorder.metrics({"progress": (i + 1) / len(job.cells)}, cfg.steps, cell.part)
    return scores


def _pair(
    trunk: AlexNet, cell: StyleCell, cfg: StyleConfig, recorder: Recorder, workdir: Path, compute: Compute
) -> dict[str, float]:
    loading = time.perf_counter()
    content, style = (square(image, cfg.size).to(compute.device) for image in load_images((cell.content, cell.style)))
    tick = time.perf_counter()
    image, points = transfer(StyleLoss(trunk, content, style, cfg, compute), content, cfg)
    for step, values in points:
        recorder.metrics(values, step, cell.part)
    # One image a step: its steps per second (the targets' two forward passes included). Its
    # data path is the pair's loading, once: shared out over the steps, as fit's is per batch.
    elapsed = time.perf_counter() - tick
    timing = step_times(tick - loading, elapsed, cfg.steps)
    recorder.metrics({"samples_per_s": cfg.steps / elapsed, **timing}, cfg.steps, cell.part)
    # The latest values are what a run shows: keep the starting style loss beside the final one.
    start = {"style_loss_start": points[0][1]["style_loss"]}
    recorder.metrics(start, 0, cell.part)
    folder = workdir / cell.part
    folder.mkdir(parents=True, exist_ok=True)
    # The inputs travel with the result, so a report can show the pair from MLflow alone.
    for name, picture in (("stylised.png", image), ("content.png", content), ("style.png", style)):
        save_image(picture, folder / name)
        recorder.artifact(folder / name, cell.part)
    return {**points[-1][1], **start}
