"""BiGAN: Donahue, Kraehenbuehl, Darrell, "Adversarial feature learning", ICLR 2017.

The encoder E (the trunk, then a linear map to z) and the generator G play against a
discriminator D that sees pairs: (x, E(x)) for real images, (G(z), z) for generated ones,
z ~ U(-1, 1)^z_dim. At the optimum E inverts G, so the trunk learns features of x.
Settings (contract.methods.BiGANConfig): samples (d), epochs, batch_size, lr, betas,
weight_decay (Adam for E + G and for D), z_dim, gan_channels (DCGAN's base width of G and D).
Not the paper's BiGAN code, which was not found (docs/FIDELITY.md, F): G and D are
DCGAN-style (Radford et al. 2016) and work at the trunk's input size. The official BiGAN code
(jeffdonahue/bigan) works at 64 px (its generalized BiGAN: a 112 px encoder, G and D at 64 px);
which sizes the paper ran is not in upstream source.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from workers.data.augment import MEAN, STD
from workers.methods.base import Method
from workers.models.alexnet import AlexNet, pool5_shape


def bigan_losses(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D's logits on (x, E(x)) and on (G(z), z) -> (D's loss, E and G's loss). D learns
    real = 1, fake = 0; E and G learn the inverted labels (the non-saturating form). Each term
    is weighted 1/2, as the official code's gan.py."""
    bce = F.binary_cross_entropy_with_logits
    ones, zeros = torch.ones_like(real_logits), torch.zeros_like(real_logits)
    d_loss = (bce(real_logits, ones) + bce(fake_logits, zeros)) / 2
    eg_loss = (bce(real_logits, zeros) + bce(fake_logits, ones)) / 2
    return d_loss, eg_loss


class Generator(nn.Module):
    """z (B, z_dim) -> images (B, 3, size, size) in the trunk's normalised input space:
    a 4x4 seed doubled by transposed convs until it reaches the size, resized to it exactly."""

    def __init__(self, z_dim: int, size: int, channels: int):
        super().__init__()
        self.size = size
        ups = max(1, math.ceil(math.log2(size / 4)))
        widths = [channels * min(8, 2 ** (ups - 1 - i)) for i in range(ups)]  # wide to narrow
        self.seed = nn.Sequential(nn.Linear(z_dim, widths[0] * 16), nn.BatchNorm1d(widths[0] * 16), nn.ReLU(True))
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers.append(nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1))
        self.body = nn.Sequential(*layers)
        self.register_buffer("mean", MEAN.view(1, 3, 1, 1).clone())
        self.register_buffer("std", STD.view(1, 3, 1, 1).clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.body(self.seed(z).view(len(z), -1, 4, 4))  # (B, 3, 4 * 2^ups, ...)
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return ((torch.tanh(x) + 1) / 2 - self.mean) / self.std  # pixels in [0, 1], normalised


class Discriminator(nn.Module):
    """(x (B, 3, S, S), z (B, z_dim)) -> (B,) logits: a strided conv stack on x and an MLP on
    z, joined by an MLP on their concatenation."""

    def __init__(self, z_dim: int, size: int, channels: int, hidden: int = 512):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c, side = channels, size // 2
        while side > 4:  # halve down to a 4x4 (or smaller) map, widths capped at 8x
            c_out = min(c * 2, channels * 8)
            layers += [nn.Conv2d(c, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]
            c, side = c_out, side // 2
        self.x_path = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            x_dim = self.x_path(torch.zeros(2, 3, size, size)).shape[1]
        self.z_path = nn.Sequential(nn.Linear(z_dim, hidden), nn.LeakyReLU(0.2, True))
        self.joint = nn.Sequential(nn.Linear(x_dim + hidden, hidden), nn.LeakyReLU(0.2, True), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.joint(torch.cat([self.x_path(x), self.z_path(z)], 1)).squeeze(1)


def _official_init(module: nn.Module) -> None:
    """The official code's init (net.py): every weight N(0, 0.02), biases 0, BN gains 1."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# The convergence criterion: the run has NOT converged when its discriminator wins, i.e. tells
# real pairs from generated ones at least this often (a moving average over about the last
# 1 / (1 - DECAY) = 50 steps at the end of training). Then E and G get almost no gradient and the
# encoder stops learning: the failure the paper reports for BiGAN at N > 1.
D_WINS = 0.95
DECAY = 0.98


class BiGAN(Method):
    def __init__(self, config, trunk: AlexNet, input_size: int, classes: int | None = None):
        super().__init__(config, trunk, input_size)
        c, h, w = pool5_shape(trunk, input_size)
        hidden = max(64, round(1024 * c / 256))
        self.encoder_head = nn.Sequential(
            nn.Flatten(), nn.Linear(c * h * w, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2, True),
            nn.Linear(hidden, config.z_dim),
        )
        self.generator = Generator(config.z_dim, input_size, config.gan_channels)
        self.discriminator = Discriminator(config.z_dim, input_size, config.gan_channels)
        for module in (self.encoder_head, self.generator, self.discriminator):
            module.apply(_official_init)
        self.d_optimizer: torch.optim.Optimizer | None = None
        # A buffer, so a resumed run carries it on; -1: no step yet.
        self.register_buffer("d_accuracy_average", torch.tensor(-1.0))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        c = self.config
        eg = [*self.trunk.parameters(), *self.encoder_head.parameters(), *self.generator.parameters()]
        eg_optimizer = torch.optim.Adam(
            [p for p in eg if p.requires_grad], lr=c.lr, betas=c.betas, weight_decay=c.weight_decay
        )
        self.d_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=c.lr, betas=c.betas, weight_decay=c.weight_decay
        )
        return [eg_optimizer, self.d_optimizer]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder_head(self.trunk(x))  # (B, z_dim)

    def training_step(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """One discriminator step on this batch, then E and G's loss against the updated D
        (the loop steps E and G on it)."""
        if self.d_optimizer is None:
            raise RuntimeError("call configure_optimizers() before training_step()")
        z = torch.rand(len(batch), self.config.z_dim, device=batch.device) * 2 - 1  # U(-1, 1)
        ez, gz = self.encode(batch), self.generator(z)
        d_loss, _ = bigan_losses(self.discriminator(batch, ez.detach()), self.discriminator(gz.detach(), z))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        real, fake = self.discriminator(batch, ez), self.discriminator(gz, z)
        _, eg_loss = bigan_losses(real, fake)
        accuracy = ((real > 0).float().mean() + (fake < 0).float().mean()).item() / 2
        average = float(self.d_accuracy_average)
        self.d_accuracy_average.fill_(accuracy if average < 0 else DECAY * average + (1 - DECAY) * accuracy)
        return eg_loss, {"discriminator_loss": d_loss.item(), "discriminator_accuracy": accuracy}

    def outcome(self) -> dict[str, float]:
        """`converged` 1 or 0 by the criterion above (D_WINS), and the average it is judged on."""
        average = float(self.d_accuracy_average)
        return {"discriminator_accuracy_end": average, "converged": float(0 <= average < D_WINS)}
