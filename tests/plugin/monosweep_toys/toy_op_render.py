"""The toy augmentation op's worker side: its draw and its two renders, a workers.data.ops Paint.
Without a `draw_batch`, the batched path draws it sample by sample from the same streams."""

from __future__ import annotations

import numpy as np
import torch

from workers.data.ops import Paint


def _draw(rng: np.random.Generator, settings) -> dict:
    return {"invert": bool(rng.random() < settings.p)}


def _render(image: torch.Tensor, draw: dict) -> torch.Tensor:
    """Per sample: uint8 (3, S, S)."""
    return 255 - image if draw["invert"] else image


def _paint(x: torch.Tensor, draws: dict[str, torch.Tensor]) -> torch.Tensor:
    """Batched: float (b, 3, S, S) in [0, 1], the samples it inverts."""
    return 1 - x


OP = Paint(draw=_draw, render=_render, paint=_paint, applies=lambda draws: draws["invert"])
