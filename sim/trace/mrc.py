"""Miss-ratio curves: miss ratio against cache size (objects) for LRU, exact in one pass or
estimated by SHARDS.

Owns: the curve record (`Curve`), the choice of sizes, the exact curve from stack distances
(stackdist.py), the two SHARDS estimators' curves (shards.py) and their error against the exact
one (mean absolute error over the sizes, the paper's measure).
Invariants: sizes are whole objects, ascending, at least 1; the exact curve's miss counts equal a
separate LRU run at each size (tests/sim/trace/test_mrc.py checks it against sim/policies).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memsim.sim.trace.chunk import TraceChunk
from memsim.sim.trace.shards import FixedSize, fixed_rate_sample
from memsim.sim.trace.stackdist import stack_distances

__all__ = ["Curve", "default_sizes", "exact", "mae", "misses_at", "shards_rate", "shards_size"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
DEFAULT_POINTS = 100


@dataclass(frozen=True)
class Curve:
    """A miss-ratio curve: `miss_ratio[i]` at `sizes[i]` objects."""

    method: str  # "exact", "shards-rate" or "shards-size"
    sizes: I64
    miss_ratio: F64
    requests: int
    footprint: float  # distinct keys (estimated by SHARDS)
    rate: float = 1.0  # SHARDS' sampling rate (the final one for fixed size)
    misses: I64 | None = field(default=None)  # exact miss counts (the exact method only)

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"method": self.method, "requests": self.requests, "footprint": self.footprint,
                                "rate": self.rate, "sizes": self.sizes.tolist(),
                                "miss_ratio": [round(float(x), 6) for x in self.miss_ratio]}
        if self.misses is not None:
            d["misses"] = self.misses.tolist()
        return d


def default_sizes(footprint: float, points: int = DEFAULT_POINTS) -> I64:
    """`points` sizes evenly spaced up to the footprint (fewer when the footprint is smaller)."""
    top = max(int(np.ceil(footprint)), 1)
    return np.unique(np.linspace(top / points, top, points).round().astype(np.int64).clip(1, None))


def _check_sizes(sizes: npt.ArrayLike) -> I64:
    s = np.unique(np.asarray(sizes, np.int64))
    if len(s) == 0 or s[0] < 1:
        raise ValueError("cache sizes must be whole objects, at least 1")
    return s


def misses_at(distances: I64, sizes: I64) -> I64:
    """LRU's misses at each size from the requests' stack distances (0 = a first request)."""
    hist = np.bincount(distances, minlength=1)  # an empty trace (or SHARDS sample) has no hits, not no row
    cum = np.cumsum(hist)
    hits = cum[np.minimum(sizes, len(hist) - 1)] - hist[0]
    return len(distances) - hits


def exact(keys: npt.ArrayLike, sizes: npt.ArrayLike | None = None, points: int = DEFAULT_POINTS) -> Curve:
    """The exact LRU curve of a key column (held in memory: 28 bytes a request while it runs)."""
    k = np.ascontiguousarray(keys, dtype=np.int64)
    d = stack_distances(k)
    footprint = int(np.count_nonzero(d == 0))
    s = default_sizes(footprint, points) if sizes is None else _check_sizes(sizes)
    m = misses_at(d, s)
    return Curve("exact", s, m / max(len(k), 1), len(k), footprint, 1.0, m)


def shards_rate(chunks: Iterable[TraceChunk], rate: float, sizes: npt.ArrayLike | None = None,
                points: int = DEFAULT_POINTS, adjust: bool = True) -> Curve:
    """Fixed-rate SHARDS: memory is the sample's (rate × the trace), one pass over the chunks."""
    sample, n = fixed_rate_sample(chunks, rate)
    d = stack_distances(sample)
    cold = int(np.count_nonzero(d == 0))
    footprint = cold / rate
    s = default_sizes(footprint, points) if sizes is None else _check_sizes(sizes)
    expected = n * rate
    hist = np.bincount(d, minlength=1)  # a sample can be empty: a short trace at a low rate
    cum = np.cumsum(hist)
    reach = np.floor(s * rate).astype(np.int64)  # a sampled distance d is d / rate in the trace
    hits = (cum[np.minimum(reach, len(hist) - 1)] - hist[0]).astype(np.float64)
    total = float(len(sample))
    if adjust:  # SHARDS_adj: the shortfall (or excess) of the sample, in the first bucket
        hits = hits + (expected - total)
        total = expected
    mr = np.clip(1.0 - hits / total, 0.0, 1.0) if total > 0 else np.zeros(len(s))
    return Curve("shards-rate", s, mr, n, footprint, rate)


def shards_size(chunks: Iterable[TraceChunk], s_max: int, sizes: npt.ArrayLike | None = None,
                points: int = DEFAULT_POINTS) -> Curve:
    """Fixed-size SHARDS: at most s_max keys tracked, memory O(s_max) whatever the trace's length."""
    fs = FixedSize(s_max).feed_all(chunks)
    footprint = float(fs.hist[0])  # first requests, each weighted 1/R: the estimated distinct keys
    s = default_sizes(footprint, points) if sizes is None else _check_sizes(sizes)
    return Curve("shards-size", s, fs.miss_ratios(s), fs.requests, footprint, fs.rate)


def mae(a: Curve, b: Curve) -> float:
    """Mean absolute error between two curves over the same sizes (SHARDS' measure, section 6)."""
    if not np.array_equal(a.sizes, b.sizes):
        raise ValueError("the curves are over different sizes")
    return float(np.mean(np.abs(a.miss_ratio - b.miss_ratio)))
