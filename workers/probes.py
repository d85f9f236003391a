"""Linear probes on every requested conv layer of a frozen trunk, trained in one pass.

asano2020 protocol (yukimasano/linear-probes; docs/FIDELITY.md): the ReLU output of each conv is
max-pooled to a small grid (10x10 / 6x6 / 5x5 / 5x5 / 6x6 for conv1..conv5 at 224 px: 9600 /
9216 / 9600 / 9600 / 9216 features), then BatchNorm2d per channel without affine, then a linear
layer initialised as upstream's full-size conv (`probe_head`). All heads train together on one
forward pass of the trunk, their losses summed. The trunk runs in eval mode, which is the same
function as BN folded into the convs. Features travel and are cached flattened, (B, C h w).
Test views (ProbeConfig.test_crops): with ten crops the logits are averaged; a head in eval
mode (per-channel BN with running statistics, then linear) is affine, so that is exactly the
head applied to the views' averaged features, which is what is computed (and cached).

Deviation from upstream: upstream's fixed pools (MaxPool2d 6/6 pad 3, 4/4, 3/3 pad 1, 3/3 pad 1,
2/2) leave the last 3 rows and columns of conv2's 27x27 map and the last row and column of
conv5's 13x13 map unread at 224 px, and read only a corner of conv2..conv5 at 64 px. Here a
probe reads the whole map at every input size: the grid side scales with the map side
(`pooled_side`) and adaptive max-pooling tiles the whole map. At 224 px the feature counts
equal upstream's; the windows differ.

Ours, for small inputs (`ProbeConfig.features`): upstream's counts are about equal across layers
(9.2k-9.6k) at 224 px, but the grid rule gives shrinking counts at 64 px (432 / 512 / 192 / 192
/ 128 at width 0.5), so a layer trend would be partly the pooling. With `features` N every layer
is pooled to the grid whose C h w is closest to N (`equal_grid`), still by adaptive max-pooling
over the whole map.
"""

from __future__ import annotations

import functools
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from contract.evaluations import ProbeConfig
from contract.network import NetworkConfig
from contract.schedules import Schedule
from workers.compute import Compute
from workers.data.probe_sets import ProbeSplit, decoded, eval_views, train_inputs
from workers.models.alexnet import Trunk, build_trunk
from workers.training import step_times

# Per layer: (side of alexnet_bn's conv map, side of upstream's pooled grid) for a 224 px input.
# Maps: test_alexnet's test_tap_shapes_at_224. Grids: yukimasano/linear-probes' MaxPool2d
# (6, 6, 3), (4, 4, 0), (3, 3, 1), (3, 3, 1), (2, 2, 0) on those maps.
SIDES_AT_224 = {
    "conv1": (55, 10), "conv2": (27, 6), "conv3": (13, 5), "conv4": (13, 5), "conv5": (13, 6)
}

Features = dict[str, torch.Tensor]  # layer -> (B, D_layer)
# The features each layer is pooled to: one count for every layer, a count per layer, or None
# (upstream's grid scaled with the map, `pooled_side`).
Target = int | Mapping[str, int] | None


def pooled_side(layer: str, side: int) -> int:
    """Side of the pooled grid of a `side`-wide map of `layer`: upstream's grid at 224 px,
    scaled with the map and rounded (the ratios 2/11, 2/9, 5/13, 6/13 never give a tie), at
    least 1."""
    map_224, grid_224 = SIDES_AT_224[layer]
    return max(1, round(grid_224 * side / map_224))


@functools.cache
def equal_grid(channels: int, height: int, width: int, features: int) -> tuple[int, int]:
    """The grid (h, w), 1 <= h <= height and 1 <= w <= width, whose channels x h x w is closest
    to `features`; of equally close grids the squarer, then the one with fewer rows. A map too
    small for `features` gives its whole map (h, w) = (height, width): nothing is upsampled."""
    grids = ((h, w) for h in range(1, height + 1) for w in range(1, width + 1))
    return min(grids, key=lambda g: (abs(channels * g[0] * g[1] - features), abs(g[0] - g[1]), g[0]))


def grid_of(layer: str, shape: tuple[int, ...], target: Target) -> tuple[int, int]:
    """The pooled grid (h, w) of a (C, H, W) map of `layer` under `target`."""
    c, h, w = shape
    count = target if target is None or isinstance(target, int) else target[layer]
    if count is None:
        return pooled_side(layer, h), pooled_side(layer, w)
    return equal_grid(c, h, w, count)


def pooled_maps(taps: dict[str, torch.Tensor], target: Target = None) -> dict[str, torch.Tensor]:
    """Conv ReLU outputs (B, C, H, W) -> pooled grids (B, C, h, w) per layer. Adaptive max
    pooling: window i spans [floor(i H / h), ceil((i + 1) H / h)), so the windows tile the map."""
    return {layer: F.adaptive_max_pool2d(x, grid_of(layer, tuple(x.shape[1:]), target)) for layer, x in taps.items()}


def pool_taps(taps: dict[str, torch.Tensor], target: Target = None) -> Features:
    """Pooled grids flattened to (B, C h w): the form features are averaged and cached in."""
    return {layer: grid.flatten(1) for layer, grid in pooled_maps(taps, target).items()}


@torch.no_grad()
def feature_shapes(
    trunk: Trunk, input_size: int, layers: tuple[str, ...], target: Target = None
) -> dict[str, tuple[int, int, int]]:
    """(C, h, w) of each layer's pooled grid for a square input, found by a dry run."""
    was_training = trunk.training
    trunk.eval()
    device = next(trunk.parameters(), torch.empty(0)).device  # the raw-pixel trunk has no parameters
    taps = trunk.taps(torch.zeros(1, 3, input_size, input_size, device=device), layers)
    trunk.train(was_training)
    return {layer: tuple(grid.shape[1:]) for layer, grid in pooled_maps(taps, target).items()}  # type: ignore[misc]


def pool_target(network: NetworkConfig, layers: tuple[str, ...], features: int | None) -> Target:
    """What each layer of `network` is pooled to under a protocol pooling to `features`: that
    count; for the raw-pixel control (`network.pixels`), the count the network's own layer
    gets, so that `pixels conv1` reads as many features as conv1 does."""
    if not network.pixels:
        return features
    reference = build_trunk(network.model_copy(update={"pixels": False}))
    shapes = feature_shapes(reference, network.input_size, layers, features)
    return {layer: math.prod(shape) for layer, shape in shapes.items()}


def probe_head(shape: tuple[int, int, int], classes: int, affine: bool) -> nn.Sequential:
    """Upstream's head on a (C, h, w) grid: BatchNorm2d (one mean and variance per channel),
    then a linear map of the C h w features, which is upstream's Conv2d(C, classes, (h, w)).
    The weight is initialised as that conv's: xavier-uniform with the conv's fans (C h w in,
    classes h w out), bias 0. The head takes the flattened (B, C h w) features."""
    c, h, w = shape
    linear = nn.Linear(c * h * w, classes)
    nn.init.xavier_uniform_(linear.weight.view(classes, c, h, w), gain=1)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(
        OrderedDict(
            grid=nn.Unflatten(1, shape),
            bn=nn.BatchNorm2d(c, affine=affine),
            flat=nn.Flatten(),
            linear=linear,
        )
    )


class LinearProbes(nn.Module):
    """One `probe_head` per layer; BN without affine in asano2020, with it in VISSL."""

    def __init__(self, shapes: dict[str, tuple[int, int, int]], classes: int, affine: bool = False):
        super().__init__()
        self.heads = nn.ModuleDict(
            {layer: probe_head(shape, classes, affine) for layer, shape in shapes.items()}
        )

    def forward(self, features: Features) -> dict[str, torch.Tensor]:
        return {layer: head(features[layer]) for layer, head in self.heads.items()}


def lr_at(epoch: int, config: ProbeConfig) -> float:
    """The heads' rate in `epoch`, set once an epoch: x0.1 at each milestone epoch."""
    return config.lr * Schedule.at_epochs(config.lr_milestones, config.epochs).factor(epoch, 1, config.epochs)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """Numbers of samples whose label is the top-1 / among the top-5 predictions."""
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (B, 5)
    hit = top == labels[:, None]
    return int(hit[:, 0].sum()), int(hit.any(1).sum())


@torch.no_grad()
def view_features(
    trunk: Trunk, views: torch.Tensor, layers: tuple[str, ...], compute: Compute, target: Target = None
) -> Features:
    """(V, B, 3, S, S) views of B images -> pooled features (B, D) per layer, averaged over
    the V views in one pass of the trunk, in the job's precision; float32 out (the max-pool
    picks values, so pooling in bfloat16 loses nothing; the mean over views is float32)."""
    v, b = views.shape[:2]
    with compute.autocast():
        pooled = pool_taps(trunk.taps(views.flatten(0, 1), layers), target)
    return {layer: f.float().view(v, b, -1).mean(0) for layer, f in pooled.items()}


def single_view(crops: str) -> str:
    """The one deterministic view of a train image when a protocol trains without random
    crops: the test protocol's, with one crop instead of ten."""
    return "resize" if crops == "resize" else "center"


@torch.no_grad()
def extract(
    trunk: Trunk, split: ProbeSplit, size: int, layers: tuple[str, ...], batch: int, compute: Compute,
    crops: str = "resize", done: Callable[[int], None] | None = None, target: Target = None,
) -> Features:
    """Pooled features of a whole split (the `cache_features` path), computed on the compute
    setting's device, kept on the CPU in float32; `done` hears how many images are through
    after each batch."""
    chunks: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    for i in range(0, len(split.labels), batch):
        views = eval_views(decoded(split.images[i : i + batch]), size, crops).to(compute.device)
        for layer, f in view_features(trunk, views, layers, compute, target).items():
            chunks[layer].append(f.cpu())
        if done is not None:
            done(min(i + batch, len(split.labels)))
    return {layer: torch.cat(c) for layer, c in chunks.items()}


class ProbeTrainer:
    """Trains the heads over epochs and scores them; the trunk stays frozen in eval mode. The
    trunk's passes and the heads' run in the job's precision (`compute`, on its device)."""

    def __init__(
        self, trunk: Trunk, probes: LinearProbes, config: ProbeConfig, size: int, seed: int, compute: Compute,
        target: Target = None,
    ):
        self.trunk, self.probes, self.config, self.size = trunk.eval(), probes, config, size
        self.compute, self.device, self.target = compute, compute.device, target
        self.layers = tuple(probes.heads.keys())
        self.rng = np.random.default_rng([seed, 7])
        self.data_seconds = 0.0  # in `batches` making inputs, since the epoch began
        self.optimizer = torch.optim.SGD(
            probes.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        for p in trunk.parameters():
            p.requires_grad_(False)

    def batches(
        self, split: ProbeSplit, cache: Features | None, train: bool
    ) -> Iterator[tuple[Features, torch.Tensor]]:
        n, b = len(split.labels), self.config.batch_size
        order = torch.from_numpy(self.rng.permutation(n)) if train else torch.arange(n)
        for i in range(0, n, b):
            start = time.perf_counter()
            idx = order[i : i + b]
            if train and len(idx) < 2:
                continue  # BatchNorm needs two samples
            y = split.labels[idx].to(self.device)
            if cache is not None:
                features = {layer: f[idx].to(self.device) for layer, f in cache.items()}
                self.data_seconds += time.perf_counter() - start
                yield features, y
                continue
            images = decoded(split.images[idx])
            if train and self.config.train_augment:
                views = train_inputs(images, self.size, self.rng).unsqueeze(0)  # (1, B, 3, S, S)
            else:
                crops = single_view(self.config.test_crops) if train else self.config.test_crops
                views = eval_views(images, self.size, crops)  # (V, B, 3, S, S)
            views = views.to(self.device)
            self.data_seconds += time.perf_counter() - start
            yield view_features(self.trunk, views, self.layers, self.compute, self.target), y

    def train_epoch(self, epoch: int, split: ProbeSplit, cache: Features | None) -> dict[str, dict[str, float]]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(epoch, self.config)
        self.probes.train()
        loss_sum = {layer: 0.0 for layer in self.layers}
        correct = {layer: 0 for layer in self.layers}
        seen, steps, self.data_seconds, tick = 0, 0, 0.0, time.perf_counter()
        for features, y in self.batches(split, cache, train=True):
            losses, logits = self.step(features, y)
            for layer in self.layers:
                loss_sum[layer] += losses[layer].item() * len(y)
                correct[layer] += int((logits[layer].argmax(1) == y).sum())
            seen, steps = seen + len(y), steps + 1
        # The data path: decoding and augmenting, or a cache's gather; compute: the trunk's
        # forward pass and the heads' step.
        timing = step_times(self.data_seconds, time.perf_counter() - tick - self.data_seconds, steps)
        return {
            layer: {
                "train_loss": loss_sum[layer] / seen,
                "train_top1": 100 * correct[layer] / seen,
                "lr": lr_at(epoch, self.config),
                **timing,
            }
            for layer in self.layers
        }

    def step(self, features: Features, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One SGD step of every head on a batch's features (its losses summed); returns each
        head's loss and logits. What train_epoch runs per batch, and bench.gpu times."""
        with self.compute.autocast():
            logits = self.probes(features)
            losses = {layer: F.cross_entropy(out, y) for layer, out in logits.items()}
        self.optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()  # type: ignore[union-attr]
        self.optimizer.step()
        return losses, logits

    @torch.no_grad()
    def evaluate(self, split: ProbeSplit, cache: Features | None) -> dict[str, dict[str, float]]:
        self.probes.eval()
        top1 = {layer: 0 for layer in self.layers}
        top5 = {layer: 0 for layer in self.layers}
        for features, y in self.batches(split, cache, train=False):
            with self.compute.autocast():
                logits = self.probes(features)
            for layer, out in logits.items():
                c1, c5 = topk_correct(out, y)
                top1[layer] += c1
                top5[layer] += c5
        n = len(split.labels)
        return {layer: {"top1": 100 * top1[layer] / n, "top5": 100 * top5[layer] / n} for layer in self.layers}
