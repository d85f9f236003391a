"""Random-resized-crop boxes: an area fraction in `scale` and an aspect in `ratio` (log-uniform),
retried until one fits, with no centre-crop fallback, as upstream. The generator's crop op
(workers.data.ops) and the methods' loaders (workers.data.loader, batch_loader) draw them: one at
a time from a numpy Generator (`crop_box`, the spec) or for many streams at once, bit-identical
(`crop_sizes`, on workers.data.streams.Streams).
"""

from __future__ import annotations

import math

import numpy as np

from workers.data.streams import Streams


def crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop whose area fraction lies in `scale` and aspect in
    `ratio` (log-uniform), retried until it fits: no centre-crop fallback, as upstream.

    Raises:
        ValueError: no crop fits after 1000 tries (the ranges cannot be met on this image).
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(1000):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    raise ValueError(f"no crop with scale {scale} and ratio {ratio} fits a {height}x{width} image")


def crop_sizes(
    streams: Streams,
    at: np.ndarray,
    height: np.ndarray,
    width: np.ndarray,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) of crop_box()'s accepted try per stream: the same retry loop, on arrays."""
    area = (height * width).astype(np.float64)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    h, w = np.zeros(len(at), np.int64), np.zeros(len(at), np.int64)
    pending = np.arange(len(at))
    for _ in range(1000):
        if not len(pending):
            return h, w
        target = area[pending] * streams.uniform(at[pending], *scale)
        # math.exp, not np.exp: numpy's SIMD exp may differ from libm's in the last bit.
        aspect = np.array(list(map(math.exp, streams.uniform(at[pending], *log_ratio).tolist())))
        w_try = np.rint(np.sqrt(target * aspect)).astype(np.int64)
        h_try = np.rint(np.sqrt(target / aspect)).astype(np.int64)
        ok = (w_try > 0) & (w_try <= width[pending]) & (h_try > 0) & (h_try <= height[pending])
        h[pending[ok]], w[pending[ok]] = h_try[ok], w_try[ok]
        pending = pending[~ok]
    if not len(pending):
        return h, w
    i = pending[0]
    raise ValueError(
        f"no crop with scale {scale} and ratio {ratio} fits a {height[i]}x{width[i]} image"
    )
