"""workers.methods.bigan: the losses, the generator and discriminator, and learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from contract.augmentation import AugmentConfig
from contract.methods import BiGANConfig
from tests.workers.steps import fit
from workers.data.augment import MEAN, STD
from workers.data.mono import MonoDataset
from workers.methods.bigan import D_WINS, BiGAN, Discriminator, Generator, bigan_losses
from workers.models.alexnet import AlexNet

TINY = {"samples": 16, "batch_size": 8, "z_dim": 16, "gan_channels": 8}


def test_bigan_losses_by_hand():
    """Mutations that fail it: E and G's labels not inverted (eg_loss = d_loss: the
    encoder/generator loss with the wrong sign), or the terms summed instead of halved."""
    zero = torch.zeros(4)
    d_loss, eg_loss = bigan_losses(zero, zero)  # D undecided: log 2 per term
    assert d_loss.item() == pytest.approx(math.log(2))
    assert eg_loss.item() == pytest.approx(math.log(2))
    sure = torch.full((4,), 20.0)
    d_loss, eg_loss = bigan_losses(sure, -sure)  # D right about both: D's loss ~0, E/G's large
    assert d_loss.item() < 1e-6 and eg_loss.item() == pytest.approx(20.0, rel=1e-6)
    d_loss, eg_loss = bigan_losses(-sure, sure)  # D fooled both ways
    assert eg_loss.item() < 1e-6 and d_loss.item() == pytest.approx(20.0, rel=1e-6)


@pytest.mark.parametrize("size", [64, 96])
def test_generator_makes_images_in_the_trunks_input_space(size: int):
    torch.manual_seed(0)
    generator = Generator(z_dim=16, size=size, channels=8)
    x = generator(torch.rand(3, 16) * 2 - 1)
    assert x.shape == (3, 3, size, size)
    pixels = x * STD + MEAN  # back to [0, 1]
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


@pytest.mark.parametrize("size", [64, 96])
def test_discriminator_scores_pairs(size: int):
    torch.manual_seed(0)
    discriminator = Discriminator(z_dim=16, size=size, channels=8)
    out = discriminator(torch.randn(3, 3, size, size), torch.randn(3, 16))
    assert out.shape == (3,)
    # It looks at z as well as x: changing only z changes the score.
    discriminator.eval()
    x = torch.randn(3, 3, size, size)
    assert not torch.equal(discriminator(x, torch.zeros(3, 16)), discriminator(x, torch.ones(3, 16)))


@pytest.fixture
def batch(small_astronaut: torch.Tensor) -> torch.Tensor:
    loader = BiGANConfig().loader
    dataset = MonoDataset([small_astronaut], AugmentConfig(preset="full"), 64, 8, 0, loader)
    return torch.stack([dataset.at_epoch(0)[i] for i in range(8)])  # (8, 3, 64, 64)


def bigan(**settings) -> BiGAN:
    torch.manual_seed(0)
    return BiGAN(BiGANConfig(**{**TINY, **settings}), AlexNet(width=0.25), 64)


def test_optimizers_split_encoder_generator_from_discriminator():
    method = bigan()
    eg, d = method.configure_optimizers()
    eg_params = {id(p) for g in eg.param_groups for p in g["params"]}
    d_params = {id(p) for g in d.param_groups for p in g["params"]}
    assert d_params == {id(p) for p in method.discriminator.parameters()}
    assert not eg_params & d_params
    assert {id(p) for p in method.trunk.parameters()} <= eg_params  # the trunk is the encoder
    assert {id(p) for p in method.generator.parameters()} <= eg_params
    assert method.d_optimizer is d and isinstance(eg, torch.optim.Adam)


def test_training_step_needs_the_optimizers(batch: torch.Tensor):
    with pytest.raises(RuntimeError, match="configure_optimizers"):
        bigan().training_step(batch)


def test_discriminator_loss_falls_while_encoder_and_generator_stay(batch: torch.Tensor):
    method = bigan()
    method.configure_optimizers()
    method.train()
    before = {k: v.clone() for k, v in method.trunk.state_dict().items() if "conv" in k}
    d_losses = [method.training_step(batch)[1]["discriminator_loss"] for _ in range(15)]
    assert np.mean(d_losses[-3:]) < 0.5 * np.mean(d_losses[:3]), d_losses
    # training_step stepped D only: E's weights are what they were.
    assert all(torch.equal(v, method.trunk.state_dict()[k]) for k, v in before.items())


def test_encoder_and_generator_loss_falls_against_a_fixed_discriminator(batch: torch.Tensor):
    method = bigan(lr=2e-3)  # 25 steps: faster than the paper's 2e-4
    eg_optimizer, d_optimizer = method.configure_optimizers()
    for group in d_optimizer.param_groups:
        group["lr"] = 0.0  # D frozen
    losses, metrics = fit(method, eg_optimizer, batch, 25)
    assert set(metrics) == {"discriminator_loss", "discriminator_accuracy"}
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses


def test_converged_unless_the_discriminator_wins(batch: torch.Tensor):
    """The criterion (bigan.D_WINS on a moving average of D's accuracy): a D frozen at its
    init stays near chance (converged), a D that alone learns wins (not converged). Mutations
    tried: the comparison inverted (`>=`) fails both halves; the average never updated fails
    the second."""
    frozen = bigan()
    _, d_optimizer = frozen.configure_optimizers()
    for group in d_optimizer.param_groups:
        group["lr"] = 0.0
    frozen.train()
    assert frozen.outcome()["converged"] == 0.0  # no step: nothing says it converged
    for _ in range(20):
        frozen.training_step(batch)
    assert frozen.outcome()["converged"] == 1.0, frozen.outcome()
    winning = bigan(lr=2e-3)
    winning.configure_optimizers()
    winning.train()
    for _ in range(30):  # training_step steps D only: E and G stay, D learns to tell them apart
        winning.training_step(batch)
    outcome = winning.outcome()
    assert outcome["discriminator_accuracy_end"] >= D_WINS and outcome["converged"] == 0.0, outcome
    assert "d_accuracy_average" in winning.state_dict()  # a resumed run carries the average on
