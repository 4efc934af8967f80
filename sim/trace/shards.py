"""SHARDS: miss-ratio curves from a spatially hashed sample (Waldspurger, Park, Garthwaite and
Ahmad, "Efficient MRC Construction with SHARDS", FAST'15).

A key is sampled when hash(key) mod P < T, rate R = T/P, so every request of a sampled key is in
the sample and its stack distance in the sample, divided by R, estimates its distance in the whole
trace. Two variants, both here:

- fixed rate (paper section 3): the sample is R of the trace; its distances come from the exact
  one-pass computation (stackdist.py), and a cache of C objects hits a sampled request of distance
  d when d / R <= C. SHARDS_adj (section 4.3): the sample's request count S differs from the
  expected N·R by chance, most of it in the first bucket, so N·R − S is added to the first bucket
  (counted as hits at every size) and the curve is normalised by N·R.
- fixed size (section 5): at most `s_max` distinct keys are tracked; when one more arrives, the
  key with the largest hash leaves and T drops to its hash, so R only falls and memory stays
  O(s_max) whatever the trace's length. Distances are scaled by the rate in force when they are
  measured, and the histogram's counts are rescaled by R_new/R_old when R drops (section 5.2), so
  that old and new samples weigh alike; here each count is added with weight 1/R instead, which is
  the same after normalising and costs nothing when R drops (rescaling is O(histogram) each time).

Owns: the sampling hash and both estimators. Touches only the arrays it is given.
Invariants: P = 2^24 (the paper's modulus); the hash is splitmix64's finaliser (Steele, Lea and
Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014), so a key's sample decision
is the same in every run and process. The fixed-size kernel keeps its state in arrays it is given
(an open-addressing table key → slot, a max-heap of slots by hash, a Fenwick tree over request
times compacted when full) and allocates nothing, so it runs compiled without reference counting
(jit.njit_kernel) and interpreted under NUMBA_DISABLE_JIT=1.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from memsim.sim.trace.chunk import TraceChunk
from memsim.sim.v8.jit import njit_kernel

__all__ = ["MODULUS", "FixedSize", "sample_hash"]

MODULUS = 1 << 24
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def sample_hash(keys: I64) -> I64:
    """hash(key) mod P for each key: splitmix64's finaliser on the key's 64 bits."""
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(MODULUS)).astype(np.int64)


# the fixed-size kernel's state cells
(S_T, S_LIVE, S_NOW, S_HEAP, S_FREE, S_LOWERED) = range(6)
NSTATE = 6
EMPTY = -1


GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 (2^64 / golden ratio) as int64: Knuth's multiplicative hash


@njit_kernel
def _home(key: int, mask: int) -> int:
    return ((key * GOLDEN) >> 32) & mask  # the product's high bits: its low bits depend on the key's low bits only


@njit_kernel
def _find(tkey: np.ndarray, tslot: np.ndarray, key: int) -> int:
    mask = len(tkey) - 1
    h = _home(key, mask)
    while tslot[h] != EMPTY:
        if tkey[h] == key:
            return h
        h = (h + 1) & mask
    return -1 - h  # not there: where it would go, encoded negative


@njit_kernel
def _delete(tkey: np.ndarray, tslot: np.ndarray, h: int) -> None:
    """Linear probing's backward-shift deletion (Knuth, TAOCP vol. 3, 6.4 Algorithm R)."""
    mask = len(tkey) - 1
    tslot[h] = EMPTY
    j = h
    while True:
        j = (j + 1) & mask
        if tslot[j] == EMPTY:
            return
        home = _home(tkey[j], mask)
        # move j back to h unless its home lies cyclically in (h, j]
        if (j > h and (home <= h or home > j)) or (j < h and home <= h and home > j):
            tkey[h] = tkey[j]
            tslot[h] = tslot[j]
            tslot[j] = EMPTY
            h = j


@njit_kernel
def _fen_add(tree: np.ndarray, i: int, v: int) -> None:
    n = len(tree) - 1
    j = i + 1
    while j <= n:
        tree[j] += v
        j += j & -j


@njit_kernel
def _fen_prefix(tree: np.ndarray, i: int) -> int:
    s = 0
    j = i + 1
    while j > 0:
        s += tree[j]
        j -= j & -j
    return s


@njit_kernel
def _heap_push(heap: np.ndarray, shash: np.ndarray, st: np.ndarray, slot: int) -> None:
    i = st[S_HEAP]
    st[S_HEAP] += 1
    heap[i] = slot
    while i > 0:
        parent = (i - 1) >> 1
        if shash[heap[parent]] >= shash[heap[i]]:
            break
        heap[parent], heap[i] = heap[i], heap[parent]
        i = parent


@njit_kernel
def _heap_pop(heap: np.ndarray, shash: np.ndarray, st: np.ndarray) -> int:
    top = heap[0]
    st[S_HEAP] -= 1
    n = st[S_HEAP]
    heap[0] = heap[n]
    i = 0
    while True:
        left = 2 * i + 1
        big = i
        if left < n and shash[heap[left]] > shash[heap[big]]:
            big = left
        if left + 1 < n and shash[heap[left + 1]] > shash[heap[big]]:
            big = left + 1
        if big == i:
            return top
        heap[big], heap[i] = heap[i], heap[big]
        i = big


@njit_kernel
def _compact(tree: np.ndarray, posslot: np.ndarray, slast: np.ndarray, st: np.ndarray) -> None:
    """Renumber the live keys' last-request times 0..live-1 in order, and rebuild the tree."""
    n = 0
    for p in range(st[S_NOW]):
        s = posslot[p]
        if s >= 0:
            posslot[p] = -1
            posslot[n] = s
            slast[s] = n
            n += 1
    for j in range(len(tree)):
        tree[j] = 0
    for p in range(n):
        _fen_add(tree, p, 1)
    st[S_NOW] = n


@njit_kernel
def _fixed_size(keys: np.ndarray, hashes: np.ndarray, start: int, s_max: int, st: np.ndarray,
                tkey: np.ndarray, tslot: np.ndarray, skey: np.ndarray, shash: np.ndarray, slast: np.ndarray,
                free: np.ndarray, heap: np.ndarray, tree: np.ndarray, posslot: np.ndarray, hist: np.ndarray) -> int:
    """Feed keys[start:] to the sample; returns the index it stopped at: len(keys) when done, or
    earlier when a scaled distance does not fit `hist` (the caller grows it and calls again)."""
    nfen = len(tree) - 1
    for i in range(start, len(keys)):
        hv = hashes[i]
        if hv >= st[S_T]:
            continue
        key = keys[i]
        h = _find(tkey, tslot, key)
        if h >= 0:
            s = tslot[h]
            d = st[S_LIVE] - _fen_prefix(tree, slast[s]) + 1
            b = (d * MODULUS) // st[S_T]  # d / R
            if b >= len(hist):
                return i
            hist[b] += MODULUS / st[S_T]
            _fen_add(tree, slast[s], -1)
            posslot[slast[s]] = -1
        else:
            hist[0] += MODULUS / st[S_T]  # a first request: a miss at every size
            s = free[st[S_FREE] - 1]
            st[S_FREE] -= 1
            h = -1 - h
            tkey[h] = key
            tslot[h] = s
            skey[s] = key
            shash[s] = hv
            _heap_push(heap, shash, st, s)
            st[S_LIVE] += 1
        if st[S_NOW] == nfen:
            _compact(tree, posslot, slast, st)
        slast[s] = st[S_NOW]
        posslot[st[S_NOW]] = s
        _fen_add(tree, st[S_NOW], 1)
        st[S_NOW] += 1
        if st[S_LIVE] > s_max:  # T drops to the largest hash tracked; that key (and any tie) leaves
            t_new = shash[heap[0]]
            st[S_T] = t_new
            st[S_LOWERED] += 1
            while st[S_HEAP] > 0 and shash[heap[0]] >= t_new:
                v = _heap_pop(heap, shash, st)
                _delete(tkey, tslot, _find(tkey, tslot, skey[v]))
                _fen_add(tree, slast[v], -1)
                posslot[slast[v]] = -1
                free[st[S_FREE]] = v
                st[S_FREE] += 1
                st[S_LIVE] -= 1
    return len(keys)


class FixedSize:
    """Fixed-size SHARDS over a stream of chunks: O(s_max) memory, one pass."""

    def __init__(self, s_max: int, hist_len: int = 1 << 12):
        if s_max < 1:
            raise ValueError(f"s_max must be at least 1, got {s_max}")
        m = s_max + 1
        self.s_max = s_max
        self.st = np.zeros(NSTATE, np.int64)
        self.st[S_T] = MODULUS
        self.st[S_FREE] = m
        tsize = 1 << int(2 * m - 1).bit_length()  # load factor <= 1/2
        self.tkey = np.zeros(tsize, np.int64)
        self.tslot = np.full(tsize, EMPTY, np.int64)
        self.skey = np.zeros(m, np.int64)
        self.shash = np.zeros(m, np.int64)
        self.slast = np.zeros(m, np.int64)
        self.free = np.arange(m - 1, -1, -1, dtype=np.int64)
        self.heap = np.zeros(m, np.int64)
        nfen = max(4 * m, 1024)
        self.tree = np.zeros(nfen + 1, np.int64)
        self.posslot = np.full(nfen, -1, np.int64)
        self.hist = np.zeros(hist_len, np.float64)
        self.requests = 0

    @property
    def rate(self) -> float:
        return int(self.st[S_T]) / MODULUS

    def feed(self, chunk: TraceChunk | I64) -> None:
        keys = chunk.key if isinstance(chunk, TraceChunk) else np.asarray(chunk, np.int64)
        self.requests += len(keys)
        h = sample_hash(keys)
        keep = h < self.st[S_T]
        k, hv = np.ascontiguousarray(keys[keep]), np.ascontiguousarray(h[keep])
        i = 0
        while (i := _fixed_size(k, hv, i, self.s_max, self.st, self.tkey, self.tslot, self.skey, self.shash,
                                self.slast, self.free, self.heap, self.tree, self.posslot, self.hist)) < len(k):
            self.hist = np.concatenate([self.hist, np.zeros(len(self.hist), np.float64)])  # grow, then resume at i

    def feed_all(self, chunks: Iterable[TraceChunk]) -> FixedSize:
        for c in chunks:
            self.feed(c)
        return self

    def miss_ratios(self, sizes: I64, adjust: bool = True) -> F64:
        """The estimated miss ratio at each cache size (objects). With `adjust`, SHARDS_adj carried
        over to this variant: each request was sampled with probability R and weighs 1/R, so the
        weights should add up to the trace's request count; the difference goes to the first
        bucket (hits at every size), as the fixed-rate adjustment does."""
        total = float(self.hist.sum())
        if total == 0:
            return np.zeros(len(sizes))
        hits = np.concatenate([[0.0], np.cumsum(self.hist[1:])])[np.minimum(sizes, len(self.hist) - 1)]
        if adjust:
            hits = hits + (self.requests - total)
            total = float(self.requests)
        return np.clip(1.0 - hits / total, 0.0, 1.0)


def fixed_rate_sample(chunks: Iterable[TraceChunk], rate: float) -> tuple[I64, int]:
    """The keys of the requests whose key is sampled at `rate`, and the trace's request count."""
    if not 0 < rate <= 1:
        raise ValueError(f"the SHARDS rate must be in (0, 1], got {rate}")
    t = round(rate * MODULUS)
    parts, n = [], 0
    for c in chunks:
        n += len(c)
        parts.append(c.key[sample_hash(c.key) < t])
    return (np.concatenate(parts) if parts else np.zeros(0, np.int64)), n
