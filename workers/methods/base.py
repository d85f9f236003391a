"""The pretext-task interface. A method is its settings in contract/methods.py, which name its
implementation here in workers/methods/ (one file per method)."""

from __future__ import annotations

import importlib
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from contract.methods import MethodSettings
from workers.compute import EAGER, Compute
from workers.models.alexnet import AlexNet


class NonFiniteLoss(FloatingPointError):
    """The pretext loss became NaN or infinite: the job fails rather than record garbage."""

    reason = "nan_loss"


class DivergedLoss(FloatingPointError):
    """The pretext loss is still finite but above the job's `divergence_threshold`: training has
    blown up, and the job fails rather than finish with a useless trunk."""

    reason = "diverged"


class EpochData(Protocol):
    """What a method trains on in an epoch: len() items, and `batch(indices, device)`, the
    batch of items `indices` made on `device` as training_step takes it (a tensor, or a tuple
    of tensors)."""

    def __len__(self) -> int: ...

    def batch(self, indices: np.ndarray, device: torch.device) -> Any: ...


class Method(nn.Module):
    """A pretext task around the trunk. Subclasses that train set `trains` and implement
    `training_step`; the loop itself (data, schedule, logging, checkpoints) is in tasks.py.

    A method whose `uses_labels` config needs the class count gets it as `classes`."""

    trains: ClassVar[bool] = True
    # The job's compute setting (training.fit sets it), for forward passes made outside a
    # training step, which fit runs inside its autocast: DeepCluster's feature extraction.
    compute: Compute = EAGER

    def __init__(self, config: Any, trunk: AlexNet, input_size: int, classes: int | None = None):
        super().__init__()
        self.config, self.trunk, self.input_size = config, trunk, input_size

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """The loop steps the first one on the loss `training_step` returns and scales every
        one's learning rate by the schedule; any others are the method's to step inside
        `training_step` (BiGAN's discriminator). Default: SGD over every parameter."""
        c = self.config
        return [
            torch.optim.SGD(
                [p for p in self.parameters() if p.requires_grad], lr=c.lr, momentum=c.momentum,
                weight_decay=c.weight_decay, nesterov=c.nesterov,
            )
        ]

    def on_epoch_start(self, epoch: int, dataset: Any, device: torch.device) -> EpochData:
        """Called before every epoch, also the one a resumed run re-enters; returns the dataset
        to iterate this epoch. Default: the dataset's view of the epoch, `at_epoch(epoch)` (the
        mono dataset's loader crops, a labelled split's train crops), redrawn every epoch from
        (seed, epoch, i) only. DeepCluster pairs that view with fresh pseudo-labels."""
        return dataset.at_epoch(epoch)

    def outcome(self) -> dict[str, float]:
        """What the method says of its own training once it ends, recorded on the pretrain run
        (BiGAN: whether it converged). Default: nothing."""
        return {}

    def training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """A batch of the epoch's data on the device (mono samples: (B, 3, H, W)) -> (loss,
        metrics to log)."""
        raise NotImplementedError


def implementation(settings: MethodSettings) -> type[Method]:
    """The class that implements a method, named by its settings (module, class) and
    imported here, on the worker: one method's import cost is paid only where it runs."""
    module, name = settings.implementation
    return getattr(importlib.import_module(module), name)
