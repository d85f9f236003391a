"""The mono dataset's generator (stage 1) for a whole batch at once, on the device.

The same samples as `workers.data.augment.augment` (one at a time, torchvision.transforms.v2)
up to interpolation: every parameter comes from the same per-sample streams, bit-identical
(workers.data.batch_params), and both run the ops of workers.data.ops.table(config). What
changes is how the pixels are made:

- the geometry (the crops' box -> resize to sqrt(2) x size -> the canvas warps (rotation and
  shear about the centre) -> centre crop -> the output warps (flips)) is one affine map per
  sample from output pixel to source pixel, each warp's batched render (`Warp.matrix`) one
  factor of it, so the whole batch is one affine grid + ONE `F.grid_sample` (bilinear) over an
  atlas holding every source image at a few resolutions (workers.data.atlas);
- where the map leaves the canvas, the black fill is the coverage mask torchvision's `affine`
  computes;
- each paint's batched render (`Paint.paint`: colour jitter, workers.data.batch_jitter, a few
  tensor ops with one factor per sample) runs on the samples it applies to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from contract.augmentation import AugmentConfig
from workers.data.atlas import Tile, build_atlas
from workers.data.augment import MEAN, STD
from workers.data.batch_params import BatchParams, draw_params
from workers.data.ops import Op, axis_aligned, canvas_size, stages, table
from workers.memory import keep_freed_memory

CHUNK_BYTES = 2 * 2**20  # a CPU renders this much output at a time: its passes then stay in cache


class BatchAugmenter:
    """augment() for a batch: indices -> float (B, 3, size, size) in [0, 1], on `device`.

    The sources live on the device once (an atlas of their mip pyramids); a call draws the
    batch's parameters on the CPU (`draw_params`, a few numpy calls) and renders them with one
    affine_grid + grid_sample, the fill and the paints."""

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        config: AugmentConfig,
        size: int,
        seed: int,
        device: torch.device | str = "cpu",
        compiled: bool = False,
    ):
        """`compiled` runs the pointwise tail (fill mask, the paints) through torch.compile:
        fused loops instead of ~20 passes over the batch; compiling takes tens of seconds once
        (and a C++ compiler on a CPU)."""
        self.config, self.size, self.seed, self.device = config, size, seed, torch.device(device)
        _, canvas_warps, output_warps, paints = stages(table(config))
        self.canvas_warps = [op for op in canvas_warps if op.on(config)]
        self.output_warps = [op for op in output_warps if op.on(config)]
        self.paints = [  # (op, its batched render)
            (op, torch.compile(op.kind.paint, dynamic=True) if compiled else op.kind.paint)
            for op in paints if op.on(config)
        ]
        self.shapes = [tuple(int(s) for s in image.shape[-2:]) for image in images]
        self.canvas = canvas_size(size)
        atlas, self.tiles = build_atlas(images, self.canvas)
        self.atlas = atlas.to(self.device)  # (3, Ha, Wa)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.coverage = torch.compile(coverage, dynamic=True) if compiled else coverage

    def params(self, indices: Sequence[int] | np.ndarray, sources: np.ndarray | None = None) -> BatchParams:
        return draw_params(self.config, self.shapes, self.seed, indices, sources)

    def __call__(
        self, indices: Sequence[int] | np.ndarray, normalised: bool = False, sources: np.ndarray | None = None
    ) -> torch.Tensor:
        """Samples `indices`: float (B, 3, size, size), in [0, 1] or (`normalised`) as
        augment.to_input gives them; `sources`: which of the atlas' images each one is made from
        (default: index mod their number). On a CPU the batch is rendered a cache-sized chunk at a
        time (every pass of a chunk then stays in cache); on a GPU in one go.

        Samples are rendered in the order (fill only, fill and jitter, jitter only, neither),
        so the filled samples and the jittered ones are each one slice: on a CPU, gathering
        and scattering them by index cost more than the fill itself. In general: the fill's
        samples and the first paint's are each one run; a later paint's are gathered by index."""
        p = self.params(indices, sources)
        n, size = len(p), self.size
        out = torch.empty(n, 3, size, size, device=self.device)
        if not n:
            return out
        to_source, to_canvas = self.matrices(p)
        filled = self._needs_fill(to_canvas)
        masks = [filled] + [self._applies(op, p) for op, _ in self.paints]
        order = np.argsort(_runs_first(masks), kind="stable")
        step = n if self.device.type == "cuda" else max(1, CHUNK_BYTES // (3 * 4 * size * size))
        for i in range(0, n, step):
            rows = order[i : i + step]
            x = self.render(p[rows], to_source[rows], to_canvas[rows], filled[rows])
            if normalised:
                normalise(x, out=x)  # in place: x is this chunk's own memory
            out.index_copy_(0, torch.from_numpy(rows).to(self.device), x)
        return out

    def render(
        self, p: BatchParams, to_source: np.ndarray, to_canvas: np.ndarray, filled: np.ndarray
    ) -> torch.Tensor:
        """Parameters, their `matrices` and where the fill shows, for samples ordered as
        __call__ orders them -> float (B, 3, size, size) in [0, 1]: a view of channel-major
        memory."""
        n, size = len(p), self.size
        grid = affine_grid(
            torch.from_numpy(to_source[:, :2]).float().to(self.device), size
        )  # (B, S, S, 2)
        # One image, one tall grid: (1, 3, Ha, Wa) sampled at (1, B * S, S) points, so the atlas
        # is never copied per sample (grid_sample makes an expanded input contiguous). Reads
        # stay within a tile and its PAD, except where the fill mask zeroes them: the padding
        # mode changes nothing, and "border" is the cheaper one.
        out = F.grid_sample(
            self.atlas[None],
            grid.view(1, n * size, size, 2),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )  # (1, 3, B * S, S)
        out = out.view(3, n, size, size).transpose(0, 1)  # (B, 3, S, S), a view
        fill = _rows(filled)
        if fill is not None:
            # torchvision's black fill: the canvas' sampled coverage, on the samples that reach it.
            centred = to_canvas[fill, :2].copy()
            centred[:, :, 2] -= self.canvas / 2
            theta = torch.from_numpy(centred).float().to(self.device)
            out[self._at(fill)] *= self.coverage(theta, size, self.canvas / 2).unsqueeze(1)
        for op, paint in self.paints:
            rows = _rows(self._applies(op, p))
            if rows is not None:
                draws = {k: _tensor(v[rows]).to(self.device) for k, v in p.draws[op.name].items()}
                out[self._at(rows)] = paint(out[self._at(rows)], draws)
        return out

    @staticmethod
    def _applies(op: Op, p: BatchParams) -> np.ndarray:
        """(B,) the samples a paint changes."""
        return op.kind.applies(p.draws[op.name]) if op.kind.applies else np.ones(len(p), bool)

    def _at(self, rows: slice | np.ndarray) -> slice | torch.Tensor:
        """Rows of a batch as a torch index: a slice (a view), or indices on the device."""
        return rows if isinstance(rows, slice) else torch.from_numpy(rows).to(self.device)

    def _needs_fill(self, to_canvas: np.ndarray) -> np.ndarray:
        """(B,) whether any output pixel centre falls within half a pixel of the canvas edge or
        beyond (then the fill shows); the map is affine, so its four corners decide."""
        s = self.size
        corners = np.array(
            [[x, y, 1.0] for x in (-1 + 1 / s, 1 - 1 / s) for y in (-1 + 1 / s, 1 - 1 / s)]
        )
        u = to_canvas[:, :2] @ corners.T  # (B, 2, 4) canvas pixels of the corner pixel centres
        return ((u < 0.5) | (u > self.canvas - 0.5)).any(axis=(1, 2))

    def matrices(self, p: BatchParams) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, 3) maps from affine_grid's normalised output coordinates to (a) the atlas'
        normalised coordinates and (b) the canvas' pixels (the space the fill mask lives in).

        The chain, read right to left, undoes augment() step by step, in pixel-edge
        coordinates (pixel j spans [j, j + 1)): output -> output warps (flips) -> centre crop
        -> canvas warps (rotation and shear about the canvas centre) -> resized crop -> pyramid
        level -> atlas."""
        n, s, c = len(p), float(self.size), float(self.canvas)
        one = np.ones(n)
        from_normalised = axis_aligned(one * s / 2, one * s / 2, one * s / 2, one * s / 2)
        offset = float(int(round((c - s) / 2.0)))  # F.center_crop's offset
        centre_crop = axis_aligned(one, one, one * offset, one * offset)
        # Each warp's map, multiplied in the order the ops apply (read right to left, the
        # product undoes them).
        chain = None
        for op in self.canvas_warps:
            warp = op.kind.matrix(p.draws[op.name], self.canvas)
            chain = warp if chain is None else chain @ warp
        chain = centre_crop if chain is None else chain @ centre_crop
        for op in self.output_warps:
            chain = chain @ op.kind.matrix(p.draws[op.name], self.size)
        to_canvas = chain @ from_normalised
        resized_crop = axis_aligned(p.width / c, p.height / c, p.left.astype(float), p.top.astype(float))
        tiles = self._tiles(p)
        level = axis_aligned(
            *(np.array([getattr(t, f) for t in tiles]) for f in ("scale_x", "scale_y", "x", "y"))
        )
        ha, wa = self.atlas.shape[-2:]
        to_unit = axis_aligned(one * 2 / wa, one * 2 / ha, -one, -one)  # grid_sample's [-1, 1]
        return to_unit @ level @ resized_crop @ to_canvas, to_canvas

    def _tiles(self, p: BatchParams) -> list[Tile]:
        """Per sample, the pyramid level nearest the crop's scale (log2 of source pixels per
        canvas pixel, rounded): bilinear reads between 0.7 and 1.4 texels per pixel there,
        which tracks augment's antialiased bicubic resize more closely (and reads fewer cache
        lines) than always taking the finer level."""
        per_pixel = np.sqrt(p.width * p.height) / self.canvas
        level = np.rint(np.log2(np.maximum(per_pixel, 1.0))).astype(int)
        pairs = zip(p.source, level, strict=True)
        return [self.tiles[src][min(k, len(self.tiles[src]) - 1)] for src, k in pairs]


def _runs_first(masks: list[np.ndarray]) -> np.ndarray:
    """(B,) sort keys under which the True samples of masks[0] are one run and those of
    masks[1] another (a later mask's are not): the samples' flags read as a reflected Gray
    code, ranked from the end (two masks: first only, both, second only, neither)."""
    rank, bit = np.zeros(len(masks[0]), np.int64), np.zeros(len(masks[0]), bool)
    for mask in masks:
        bit = bit ^ mask  # a Gray code's binary digit
        rank = 2 * rank + bit
    return (1 << len(masks)) - 1 - rank


def _rows(mask: np.ndarray) -> slice | np.ndarray | None:
    """The True entries of `mask`: a slice where they are one run, their indices otherwise,
    None where there are none."""
    on = np.flatnonzero(mask)
    if not len(on):
        return None
    return slice(int(on[0]), int(on[-1]) + 1) if on[-1] - on[0] + 1 == len(on) else on


def _tensor(values: np.ndarray) -> torch.Tensor:
    """Draws as a tensor: floats as float32."""
    t = torch.from_numpy(np.ascontiguousarray(values))
    return t.float() if t.is_floating_point() else t


def coverage(theta: torch.Tensor, size: int, half: float) -> torch.Tensor:
    """torchvision's affine fill mask: theta (b, 2, 3) maps affine_grid's output coordinates
    to canvas pixels centred on the canvas (half its side away from each edge) -> (b, S, S),
    1 inside, 0 outside, linear over the half pixel at the edge, per axis (what bilinear
    sampling of a ones channel with zero padding gives)."""
    base = torch.linspace(-1 + 1 / size, 1 - 1 / size, size, device=theta.device, dtype=theta.dtype)
    along_x = theta[:, :, 0, None] * base + theta[:, :, 2, None]  # (b, 2, S)
    along_y = theta[:, :, 1, None] * base
    u = along_x[:, :, None, :] + along_y[:, :, :, None]  # (b, 2, S, S): x and y, centred
    cover = (half + 0.5 - u.abs_()).clamp_(0, 1)
    return cover[:, 0] * cover[:, 1]


def affine_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """F.affine_grid(theta, (B, 1, size, size), align_corners=False), computed as one broadcast
    sum (the grid is separable in x and y): the same numbers, without affine_grid's batched
    matmul, which on a CPU costs as much as the sampling. theta (B, 2, 3) -> (B, S, S, 2)."""
    base = torch.linspace(-1 + 1 / size, 1 - 1 / size, size, device=theta.device, dtype=theta.dtype)
    along_x = theta[:, :, 0, None] * base + theta[:, :, 2, None]  # (B, 2, S): x and the offset
    along_y = theta[:, :, 1, None] * base  # (B, 2, S)
    grid = along_x[:, :, None, :] + along_y[:, :, :, None]  # (B, 2, S, S), fast inner dim
    return grid.permute(0, 2, 3, 1).contiguous()


def normalise(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """float [0, 1] (B, 3, H, W), any memory layout -> normalised with ImageNet statistics, as
    augment.to_input, into `out` (default: a new contiguous tensor). A multiply and an add:
    torch's addcmul with a broadcast scale is three times slower on a CPU."""
    scale = (1 / STD).to(x.device, x.dtype).unsqueeze(0)  # (1, 3, 1, 1)
    if out is None:
        out = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    return torch.mul(x, scale, out=out).add_(-MEAN.to(x.device, x.dtype).unsqueeze(0) * scale)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> uint8 [0, 255], rounded."""
    return x.mul(255).round_().clamp_(0, 255).to(torch.uint8)
