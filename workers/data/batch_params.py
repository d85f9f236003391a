"""The parameters of a batch of mono-dataset samples: the draws of workers.data.augment.augment,
bit-identical, on arrays.

`draw_params` seeds one vectorised stream (workers.data.streams.Streams) per op of
workers.data.ops.table(config) that is on, and sample, and draws what `augment` draws from
op_rng(seed, op.stream, i), with each op's `draw_batch` (an op without one draws sample by
sample from op_rng); `draw_params_reference` is the scalar spec it is tested against (each op's
own `draw`, one sample at a time). Seeds and indices at or above 2**32 take the scalar path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract.augmentation import AugmentConfig
from workers.data.ops import Crop, Draws, Op, table
from workers.data.streams import Streams


@dataclass(frozen=True)
class BatchParams:
    """One row per sample: its source image, the box of the source its crops leave (the one
    resized to the canvas), and the draws of every other op that is on, by op name."""

    source: np.ndarray  # (B,) int: which source image
    top: np.ndarray  # (B,) int
    left: np.ndarray
    height: np.ndarray
    width: np.ndarray
    draws: dict[str, Draws]

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, rows: slice | np.ndarray) -> BatchParams:
        draws = {op: {k: v[rows] for k, v in d.items()} for op, d in self.draws.items()}
        return BatchParams(self.source[rows], self.top[rows], self.left[rows], self.height[rows],
                           self.width[rows], draws)


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
    ops = [op for op in table(config) if op.on(config)]  # seed only the streams augment() opens
    entropy = np.stack(
        [
            np.full(n * len(ops), seed),
            np.repeat([op.stream for op in ops], n),
            np.tile(idx, len(ops)),
        ]
    )
    streams = Streams(entropy)
    at = {op.name: np.arange(k * n, (k + 1) * n) for k, op in enumerate(ops)}
    top, left = np.zeros(n, np.int64), np.zeros(n, np.int64)
    draws: dict[str, Draws] = {}
    for op in table(config):
        kind, settings = op.kind, op.settings(config)
        if isinstance(kind, Crop):
            if op.on(config) and kind.draw_batch is not None:
                box = kind.draw_batch(streams, at[op.name], settings, height, width)
            elif op.on(config):
                box = _columns([op.draw(config, seed, int(i), int(h), int(w))
                                for i, h, w in zip(idx, height, width, strict=True)], 4)
            elif kind.off is not None:
                box = kind.off(height, width)
            else:
                continue
            top, left, height, width = top + box[0], left + box[1], box[2], box[3]
        elif op.on(config):
            draws[op.name] = (
                kind.draw_batch(streams, at[op.name], settings) if kind.draw_batch is not None
                else _stacked(op, config, seed, idx)
            )
    return BatchParams(source, top, left, height, width, draws)


def _stacked(op: Op, config: AugmentConfig, seed: int, indices: np.ndarray) -> Draws:
    """A warp's or paint's draws, sample by sample from op_rng, as arrays."""
    rows = [op.draw(config, seed, int(i)) for i in indices]
    return {k: np.array([row[k] for row in rows]) for k in (rows[0] if rows else {})}


def _columns(rows: list[tuple], width: int) -> tuple[np.ndarray, ...]:
    """Boxes, one tuple per sample -> one int64 array per coordinate."""
    return tuple(np.array(c, dtype=np.int64) for c in (zip(*rows, strict=True) if rows else [()] * width))


def draw_params_reference(
    config: AugmentConfig,
    shapes: Sequence[tuple[int, int]],
    seed: int,
    indices: Sequence[int] | np.ndarray,
    sources: np.ndarray | None = None,
) -> BatchParams:
    """The spec of draw_params: augment()'s own draws, one sample at a time through op_rng."""
    boxes, rows = [], {}
    ops = table(config)
    for j, index in enumerate(int(i) for i in indices):
        source = index % len(shapes) if sources is None else int(sources[j])
        height, width = shapes[source]
        top = left = 0
        for op in ops:
            if isinstance(op.kind, Crop):
                if (box := op.box(config, seed, index, height, width)) is not None:
                    top, left, height, width = top + int(box[0]), left + int(box[1]), int(box[2]), int(box[3])
            elif op.on(config):
                rows.setdefault(op.name, []).append(op.draw(config, seed, index))
        boxes.append((source, top, left, height, width))
    draws = {op: {k: np.array([row[k] for row in r]) for k in r[0]} for op, r in rows.items()}
    return BatchParams(*_columns(boxes, 5), draws)
