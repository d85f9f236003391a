"""The parameters of a batch of mono-dataset samples: the draws of workers.data.augment.augment,
bit-identical, on arrays.

`draw_params` seeds one vectorised stream (workers.data.streams.Streams) per active op of
workers.data.ops.OPS and sample, and draws what `augment` draws from op_rng(seed, op, i);
`draw_params_reference` is the scalar spec it is tested against (augment's own draws, one
sample at a time). Seeds and indices at or above 2**32 take the scalar path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract.augmentation import AugmentConfig
from workers.data.augment import crop_box
from workers.data.ops import active, op_rng
from workers.data.streams import Streams

# The ops draw_params draws, by name: every op of OPS (tests/workers/test_batch_augment.py).
DRAWN = ("initial_crop", "crop", "affine", "hflip", "vflip", "jitter")


@dataclass(frozen=True)
class BatchParams:
    """One row per sample. The crop box is in source-image pixels (initial crop included);
    angle and shear in degrees (0 when the affine op is off); colour factors are the identity
    (1, 1, 1, 0) where `jitter` is False."""

    source: np.ndarray  # (B,) int: which source image
    top: np.ndarray  # (B,) int
    left: np.ndarray
    height: np.ndarray
    width: np.ndarray
    angle: np.ndarray  # (B,) float
    shear: np.ndarray
    hflip: np.ndarray  # (B,) bool
    vflip: np.ndarray  # (B,) bool
    jitter: np.ndarray  # (B,) bool
    brightness: np.ndarray  # (B,) float
    contrast: np.ndarray
    saturation: np.ndarray
    hue: np.ndarray

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, rows: slice | np.ndarray) -> BatchParams:
        return BatchParams(*(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))


def draw_params(
    config: AugmentConfig,
    shapes: Sequence[tuple[int, int]],
    seed: int,
    indices: Sequence[int] | np.ndarray,
    sources: np.ndarray | None = None,
) -> BatchParams:
    """The parameters augment() draws for samples `indices` (sample i uses source i mod N, whose
    (H, W) is shapes[i mod N]; or `sources[j]` for indices[j], when a batch brings only its own
    sources), from the same streams and bit-identical, computed on arrays.

    Raises:
        ValueError: no crop fits an image after 1000 tries (as augment()).
    """
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) and (seed < 0 or seed >= 2**32 or idx.min() < 0 or idx.max() >= 2**32):
        return draw_params_reference(config, shapes, seed, idx, sources)
    n = len(idx)
    dims = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    source = idx % len(dims) if sources is None else np.asarray(sources, dtype=np.int64)
    height, width = dims[source, 0].copy(), dims[source, 1].copy()
    ops = active(config)  # seed only the streams augment() opens
    entropy = np.stack(
        [
            np.full(n * len(ops), seed),
            np.repeat([op.stream for op in ops], n),
            np.tile(idx, len(ops)),
        ]
    )
    streams = Streams(entropy)
    at = {op.name: np.arange(k * n, (k + 1) * n) for k, op in enumerate(ops)}
    top0, left0 = np.zeros(n, np.int64), np.zeros(n, np.int64)

    if "initial_crop" in at and config.initial_crop is not None:
        side = np.maximum(1, np.rint(config.initial_crop * np.minimum(height, width))).astype(
            np.int64
        )
        top0 = streams.integers(at["initial_crop"], height - side + 1)
        left0 = streams.integers(at["initial_crop"], width - side + 1)
        height = width = side
    if "crop" in at and config.crop_scale is not None:
        h, w = crop_sizes(streams, at["crop"], height, width, config.crop_scale, config.crop_ratio)
        top = streams.integers(at["crop"], height - h + 1)
        left = streams.integers(at["crop"], width - w + 1)
    else:  # the largest centred square
        h = w = np.minimum(height, width)
        top, left = (height - h) // 2, (width - w) // 2

    angle, shear = np.zeros(n), np.zeros(n)
    if "affine" in at:
        angle = streams.uniform(at["affine"], -config.rotation, config.rotation)
        shear = streams.uniform(at["affine"], -config.shear, config.shear)
    hflip, vflip = np.zeros(n, bool), np.zeros(n, bool)
    if "hflip" in at:
        hflip = streams.random(at["hflip"]) < config.hflip
    if "vflip" in at:
        vflip = streams.random(at["vflip"]) < config.vflip
    jitter, factors = np.zeros(n, bool), [np.ones(n), np.ones(n), np.ones(n), np.zeros(n)]
    if "jitter" in at and config.jitter is not None:
        jitter = streams.random(at["jitter"]) < config.jitter_p
        b, c, s, hue = config.jitter
        drawn = [
            streams.uniform(at["jitter"], lo, hi)
            for lo, hi in ((1 - b, 1 + b), (1 - c, 1 + c), (1 - s, 1 + s), (-hue, hue))
        ]
        factors = [np.where(jitter, d, f) for d, f in zip(drawn, factors, strict=True)]
    return BatchParams(
        source, top0 + top, left0 + left, h, w, angle, shear, hflip, vflip, jitter, *factors
    )


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


def draw_params_reference(
    config: AugmentConfig,
    shapes: Sequence[tuple[int, int]],
    seed: int,
    indices: Sequence[int] | np.ndarray,
    sources: np.ndarray | None = None,
) -> BatchParams:
    """The spec of draw_params: augment()'s own draws, one sample at a time through op_rng."""
    rows = []
    for j, index in enumerate(int(i) for i in indices):
        source = index % len(shapes) if sources is None else int(sources[j])
        height, width = shapes[source]
        rngs = {op.name: op_rng(seed, op.name, index) for op in active(config)}
        top0 = left0 = 0
        if "initial_crop" in rngs and config.initial_crop is not None:
            side = max(1, round(config.initial_crop * min(height, width)))
            rng = rngs["initial_crop"]
            top0, left0 = (
                int(rng.integers(0, height - side + 1)),
                int(rng.integers(0, width - side + 1)),
            )
            height = width = side
        if "crop" in rngs and config.crop_scale is not None:
            top, left, h, w = crop_box(
                height, width, config.crop_scale, config.crop_ratio, rngs["crop"]
            )
        else:
            h = w = min(height, width)
            top, left = (height - h) // 2, (width - w) // 2
        angle = shear = 0.0
        if "affine" in rngs:
            rng = rngs["affine"]
            angle = float(rng.uniform(-config.rotation, config.rotation))
            shear = float(rng.uniform(-config.shear, config.shear))
        hflip = "hflip" in rngs and rngs["hflip"].random() < config.hflip
        vflip = "vflip" in rngs and rngs["vflip"].random() < config.vflip
        jitter, factors = False, (1.0, 1.0, 1.0, 0.0)
        if "jitter" in rngs and config.jitter is not None:
            rng = rngs["jitter"]
            if rng.random() < config.jitter_p:
                b, c, s, hue = config.jitter
                jitter = True
                factors = (
                    rng.uniform(1 - b, 1 + b),
                    rng.uniform(1 - c, 1 + c),
                    rng.uniform(1 - s, 1 + s),
                    rng.uniform(-hue, hue),
                )
        rows.append(
            (source, top0 + top, left0 + left, h, w, angle, shear, hflip, vflip, jitter, *factors)
        )
    columns = list(zip(*rows, strict=True)) if rows else [()] * 14
    types = [np.int64] * 5 + [np.float64] * 2 + [bool] * 3 + [np.float64] * 4
    return BatchParams(*(np.array(c, dtype=t) for c, t in zip(columns, types, strict=True)))
