"""The loss-falls check every method test shares: a few optimiser steps on one fixed batch."""

from __future__ import annotations

from typing import Any

import torch


def fit(method: Any, optimizer: torch.optim.Optimizer, batch: Any, steps: int) -> tuple[list[float], dict[str, float]]:
    """`steps` SGD steps of `method.training_step` on `batch`; (the losses, the last metrics)."""
    method.train()
    losses, metrics = [], {}
    for _ in range(steps):
        loss, metrics = method.training_step(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, metrics
