"""The mono dataset's augmentation for a whole batch at once, on the device.

The same samples as `workers.data.augment.augment` (one at a time, torchvision.transforms.v2)
up to interpolation: every parameter comes from the same per-sample streams
op_rng(seed, op, i), bit-identical (`draw_params_reference` is the scalar spec they are tested
against). What changes is how the pixels are made:

- the geometry (initial square crop -> random-resized crop to sqrt(2) x size -> rotation and
  shear about the centre -> centre crop -> flips) is one affine map per sample from output
  pixel to source pixel, so the whole batch is one affine grid + ONE `F.grid_sample`
  (bilinear) over an atlas holding every source image at a few resolutions (a mip pyramid:
  a large crop shrunk to 91 px reads a pre-filtered level instead of aliasing);
- the affine's black fill is the coverage mask torchvision's `affine` computes;
- colour jitter (brightness, contrast, saturation, hue, in that fixed order, with p) is a few
  tensor ops with one factor per sample.

The streams are numpy Generators seeded from SeedSequence([seed, op, index]); opening five per
sample costs ~60 us of Python, more than the pixels. `Streams` re-implements SeedSequence +
PCG64 + the Generator draws used here (random, uniform, integers by Lemire's method) on
arrays, so a batch's parameters cost a few numpy calls. Seeds and indices at or above 2**32
(which numpy hashes as more words) take the scalar path.

Memory: the atlas keeps every source on the device as float32 (about 21 bytes per source
pixel with its pyramid): right for the paper's N = 1..1000 photographs, not for N = ImageNet.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from contract.augmentation import AugmentConfig
from workers.data.augment import MEAN, OP_IDS, STD, crop_box, op_rng

U32 = np.uint64(0xFFFFFFFF)

# ---------------------------------------------------------------------------------------------
# numpy's SeedSequence -> PCG64 -> Generator, vectorised over streams (bit-identical).
# Constants from numpy/random/bit_generator.pyx and numpy/random/src/pcg64/pcg64.h.
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG_DEFAULT_MULTIPLIER_128
_PCG_MULT_LIMBS = [np.uint64((_PCG_MULT >> (32 * k)) & 0xFFFFFFFF) for k in range(4)]
_TWO_53 = 1.0 / 9007199254740992.0


def _hash_consts(init: int, mult: int, count: int) -> list[np.uint32]:
    """The data-independent sequence of SeedSequence's hash constants (value before each use)."""
    out, h = [], init
    for _ in range(count):
        out.append(np.uint32(h))
        h = (h * mult) & 0xFFFFFFFF
    return out


_CONSTS_A = _hash_consts(_INIT_A, _MULT_A, 4 + 12)  # 4 initial hashmixes + 12 pool mixes
_CONSTS_B = _hash_consts(_INIT_B, _MULT_B, 9)


def _seed_pool(entropy: np.ndarray) -> list[np.ndarray]:
    """SeedSequence.mix_entropy for entropy (3, n) uint32 words -> pool of 4 (n,) uint32."""
    with np.errstate(over="ignore"):
        consts = iter(_CONSTS_A)

        def hashmix(value: np.ndarray) -> np.ndarray:
            c = next(consts)
            value = value ^ c
            value = value * np.uint32((int(c) * _MULT_A) & 0xFFFFFFFF)
            return value ^ (value >> np.uint32(16))

        zero = np.zeros(entropy.shape[1], np.uint32)
        pool = [hashmix(entropy[i]) if i < len(entropy) else hashmix(zero) for i in range(4)]
        for src in range(4):
            for dst in range(4):
                if src != dst:
                    h = hashmix(pool[src])
                    r = np.uint32(_MIX_L) * pool[dst] - np.uint32(_MIX_R) * h
                    pool[dst] = r ^ (r >> np.uint32(16))
    return pool


def _generate_state(pool: list[np.ndarray]) -> list[np.ndarray]:
    """SeedSequence.generate_state(4, uint64) as 8 uint32 words per stream."""
    words = []
    with np.errstate(over="ignore"):
        for i in range(8):
            c = _CONSTS_B[i]
            v = pool[i % 4] ^ c
            v = v * np.uint32((int(c) * _MULT_B) & 0xFFFFFFFF)
            words.append(v ^ (v >> np.uint32(16)))
    return words


def _mul128(a: list[np.ndarray], m: list[np.uint64]) -> list[np.ndarray]:
    """(a * m) mod 2**128 on 4 little-endian 32-bit limbs held in uint64 arrays."""
    p = {(i, j): a[i] * m[j] for i in range(4) for j in range(4 - i)}  # each < 2**64
    out, carry = [], np.zeros_like(a[0])
    for k in range(4):
        acc = carry.copy()
        for i in range(k + 1):
            acc += p[(i, k - i)] & U32
        for i in range(k):
            acc += p[(i, k - 1 - i)] >> np.uint64(32)
        out.append(acc & U32)
        carry = acc >> np.uint64(32)
    return out


def _add128(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
    out, carry = [], np.zeros_like(a[0])
    for k in range(4):
        acc = a[k] + b[k] + carry
        out.append(acc & U32)
        carry = acc >> np.uint64(32)
    return out


class Streams:
    """n independent numpy PCG64 Generators, each seeded `np.random.default_rng([s, o, i])`,
    advanced together. Every draw takes `at`, the positions of the streams that draw."""

    def __init__(self, entropy: np.ndarray):
        """entropy: (3, n) integers in [0, 2**32), one column [seed, op id, index] per stream."""
        w = [x.astype(np.uint64) for x in _generate_state(_seed_pool(entropy.astype(np.uint32)))]
        # PCG64 seeding (pcg64_set_seed): initstate = val0 << 64 | val1, initseq = val2 << 64
        # | val3, where val_k = w[2k] | w[2k+1] << 32; limbs are listed low to high.
        initstate = [w[2], w[3], w[0], w[1]]
        initseq = [w[6], w[7], w[4], w[5]]
        inc = [(initseq[0] << np.uint64(1)) & U32 | np.uint64(1)]
        inc += [
            ((initseq[k] << np.uint64(1)) & U32) | (initseq[k - 1] >> np.uint64(31))
            for k in (1, 2, 3)
        ]
        self.inc = np.stack(inc)  # (4, n)
        state = _add128(inc, initstate)  # state 0 stepped once is inc
        self.state = np.stack(_add128(_mul128(state, _PCG_MULT_LIMBS), inc))
        self.has_half = np.zeros(entropy.shape[1], bool)  # PCG64's buffered upper 32 bits
        self.half = np.zeros(entropy.shape[1], np.uint64)

    def next64(self, at: np.ndarray) -> np.ndarray:
        s = list(self.state[:, at])
        s = _add128(_mul128(s, _PCG_MULT_LIMBS), list(self.inc[:, at]))
        self.state[:, at] = np.stack(s)
        hi, lo = s[2] | (s[3] << np.uint64(32)), s[0] | (s[1] << np.uint64(32))
        x, rot = hi ^ lo, s[3] >> np.uint64(26)  # XSL-RR output
        return (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))

    def random(self, at: np.ndarray) -> np.ndarray:
        """Generator.random(): doubles in [0, 1)."""
        return (self.next64(at) >> np.uint64(11)).astype(np.float64) * _TWO_53

    def uniform(self, at: np.ndarray, low: float, high: float) -> np.ndarray:
        return low + (high - low) * self.random(at)

    def next32(self, at: np.ndarray) -> np.ndarray:
        out = np.empty(len(at), np.uint64)
        buffered = self.has_half[at]
        out[buffered] = self.half[at[buffered]]
        fresh = at[~buffered]
        if len(fresh):
            v = self.next64(fresh)
            out[~buffered] = v & U32
            self.half[fresh] = v >> np.uint64(32)
        self.has_half[at] = ~buffered
        return out

    def integers(self, at: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Generator.integers(0, high) for int64 highs below 2**32 (Lemire's bounded method)."""
        span = np.asarray(high, np.int64) - 1  # numpy's inclusive range
        out = np.zeros(len(at), np.int64)
        draw = span > 0  # a range of one value consumes nothing
        if not draw.any():
            return out
        pos, rng = at[draw], span[draw].astype(np.uint64)
        excl = rng + np.uint64(1)
        m = self.next32(pos) * excl
        result = m >> np.uint64(32)
        threshold = (U32 - rng) % excl
        redo = (m & U32) < threshold
        while redo.any():  # rare: about span / 2**32 of the draws
            m2 = self.next32(pos[redo]) * excl[redo]
            result[redo] = m2 >> np.uint64(32)
            still = (m2 & U32) < threshold[redo]
            idx = np.flatnonzero(redo)
            redo[idx[~still]] = False
        out[draw] = result.astype(np.int64)
        return out


# ---------------------------------------------------------------------------------------------
# Parameters: the draws of augment(), for a batch of indices.


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


def uses_affine(config: AugmentConfig) -> bool:
    return config.rotation > 0 or config.shear > 0


def vflip_probability(config: AugmentConfig) -> float:
    """The vertical flip's probability (0 for configs that predate the op)."""
    return float(getattr(config, "vflip", 0.0) or 0.0)


def canvas_size(config: AugmentConfig, size: int) -> int:
    """Side of the random-resized crop: sqrt(2) x size when rotating or shearing, as augment()."""
    return round(math.sqrt(2) * size) if uses_affine(config) else size


def draw_params(
    config: AugmentConfig,
    shapes: Sequence[tuple[int, int]],
    seed: int,
    indices: Sequence[int] | np.ndarray,
) -> BatchParams:
    """The parameters augment() draws for samples `indices` (sample i uses source i mod N, whose
    (H, W) is shapes[i mod N]), from the same streams and bit-identical, computed on arrays.

    Raises:
        ValueError: no crop fits an image after 1000 tries (as augment()).
    """
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) and (seed < 0 or seed >= 2**32 or idx.min() < 0 or idx.max() >= 2**32):
        return draw_params_reference(config, shapes, seed, idx)
    n = len(idx)
    dims = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    source = idx % len(dims)
    height, width = dims[source, 0].copy(), dims[source, 1].copy()
    used = {
        "initial_crop": config.initial_crop is not None,
        "crop": config.crop_scale is not None,
        "affine": uses_affine(config),
        "hflip": config.hflip > 0,
        "vflip": vflip_probability(config) > 0,
        "jitter": config.jitter is not None and config.jitter_p > 0,
    }
    ops = [op for op, on in used.items() if on]  # seed only the streams augment() opens
    entropy = np.stack(
        [
            np.full(n * len(ops), seed),
            np.repeat([OP_IDS[o] for o in ops], n),
            np.tile(idx, len(ops)),
        ]
    )
    streams = Streams(entropy)
    at = {op: np.arange(k * n, (k + 1) * n) for k, op in enumerate(ops)}
    top0, left0 = np.zeros(n, np.int64), np.zeros(n, np.int64)

    if config.initial_crop is not None:
        side = np.maximum(1, np.rint(config.initial_crop * np.minimum(height, width))).astype(
            np.int64
        )
        top0 = streams.integers(at["initial_crop"], height - side + 1)
        left0 = streams.integers(at["initial_crop"], width - side + 1)
        height = width = side
    if config.crop_scale is not None:
        h, w = _crop_sizes(streams, at["crop"], height, width, config.crop_scale, config.crop_ratio)
        top = streams.integers(at["crop"], height - h + 1)
        left = streams.integers(at["crop"], width - w + 1)
    else:  # the largest centred square
        h = w = np.minimum(height, width)
        top, left = (height - h) // 2, (width - w) // 2

    angle, shear = np.zeros(n), np.zeros(n)
    if uses_affine(config):
        angle = streams.uniform(at["affine"], -config.rotation, config.rotation)
        shear = streams.uniform(at["affine"], -config.shear, config.shear)
    hflip, vflip = np.zeros(n, bool), np.zeros(n, bool)
    if config.hflip > 0:
        hflip = streams.random(at["hflip"]) < config.hflip
    if vflip_probability(config) > 0:
        vflip = streams.random(at["vflip"]) < vflip_probability(config)
    jitter, factors = np.zeros(n, bool), [np.ones(n), np.ones(n), np.ones(n), np.zeros(n)]
    if config.jitter is not None and config.jitter_p > 0:
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


def _crop_sizes(
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
) -> BatchParams:
    """The spec of draw_params: augment()'s own draws, one sample at a time through op_rng."""
    rows = []
    for index in (int(i) for i in indices):
        source = index % len(shapes)
        height, width = shapes[source]
        top0 = left0 = 0
        if config.initial_crop is not None:
            side = max(1, round(config.initial_crop * min(height, width)))
            rng = op_rng(seed, "initial_crop", index)
            top0, left0 = (
                int(rng.integers(0, height - side + 1)),
                int(rng.integers(0, width - side + 1)),
            )
            height = width = side
        if config.crop_scale is not None:
            top, left, h, w = crop_box(
                height, width, config.crop_scale, config.crop_ratio, op_rng(seed, "crop", index)
            )
        else:
            h = w = min(height, width)
            top, left = (height - h) // 2, (width - w) // 2
        angle = shear = 0.0
        if uses_affine(config):
            rng = op_rng(seed, "affine", index)
            angle = float(rng.uniform(-config.rotation, config.rotation))
            shear = float(rng.uniform(-config.shear, config.shear))
        hflip = config.hflip > 0 and op_rng(seed, "hflip", index).random() < config.hflip
        p_v = vflip_probability(config)
        vflip = p_v > 0 and op_rng(seed, "vflip", index).random() < p_v
        jitter, factors = False, (1.0, 1.0, 1.0, 0.0)
        if config.jitter is not None and config.jitter_p > 0:
            rng = op_rng(seed, "jitter", index)
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


# ---------------------------------------------------------------------------------------------
# Pixels: one grid-sample per batch over an atlas of the sources' mip pyramids.

CHUNK_BYTES = 2 * 2**20  # a CPU renders this much output at a time: its passes then stay in cache
PAD = (
    2  # replicated border around each atlas tile, so bilinear reads at an edge clamp as resize does
)


@dataclass(frozen=True)
class Tile:
    """Where one pyramid level of one source sits in the atlas, and its scale to level 0."""

    x: int
    y: int
    scale_x: float
    scale_y: float


def _levels(height: int, width: int, canvas: int) -> int:
    """Levels 0..L-1: enough that the largest crop (the whole image) finds its nearest level."""
    return 1 + max(0, int(round(math.log2(max(1.0, min(height, width) / canvas)))))


def build_atlas(
    images: Sequence[torch.Tensor], canvas: int
) -> tuple[torch.Tensor, list[list[Tile]]]:
    """uint8 (3, H_n, W_n) sources -> float (3, Ha, Wa) in [0, 1] and each source's tiles.

    A source's block: level 0 on the left, levels 1.. (antialiased bicubic halvings, the filter
    of augment's resized_crop) stacked on its right, each tile with a PAD-pixel replicated
    border. Blocks are packed in shelves (rows) about as wide as the atlas is tall, so many
    small sources make a square atlas, whose coordinates float32 resolves finely."""
    pyramids, blocks = [], []
    for image in images:
        image = image.expand(3, -1, -1) if image.shape[0] == 1 else image  # grey -> RGB
        x = image.float().div(255).unsqueeze(0)  # (1, 3, H, W)
        h0, w0 = image.shape[-2:]
        levels = [x]
        for k in range(1, _levels(h0, w0, canvas)):
            size = (max(1, round(h0 / 2**k)), max(1, round(w0 / 2**k)))
            levels.append(
                F.interpolate(
                    x, size=size, mode="bicubic", antialias=True, align_corners=False
                ).clamp_(0, 1)
            )
        pyramid = [F.pad(level, (PAD,) * 4, mode="replicate")[0] for level in levels]
        pyramids.append(pyramid)
        rest = pyramid[1:]
        blocks.append(
            (
                max(pyramid[0].shape[-2], sum(t.shape[-2] for t in rest)),
                pyramid[0].shape[-1] + max((t.shape[-1] for t in rest), default=0),
            )
        )
    shelf_width = max(max(w for _, w in blocks), math.isqrt(sum(h * w for h, w in blocks)))
    corners, x, y, shelf_height = [], 0, 0, 0
    for h, w in blocks:  # (top, left) of each block, filling shelves left to right
        if x + w > shelf_width:
            x, y, shelf_height = 0, y + shelf_height, 0
        corners.append((y, x))
        x, shelf_height = x + w, max(shelf_height, h)
    width = max(left + w for (_, left), (_, w) in zip(corners, blocks, strict=True))
    atlas = torch.zeros(3, y + shelf_height, width)
    tiles: list[list[Tile]] = []
    for pyramid, (top, left) in zip(pyramids, corners, strict=True):
        h0, w0 = pyramid[0].shape[-2] - 2 * PAD, pyramid[0].shape[-1] - 2 * PAD
        row, tx, ty = [], left, top
        for k, tile in enumerate(pyramid):
            th, tw = tile.shape[-2:]
            atlas[:, ty : ty + th, tx : tx + tw] = tile
            row.append(Tile(tx + PAD, ty + PAD, (tw - 2 * PAD) / w0, (th - 2 * PAD) / h0))
            if k == 0:
                tx, ty = left + tw, top  # the smaller levels go in a column on its right
            else:
                ty += th
        tiles.append(row)
    return atlas, tiles


def _inverse_affine(angle: np.ndarray, shear: np.ndarray) -> np.ndarray:
    """(B, 2, 2): torchvision's inverse rotation-shear matrix (_get_inverse_affine_matrix with
    centre 0, no translation, scale 1, shear (shear, 0)), per sample."""
    rot, sx = np.radians(angle), np.radians(shear)
    a, c = np.cos(rot), np.sin(rot)
    b = -np.cos(rot) * np.tan(sx) - np.sin(rot)
    d = -np.sin(rot) * np.tan(sx) + np.cos(rot)
    return np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2)


def _affine3(linear: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """(B, 2, 2) linear part and (B, 2) offset -> (B, 3, 3) homogeneous matrices."""
    out = np.zeros((len(linear), 3, 3))
    out[:, :2, :2], out[:, :2, 2], out[:, 2, 2] = linear, offset, 1.0
    return out


def _diag(sx: np.ndarray, sy: np.ndarray, ox: np.ndarray, oy: np.ndarray) -> np.ndarray:
    n = len(sx)
    return _affine3(
        np.stack([np.stack([sx, np.zeros(n)], -1), np.stack([np.zeros(n), sy], -1)], -2),
        np.stack([ox, oy], -1),
    )


class BatchAugmenter:
    """augment() for a batch: indices -> float (B, 3, size, size) in [0, 1], on `device`.

    The sources live on the device once (an atlas of their mip pyramids); a call draws the
    batch's parameters on the CPU (`draw_params`, a few numpy calls) and renders them with one
    affine_grid + grid_sample and the colour jitter."""

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        config: AugmentConfig,
        size: int,
        seed: int,
        device: torch.device | str = "cpu",
        compiled: bool = False,
    ):
        """`compiled` runs the pointwise tail (fill mask, colour jitter) through torch.compile:
        fused loops instead of ~20 passes over the batch; compiling takes tens of seconds once
        (and a C++ compiler on a CPU)."""
        self.config, self.size, self.seed, self.device = config, size, seed, torch.device(device)
        self.shapes = [tuple(int(s) for s in image.shape[-2:]) for image in images]
        self.canvas = canvas_size(config, size)
        atlas, self.tiles = build_atlas(images, self.canvas)
        self.atlas = atlas.to(self.device)  # (3, Ha, Wa)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.jitter = (
            torch.compile(color_jitter_batch, dynamic=True) if compiled else color_jitter_batch
        )
        self.coverage = torch.compile(coverage, dynamic=True) if compiled else coverage

    def params(self, indices: Sequence[int] | np.ndarray) -> BatchParams:
        return draw_params(self.config, self.shapes, self.seed, indices)

    def __call__(
        self, indices: Sequence[int] | np.ndarray, normalised: bool = False
    ) -> torch.Tensor:
        """Samples `indices`: float (B, 3, size, size), in [0, 1] or (`normalised`) as
        augment.to_input gives them. On a CPU the batch is rendered a cache-sized chunk at a
        time (every pass of a chunk then stays in cache); on a GPU in one go.

        Samples are rendered in the order (fill only, fill and jitter, jitter only, neither),
        so the filled samples and the jittered ones are each one slice: on a CPU, gathering
        and scattering them by index cost more than the fill itself."""
        p = self.params(indices)
        n, size = len(p), self.size
        to_source, to_canvas = self.matrices(p)
        filled = self._needs_fill(to_canvas)
        order = np.argsort(np.where(filled, p.jitter, 3 - p.jitter), kind="stable")  # 0, 1, 2, 3
        out = torch.empty(n, 3, size, size, device=self.device)
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
        fill = _run(filled)
        if fill.stop > fill.start:
            # torchvision's black fill: the canvas' sampled coverage, on the samples that reach it.
            centred = to_canvas[fill, :2].copy()
            centred[:, :, 2] -= self.canvas / 2
            theta = torch.from_numpy(centred).float().to(self.device)
            out[fill] *= self.coverage(theta, size, self.canvas / 2).unsqueeze(1)
        jitter = _run(p.jitter)
        if jitter.stop > jitter.start:
            factors = np.stack([p.brightness, p.contrast, p.saturation, p.hue], 1)[jitter]
            out[jitter] = self.jitter(
                out[jitter], *torch.from_numpy(factors).float().to(self.device).unbind(1)
            )
        return out

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
        coordinates (pixel j spans [j, j + 1)): output -> flip -> centre crop -> rotation
        and shear about the canvas centre -> resized crop -> pyramid level -> atlas."""
        n, s, c = len(p), float(self.size), float(self.canvas)
        one, zero = np.ones(n), np.zeros(n)
        from_normalised = _diag(one * s / 2, one * s / 2, one * s / 2, one * s / 2)
        flip = _diag(  # both flips mirror the final image, so their order does not matter
            np.where(p.hflip, -1.0, 1.0),
            np.where(p.vflip, -1.0, 1.0),
            np.where(p.hflip, s, 0.0),
            np.where(p.vflip, s, 0.0),
        )
        offset = float(int(round((c - s) / 2.0)))  # F.center_crop's offset
        centre_crop = _diag(one, one, one * offset, one * offset)
        rotate = _affine3(_inverse_affine(p.angle, p.shear), zero[:, None].repeat(2, 1))
        about_centre = (
            _diag(one, one, one * c / 2, one * c / 2)
            @ rotate
            @ _diag(one, one, -one * c / 2, -one * c / 2)
        )
        to_canvas = about_centre @ centre_crop @ flip @ from_normalised
        resized_crop = _diag(p.width / c, p.height / c, p.left.astype(float), p.top.astype(float))
        tiles = self._tiles(p)
        level = _diag(
            *(np.array([getattr(t, f) for t in tiles]) for f in ("scale_x", "scale_y", "x", "y"))
        )
        ha, wa = self.atlas.shape[-2:]
        to_unit = _diag(one * 2 / wa, one * 2 / ha, -one, -one)  # grid_sample's [-1, 1]
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


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(threshold: int = 32 * 2**20) -> None:
    """Let this process' malloc reuse freed blocks of up to `threshold` bytes instead of
    returning them to the kernel. A CPU batch allocates tens of 0.3-2 MB temporaries per
    chunk; glibc maps each from the kernel and unmaps it when freed (blocks above 128 KB,
    until its adaptive threshold catches up, which torch's allocation pattern defeats), so
    every call paid ~7,000 page faults: a third of its time at 64 px. Process-wide, on glibc
    only (elsewhere nothing changes); the cost is up to `threshold` more resident memory."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, threshold)
        libc.mallopt(_M_TRIM_THRESHOLD, 4 * threshold)
    except (OSError, AttributeError, TypeError):  # not glibc: no mallopt, or no libc found
        pass


def _run(mask: np.ndarray) -> slice:
    """The slice of the True entries of `mask`, which are one contiguous run.

    Raises:
        ValueError: they are not (the samples were not ordered as __call__ orders them)."""
    on = np.flatnonzero(mask)
    if not len(on):
        return slice(0, 0)
    if on[-1] - on[0] + 1 != len(on):
        raise ValueError("the samples' flags are not one contiguous run")
    return slice(int(on[0]), int(on[-1]) + 1)


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
