"""Each method's defaults against its upstream code (docs/FIDELITY.md cites the files): the
learning rate the training loop sets at named epochs, heads, optimizer groups and inits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from contract.evaluations import FinetuneConfig
from contract.methods import (
    BiGANConfig,
    DeepClusterConfig,
    MethodSettings,
    RotNetConfig,
    SupervisedConfig,
)
from contract.recorder import MemoryRecorder
from contract.schedules import Schedule
from workers.methods.base import Method
from workers.methods.bigan import BiGAN
from workers.methods.deepcluster import DeepCluster
from workers.methods.rotnet import RotNet
from workers.models.alexnet import AlexNet
from workers.training import Loop, fit

CPU = torch.device("cpu")


class Ones:
    """`n` items of ones, batched: no loader views."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def batch(self, indices, device: torch.device) -> torch.Tensor:
        return torch.ones(len(indices), 1, device=device)


class RateProbe(Method):
    """A one-weight method that notes the rate of each optimizer group at every step."""

    def __init__(self, config: MethodSettings):
        super().__init__(config, AlexNet(width=0.125), 32)
        self.w = nn.Parameter(torch.zeros(1))
        self.rates: list[float] = []

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        self.optimizer = torch.optim.SGD([self.w], lr=self.config.lr)
        return [self.optimizer]

    def on_epoch_start(self, epoch: int, dataset, device: torch.device):
        return dataset

    def training_step(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        self.rates.append(self.optimizer.param_groups[0]["lr"])
        return (self.w * batch.sum()).sum(), {}


def rates_by_epoch(config: MethodSettings, tmp_path: Path) -> list[float]:
    """The rate `fit` sets in each epoch of the method's default run (one step an epoch)."""
    method = RateProbe(config)
    loop = Loop(0, config.epochs, config.batch_size, config.lr, config.schedule)
    fit(loop, method, Ones(config.batch_size), MemoryRecorder(), CPU, tmp_path, None)
    return method.rates


# epoch -> rate, read in the upstream source (docs/FIDELITY.md, sections D, E, F, H).
UPSTREAM_RATES = {
    # FeatureLearningRotNet config LUT_lr [(15, 0.01), (30, 0.001), (45, 0.0001), (50, 0.00001)]
    "rotnet": {0: 1e-2, 14: 1e-2, 15: 1e-3, 29: 1e-3, 30: 1e-4, 44: 1e-4, 45: 1e-5, 49: 1e-5},
    # deepcluster main.py: lr 0.05 and no schedule
    "deepcluster": {0: 0.05, 100: 0.05, 199: 0.05},
    # bigan train_gan.py set_lr: constant for 50 epochs, then log-linear to 0.01 x at epoch 99
    "bigan": {0: 2e-4, 49: 2e-4, 50: 2e-4 * 0.01 ** (1 / 50), 74: 2e-4 * 0.01 ** (25 / 50), 99: 2e-6},
    # torchvision train.py: --lr 0.1 (its README keeps the default for BN networks; 0.01 is for
    # the BN-free AlexNet and VGG), StepLR step 30, gamma 0.1
    "supervised": {0: 1e-1, 29: 1e-1, 30: 1e-2, 59: 1e-2, 60: 1e-3, 89: 1e-3},
}


@pytest.mark.parametrize(
    "config", [RotNetConfig(samples=2, batch_size=2), DeepClusterConfig(samples=2, batch_size=2, k=2),
               BiGANConfig(samples=2, batch_size=2), SupervisedConfig(batch_size=2)],
    ids=lambda c: c.name,
)
def test_the_loop_sets_upstreams_rate_at_named_epochs(config: MethodSettings, tmp_path: Path):
    """Mutations that fail it: RotNet's lr back to 0.1 or its schedule to cosine; the loop not
    applying the schedule; BiGAN decaying from epoch 0; supervised back to torchvision's BN-free
    AlexNet rate 0.01."""
    rates = rates_by_epoch(config, tmp_path)
    assert len(rates) == config.epochs
    expected = UPSTREAM_RATES[config.name]
    assert {e: rates[e] for e in expected} == pytest.approx(expected, rel=1e-9)


def test_finetuning_sets_torchvisions_bn_rate_at_named_epochs(tmp_path: Path):
    """The `torchvision` preset as workers.finetune runs it: 0.1 (train.py's default, which its
    README keeps for networks with BN), x0.1 at epochs 30 and 60. Mutation: lr back to 0.01."""
    cfg = FinetuneConfig()
    method = RateProbe(cfg)  # type: ignore[arg-type]
    loop = Loop(0, cfg.epochs, 2, cfg.lr, Schedule.at_epochs(cfg.lr_milestones, cfg.epochs))
    fit(loop, method, Ones(2), MemoryRecorder(), CPU, tmp_path, None)
    expected = {0: 1e-1, 29: 1e-1, 30: 1e-2, 59: 1e-2, 60: 1e-3, 89: 1e-3}
    assert {e: method.rates[e] for e in expected} == pytest.approx(expected, rel=1e-9)


def test_deepcluster_top_layer_has_its_own_plain_sgd():
    """Upstream steps the top layer with SGD(lr, weight_decay) and no momentum; the trunk and
    fc6/fc7 with momentum 0.9. Mutation that fails it: one group for every parameter."""
    torch.manual_seed(0)
    method = DeepCluster(DeepClusterConfig(samples=8, k=4, pca_dim=4), AlexNet(width=0.25), 64)
    (optimizer,) = method.configure_optimizers()
    top = {id(p) for p in method.top.parameters()}
    groups = {tuple(sorted(id(p) for p in g["params"])): g for g in optimizer.param_groups}
    top_group = groups[tuple(sorted(top))]
    assert top_group["momentum"] == 0 and top_group["weight_decay"] == 1e-5 and top_group["lr"] == 0.05
    (body,) = [g for g in optimizer.param_groups if g is not top_group]
    assert body["momentum"] == 0.9 and not top & {id(p) for p in body["params"]}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(method.parameters()))


def test_deepcluster_fc6_fc7_start_as_upstream():
    """models/alexnet.py: every Linear N(0, 0.01), bias 0. Mutation: PyTorch's default init."""
    torch.manual_seed(0)
    method = DeepCluster(DeepClusterConfig(samples=8, k=4, pca_dim=4), AlexNet(width=1.0), 224)
    linears = [m for m in method.classifier if isinstance(m, nn.Linear)]
    assert len(linears) == 2
    for layer in linears:
        assert layer.weight.std().item() == pytest.approx(0.01, rel=0.01)
        assert torch.count_nonzero(layer.bias) == 0


def test_rotnet_head_is_upstreams_fc_block_and_classifier():
    """architectures/AlexNet.py: Linear(9216, 4096, bias=False) -> BN -> ReLU -> Linear(4096,
    4096, bias=False) -> BN -> ReLU -> Linear(4096, 4). Mutation: the former 1024 head."""
    head = RotNet(RotNetConfig(), AlexNet(width=1.0), 224).head
    shape = [(type(m).__name__, getattr(m, "in_features", None), getattr(m, "out_features", None),
              getattr(m, "bias", None) is not None) for m in head if not isinstance(m, (nn.Flatten, nn.ReLU))]
    assert shape == [
        ("Linear", 9216, 4096, False), ("BatchNorm1d", None, None, True),
        ("Linear", 4096, 4096, False), ("BatchNorm1d", None, None, True),
        ("Linear", 4096, 4, True),
    ]


def test_bigan_networks_start_as_the_official_code():
    """net.py: every weight N(0, 0.02), biases 0. Mutation: PyTorch's default init."""
    torch.manual_seed(0)
    method = BiGAN(BiGANConfig(z_dim=16, gan_channels=8), AlexNet(width=0.25), 64)
    for part in (method.encoder_head, method.generator, method.discriminator):
        for m in part.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and m.weight.numel() > 1000:
                assert m.weight.std().item() == pytest.approx(0.02, rel=0.1), m
                assert m.bias is None or torch.count_nonzero(m.bias) == 0
