"""What one sample of each job costs, measured on the workers' own modules at the job's shapes:
the FLOPs (torch.utils.flop_counter: matmuls and convolutions, forward and backward as the job
runs them), the bytes saved for backward, and the bytes of the training state.

Everything runs on the meta device: tensors with shapes and no values, so nothing is computed
and a paper-scale network is measured in milliseconds; reading a value (`.item()`, a step's
logged accuracy) gives 1. Costs are measured at a batch of BATCH and divided by it: the FLOPs
and the activations of these networks grow linearly with the batch; parameters, gradients and
optimizer state (`State`) do not, and are counted apart.

Memory is an estimate: activations are the peak of the bytes autograd holds for backward (each
storage once, parameters never), not the allocator's caching or cuDNN's workspaces. A forward
without gradients (a frozen trunk) holds at most what the same forward would save for backward,
which is the bound used for it (`Pass.held`).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from contract.compute import ComputeConfig
from contract.datasets import LAYERS
from contract.evaluations import FinetuneConfig, ProbeConfig, StyleConfig
from contract.methods import DeepClusterConfig, MethodSettings
from contract.network import NetworkConfig
from workers.compute import Compute
from workers.data.probe_sets import ProbeSplit
from workers.finetune import Finetuning
from workers.methods.base import Method, implementation
from workers.methods.deepcluster import clustering_memory, kmeans_assign, pca_whiten
from workers.models.alexnet import AlexNet, build_trunk
from workers.probes import LinearProbes, ProbeTrainer, feature_shapes, pool_target
from workers.style_transfer import StyleLoss, transfer

BATCH = 2  # the smallest batch BatchNorm trains on
META = torch.device("meta")
# FLOPs are counted in fp32 eager: bf16 and compile change how fast they run, not how many.
ON_META = Compute(ComputeConfig(), META)


@dataclass(frozen=True)
class State:
    """Bytes that do not grow with the batch: parameters and buffers, gradients, optimizer state."""

    params: int
    grads: int = 0
    optimizer: int = 0

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer


@dataclass(frozen=True)
class Step:
    """A training step, per sample: FLOPs forward and backward, the activation bytes saved for
    backward."""

    flops: float
    saved: float
    state: State
    trains: bool = True  # False: the method never trains (random)


@dataclass(frozen=True)
class Pass:
    """A forward without gradients, per sample: FLOPs, and a bound on the bytes it holds."""

    flops: float
    held: float


@dataclass(frozen=True)
class Style:
    """One (content, style) pair: the targets' two forwards, each optimisation step (forward and
    backward through the frozen trunk to the pixels), the last forward that scores it."""

    setup: float
    step: float
    final: float
    saved: float
    state: State


class _NoValues(TorchDispatchMode):
    """Meta tensors hold no values: reading one gives 1, and copying one into a host tensor
    (DeepCluster's features, gathered on the host) copies nothing."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func is torch.ops.aten._local_scalar_dense.default:
            return 1
        if func is torch.ops.aten.copy_.default and args[1].is_meta and not args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


class Tally:
    """FLOPs counted, and the peak bytes held for backward: a saved tensor counts from when
    autograd saves it until autograd frees it (its node's graph), each storage once."""

    def __init__(self, exclude: set[int]):
        self.exclude = exclude  # storages of parameters and buffers: state, not activations
        self.holders: dict[int, int] = {}  # storage -> saved tensors holding it
        self.live = self.peak = 0
        self.flops = 0

    def pack(self, t: torch.Tensor) -> Any:
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self.exclude:
            return t
        if key not in self.holders:
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
        self.holders[key] = self.holders.get(key, 0) + 1
        held = _Held(t)
        weakref.finalize(held, self._release, key, storage.nbytes())
        return held

    @staticmethod
    def unpack(held: Any) -> torch.Tensor:
        return held.tensor if isinstance(held, _Held) else held

    def _release(self, key: int, nbytes: int) -> None:
        self.holders[key] -= 1
        if not self.holders[key]:
            del self.holders[key]
            self.live -= nbytes


class _Held:
    """A saved tensor as autograd keeps it; freed with its graph node."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


def _storages(module: nn.Module) -> set[int]:
    return {t.untyped_storage()._cdata for t in [*module.parameters(), *module.buffers()]}


@contextmanager
def counting(module: nn.Module) -> Iterator[Tally]:
    """Count FLOPs and saved bytes of what runs inside, values read as 1."""
    tally = Tally(_storages(module))
    with (
        _NoValues(),
        FlopCounterMode(display=False) as counter,
        saved_tensors_hooks(tally.pack, tally.unpack),
    ):
        yield tally
    tally.flops = counter.get_total_flops()


def on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    """A module built without memory: parameters on the meta device, and any buffer built from
    a CPU tensor (BiGAN's mean and std) moved there."""
    with META:
        module = build()
    return module.to(META)


def images(n: int, size: int) -> torch.Tensor:
    return torch.zeros(n, 3, size, size, device=META)


def labels(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.int64, device=META)


def state_of(module: nn.Module, optimizers: list[torch.optim.Optimizer]) -> State:
    """Parameters and buffers, the gradients a step leaves, the optimizers' state after it
    (SGD's momentum, Adam's two moments; none for a group without momentum)."""
    tensors = {
        t.untyped_storage()._cdata: t.untyped_storage().nbytes()
        for t in [*module.parameters(), *module.buffers()]
    }
    grads = sum(p.grad.nbytes for p in module.parameters() if p.grad is not None)
    moments = sum(
        v.nbytes
        for o in optimizers
        for s in o.state.values()
        for v in s.values()
        if torch.is_tensor(v) and v.device == META  # not the CPU step counters
    )
    return State(sum(tensors.values()), grads, moments)


def train_step(model: Method, batch: Any) -> Step:
    """One step as training.fit runs it: the method's step, backward, the first optimizer's step
    (BiGAN steps its discriminator inside its own)."""
    model.train()
    optimizers = model.configure_optimizers()
    with counting(model) as tally:
        loss, _ = model.training_step(batch)
        optimizers[0].zero_grad(set_to_none=True)
        loss.backward()
    with _NoValues():
        optimizers[0].step()
    return Step(tally.flops / BATCH, tally.peak / BATCH, state_of(model, optimizers))


def _method(method: MethodSettings, network: NetworkConfig, classes: int | None) -> Method:
    cls = implementation(method)
    return on_meta(lambda: cls(method, build_trunk(network), network.input_size, classes=classes))  # type: ignore[return-value]


@functools.cache
def pretrain(method: MethodSettings, network: NetworkConfig, classes: int | None) -> Step:
    """A pre-training step per source sample (RotNet's four rotations of it included);
    `classes`: the labelled dataset's, for a method that learns from labels."""
    model = _method(method, network, classes)
    if not model.trains:
        return Step(0.0, 0.0, State(state_of(model, []).params), trains=False)
    x = images(BATCH, network.input_size)
    # What the method's epoch dataset yields: images with their labels (supervised) or cluster
    # ids (DeepCluster), or bare images.
    labelled = type(method).uses_labels or isinstance(method, DeepClusterConfig)
    return train_step(model, (x, labels(BATCH)) if labelled else x)


@functools.cache
def extraction(method: DeepClusterConfig, network: NetworkConfig) -> tuple[Pass, int]:
    """DeepCluster's features of one clustered sample (its `features`, in eval mode), and their
    size D. Its working set is below the training step's at the same batch, so not measured."""
    model: Any = _method(method, network, None)
    with counting(model) as tally:
        features = model.features(_MetaView(network.input_size), np.arange(BATCH), META)
    return Pass(tally.flops / BATCH, 0.0), features.shape[1]


@dataclass(frozen=True)
class _MetaView:
    """A mono view (workers.methods.base.EpochData) whose batches are meta images."""

    size: int

    def batch(self, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        return images(len(indices), self.size)


@functools.cache
def clustering(method: DeepClusterConfig, dim: int) -> tuple[Pass, int]:
    """DeepCluster's clustering, per clustered sample: PCA-whitening (the covariance and the
    projection, in float64) and k-means' assignments, one per iteration and a last one (the
    loop of `kmeans`), measured on its functions; and the device bytes of one re-clustering of
    all its clustered samples (deepcluster.clustering_memory: the whitened matrix and
    chunk-sized temporaries; the features stay on the host)."""
    features = torch.zeros(BATCH, dim, device=META)
    with counting(nn.Module()) as pca:
        whitened = pca_whiten(features, min(method.pca_dim, dim))
    centroids = torch.zeros(method.k, whitened.shape[1], device=META)
    with counting(nn.Module()) as assign:
        kmeans_assign(whitened, centroids)
    flops = pca.flops + (method.kmeans_iterations + 1) * assign.flops
    clustered = method.cluster_samples or method.samples
    _, device = clustering_memory(clustered, dim, whitened.shape[1], method.k)
    return Pass(flops / BATCH, 0.0), device


def frozen_trunk(network: NetworkConfig) -> AlexNet:
    trunk: AlexNet = on_meta(lambda: build_trunk(network)).eval()  # type: ignore[assignment]
    for p in trunk.parameters():
        p.requires_grad_(False)
    return trunk


@functools.cache
def trunk_pass(network: NetworkConfig, layers: tuple[str, ...] = LAYERS) -> Pass:
    """The frozen trunk up to the deepest of `layers`, per image (per view, where a test image
    is seen in several). Held: what the same forward would save for backward of its input."""
    trunk = frozen_trunk(network)
    x = images(BATCH, network.input_size)
    with counting(trunk) as forward, torch.no_grad():
        trunk.taps(x, layers)
    with counting(trunk) as bound:
        trunk.taps(x.requires_grad_(), layers)
    return Pass(forward.flops / BATCH, bound.peak / BATCH)


@functools.cache
def probe_heads(
    network: NetworkConfig, layers: tuple[str, ...], classes: int, config: ProbeConfig
) -> tuple[Step, Pass]:
    """The linear heads of a probe job, per sample: a training step of ProbeTrainer on pooled
    features, and their scoring (eval mode). State: the frozen trunk and the heads."""
    trunk = frozen_trunk(network)
    target = pool_target(network, layers, config.features)
    shapes = feature_shapes(trunk, network.input_size, layers, target)
    probes: LinearProbes = on_meta(lambda: LinearProbes(shapes, classes, affine=config.bn_affine))  # type: ignore[assignment]
    trainer = ProbeTrainer(trunk, probes, config, network.input_size, 0, ON_META, target)
    # Cached features (CPU and flattened, as tasks.probe keeps them): the heads' step alone.
    cache = {layer: torch.zeros(BATCH, math.prod(shape)) for layer, shape in shapes.items()}
    split = ProbeSplit(torch.zeros(0), torch.zeros(BATCH, dtype=torch.int64), classes)
    with counting(probes) as train:
        trainer.train_epoch(0, split, cache)
    with _NoValues():
        trainer.optimizer.step()  # its momentum, as after the first step
    with counting(probes) as score:
        trainer.evaluate(split, cache)
    heads = state_of(probes, [trainer.optimizer])
    state = State(heads.params + state_of(trunk, []).params, heads.grads, heads.optimizer)
    return Step(train.flops / BATCH, train.peak / BATCH, state), Pass(score.flops / BATCH, 0.0)


@functools.cache
def finetune(
    config: FinetuneConfig, network: NetworkConfig, classes: int, frozen: int
) -> tuple[Step, Pass]:
    """Finetuning with conv1..conv`frozen` frozen, per sample: a training step (no backward
    through the frozen blocks) and the test forward (eval mode)."""
    model: Finetuning = on_meta(
        lambda: Finetuning(config, build_trunk(network), network.input_size, classes, frozen)
    )  # type: ignore[assignment]
    batch = (images(BATCH, network.input_size), labels(BATCH))
    step = train_step(model, batch)
    model.eval()
    with counting(model) as test, torch.no_grad():
        model.training_step(batch)
    return step, Pass(test.flops / BATCH, trunk_pass(network).held)


@functools.cache
def style(config: StyleConfig, network: NetworkConfig) -> Style:
    """Style transfer of one pair at the configured size, through style_transfer's own
    StyleLoss and transfer (run for 1 and 2 steps: the difference is one step). State: the
    trunk, and the image with its gradient and Adam's two moments."""
    trunk = frozen_trunk(network)
    image = images(1, config.size)
    with counting(trunk) as setup:
        loss = StyleLoss(trunk, image, image, config, ON_META)
    runs = []
    for steps in (1, 2):
        with counting(trunk) as run:
            transfer(loss, image, config.model_copy(update={"steps": steps}))
        runs.append(run)
    step = runs[1].flops - runs[0].flops
    state = State(state_of(trunk, []).params + 4 * image.nbytes)
    return Style(setup.flops, step, runs[0].flops - step, runs[0].peak, state)
