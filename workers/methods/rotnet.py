"""RotNet: Gidaris, Singh, Komodakis, "Unsupervised representation learning by predicting
image rotations", ICLR 2018.

Every sample is shown at 0, 90, 180 and 270 degrees; a head on pool5 predicts which.
Settings (contract.methods.RotNetConfig): samples (d), epochs, batch_size (source samples per
step, so the network sees 4x as many), lr, schedule, momentum, weight_decay, nesterov; its
defaults are upstream's (gidariss/FeatureLearningRotNet config/ImageNet_RotNet_AlexNet.py):
batch 192, SGD Nesterov, wd 5e-4, 50 epochs, lr 0.01 x0.1 at epochs 15/30/45. The head is
upstream's architectures/AlexNet.py fc_block and classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workers.methods.base import Method
from workers.models.alexnet import AlexNet, pool5_shape


def rotate_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) square images -> ((4B, C, H, W) rotated by k * 90 degrees, (4B,) labels k)."""
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return rotated, labels


class RotNet(Method):
    def __init__(self, config, trunk: AlexNet, input_size: int, classes: int | None = None):
        super().__init__(config, trunk, input_size)
        c, h, w = pool5_shape(trunk, input_size)
        hidden = max(64, round(4096 * c / 256))  # AlexNet's fc6/fc7 shrunk with the trunk's width
        # Upstream's AlexNet fc_block: two bias-free 4096 layers, each with BN, then the 4-way
        # classifier; no dropout.
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * h * w, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, 4),
        )

    def training_step(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = rotate_batch(batch)
        logits = self.head(self.trunk(x))  # (4B, 4)
        loss = F.cross_entropy(logits, y)
        accuracy = (logits.argmax(1) == y).float().mean().item()
        return loss, {"rotation_accuracy": accuracy}
