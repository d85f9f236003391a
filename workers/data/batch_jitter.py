"""Colour jitter on a batch, one factor per sample: torchvision's adjust_* on float images,
in few passes over memory (on a CPU the passes, not the arithmetic, are the cost)."""

from __future__ import annotations

import torch

LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def color_jitter_batch(
    x: torch.Tensor,
    brightness: torch.Tensor,
    contrast: torch.Tensor,
    saturation: torch.Tensor,
    hue: torch.Tensor,
) -> torch.Tensor:
    """augment.color_jitter with one factor per sample: float (B, 3, H, W) in [0, 1], factors
    (B,) -> jittered (B, 3, H, W). Brightness, contrast, saturation, hue in that order, each
    clamped to [0, 1], as torchvision.transforms.v2.functional's adjust_* on float images
    (the same numbers up to float rounding); each step is one pass where it can be (on a CPU
    the passes over memory, not the arithmetic, are the cost)."""
    n = len(x)
    flat = (x.reshape(n, 3, -1) * brightness.view(n, 1, 1)).clamp_(0, 1)  # (B, 3, HW)
    c = contrast.view(n, 1, 1)
    luma = torch.tensor(LUMA, device=x.device, dtype=x.dtype)
    mean = (flat.mean(2) @ luma).view(n, 1, 1)  # the mean grey level, contrast's pivot
    flat = flat.mul_(c).add_((1 - c) * mean).clamp_(0, 1)
    # Saturation blends with the pixel's grey level: s x + (1 - s) grey (a 3x3 bmm per sample
    # is the same, at three times the cost on a CPU).
    s = saturation.view(n, 1, 1)
    grey = _grey(flat).mul_(1 - s)
    flat = flat.mul_(s).add_(grey).clamp_(0, 1)
    return shift_hue(flat.view_as(x), hue)


def _grey(flat: torch.Tensor) -> torch.Tensor:
    """(B, 3, P) -> (B, 1, P): torchvision's grey level."""
    r, g, b = flat.split(1, dim=1)
    return (r * LUMA[0]).add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2])


def shift_hue(x: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of float (B, 3, H, W) in [0, 1] by `hue` (B,) turns, as torchvision's
    adjust_hue, via the closed form of HSV -> RGB: channel n (r 5, g 3, b 1) is
    max - (max - min) * clamp(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6; written as
    lerp(min, max, clamp(|w| - 1, 0, 1)) with w = k - 2 wrapped into [-3, 3).

    Only arithmetic that vectorises: on a CPU torch's where, ==, remainder and addcmul run
    10-20x slower per element than +, *, round, clamp and lerp, and one where cost more
    than the rest of the jitter. The sector tests (max == r, max == g) are 0/1 floats,
    ceil(max - c) (exact: 0 <= max - c <= 1), and lerp by an exact 0 or 1 picks a branch."""
    r, g, b = x.unbind(1)
    high = torch.maximum(torch.maximum(r, g), b)  # (B, H, W)
    low = torch.minimum(torch.minimum(r, g), b)
    delta = high - low
    not_r, not_g = (high - r).ceil_(), (high - g).ceil_()  # 1.0 where the max is elsewhere
    # 6 h x delta: the hexagon sector of the largest channel (r, then g, then b, as
    # torchvision breaks ties), then the position within it.
    h6 = torch.lerp(
        g - b, torch.lerp((b - r).add_(delta, alpha=2), (r - g).add_(delta, alpha=4), not_g), not_r
    )
    # (6 h + 6 shift) / 6, so that wrapping into [-1/2, 1/2) is v - round(v).
    turns = h6.div_(delta.clamp_min(1e-12).mul_(6)).add_(hue.view(-1, 1, 1))
    offsets = torch.tensor([3 / 6, 1 / 6, -1 / 6], device=x.device, dtype=x.dtype)  # (5, 3, 1) - 2
    v = turns.unsqueeze(1) + offsets.view(1, 3, 1, 1)  # (B, 3, H, W)
    w = v.sub_(torch.round(v)).abs_()  # |k - 2 wrapped| / 6, in [0, 1/2]
    # A weight of exactly 1 gives exactly max: the output stays within [0, 1].
    return torch.lerp(low.unsqueeze(1), high.unsqueeze(1), w.mul_(6).sub_(1).clamp_(0, 1))
