"""Supervised pre-training: the trunk and AlexNet's classifier (fc6, fc7, fc8; Krizhevsky,
Sutskever, Hinton, NeurIPS 2012) trained with the labels of the probe dataset's train split.
The paper's upper reference: how far self-supervision is from manual labels, per layer.

Settings (contract.methods.SupervisedConfig): train_samples (a stratified subset, or all),
epochs, batch_size, lr, momentum, weight_decay, nesterov. Inputs: RandomResizedCrop + flip
(workers.data.probe_sets.LabelledSamples), new crops every epoch (Method.on_epoch_start).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workers.methods.base import Method
from workers.models.alexnet import AlexNet, pool5_shape


class Supervised(Method):
    def __init__(self, config, trunk: AlexNet, input_size: int, classes: int | None = None):
        super().__init__(config, trunk, input_size)
        if classes is None:
            raise ValueError("supervised pre-training needs the number of classes")
        c, h, w = pool5_shape(trunk, input_size)
        hidden = max(64, round(4096 * c / 256))  # fc6/fc7 shrunk with the trunk's width
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(c * h * w, hidden), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, classes),
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch  # (B, 3, H, W), (B,)
        logits = self.classifier(self.trunk(x))  # (B, classes)
        loss = F.cross_entropy(logits, y)
        return loss, {"train_top1": 100 * (logits.argmax(1) == y).float().mean().item()}
