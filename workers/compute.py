"""A job's compute setting (contract.compute.ComputeConfig) on its device: the one place that
turns it into autocast, a memory format and torch.compile. Every loop that runs a trunk takes a
`Compute`, prepares its model once (`prepare`) and runs the forward passes inside `autocast()`:
training.fit (pre-training and finetuning), DeepCluster's feature extraction, the probes'
feature extraction, training and scoring, finetuning's scoring and style transfer.

bf16 is autocast's mixed precision: convolutions and matmuls in bfloat16, what autocast keeps in
float32 (losses, softmax, norms' statistics) in float32; parameters, gradients and optimizer
state stay float32, and bfloat16 has float32's exponent range, so no loss scaling is needed.
What must stay exact leaves autocast and computes in float32: DeepCluster's PCA and k-means,
style transfer's Gram matrices and losses, the probes' pooled features (cached in float32).
Data is made outside autocast, so a batch's pixels never depend on the setting.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from contract.compute import ComputeConfig
from workers.models.alexnet import AlexNet


@dataclass(frozen=True)
class Compute:
    config: ComputeConfig
    device: torch.device

    def autocast(self) -> contextlib.AbstractContextManager:
        """Where the forward passes run: bf16 autocast on the job's device, or nothing (fp32;
        also on the meta device, which has no autocast)."""
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def prepare(self, model: nn.Module, trunk: AlexNet) -> None:
        """`model` (which holds `trunk`, or is it) in the setting's memory format, and the
        trunk's `forward` and `taps` compiled. In place, before an optimizer is built over the
        parameters: the state dict keeps its keys, so checkpoints do not depend on the setting."""
        if self.config.channels_last:
            model.to(memory_format=torch.channels_last)  # conv outputs follow their weights' format
        if self.config.compile:
            trunk.forward = torch.compile(trunk.forward)  # type: ignore[method-assign]
            trunk.taps = torch.compile(trunk.taps)  # type: ignore[method-assign]


# fp32 eager, which needs no device: what a method computes with outside training.fit (the
# estimate's meta-device passes, unit tests).
EAGER = Compute(ComputeConfig(), torch.device("cpu"))
