"""numpy's SeedSequence -> PCG64 -> Generator, vectorised over streams (bit-identical).

The mono dataset's streams are numpy Generators seeded from SeedSequence([seed, op, index])
(workers.data.ops.op_rng); opening five per sample costs ~60 us of Python, more than the
pixels. `Streams` re-implements SeedSequence + PCG64 + the Generator draws used by the
augmentation (random, uniform, integers by Lemire's method) on arrays, so a batch's parameters
cost a few numpy calls. Entropy words must be below 2**32 (numpy hashes larger ones as more
words; callers take the scalar path for those).

Constants from numpy/random/bit_generator.pyx and numpy/random/src/pcg64/pcg64.h.
"""

from __future__ import annotations

import numpy as np

U32 = np.uint64(0xFFFFFFFF)

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
        """entropy: (k, n) integers in [0, 2**32), k <= 4, one column per stream: [seed, op id,
        index] (an op's stream) or [seed, LOADER_STREAM, epoch, index] (a loader view's)."""
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
