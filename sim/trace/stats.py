"""A trace's figures: requests, footprint (objects and bytes), one-hit wonders, the reuse
(stack) distance histogram and the op mix, as libCacheSim's traceAnalyzer reports them
(libCacheSim/traceAnalyzer/analyzer.cpp: n_req, n_obj, n_req_byte, n_obj_byte, one-hit ratio,
the reuse-distance and op distributions).

Owns: `TraceStats` and its computation from a stream of chunks. Touches only what it is given.
Invariants: the stream is read once; the key and size columns are kept (16 bytes a request) for
the footprint and the stack distances (stackdist.py), which need the whole trace. An object's
bytes are its size at its first request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from memsim.sim.trace.chunk import Op, TraceChunk
from memsim.sim.trace.stackdist import stack_distances

__all__ = ["TraceStats", "trace_stats"]


@dataclass(frozen=True)
class TraceStats:
    requests: int
    objects: int  # distinct keys: the footprint in objects
    footprint_bytes: int  # each object's size at its first request, summed
    request_bytes: int  # every request's size, summed
    one_hit_objects: int  # objects requested exactly once
    cold_misses: int  # first requests (= objects)
    reuse_log2: list[int]  # reuse_log2[k]: requests of stack distance in [2^k, 2^(k+1))
    ops: dict[str, int]

    @property
    def one_hit_share(self) -> float:
        """One-hit wonders among the objects (Maggs and Sitaraman, "Algorithmic Nuggets in Content
        Delivery", SIGCOMM CCR 45(3), 2015: three quarters of a CDN's objects are requested once)."""
        return self.one_hit_objects / self.objects if self.objects else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"requests": self.requests, "objects": self.objects, "footprint_bytes": self.footprint_bytes,
                "request_bytes": self.request_bytes, "one_hit_objects": self.one_hit_objects,
                "one_hit_share": round(self.one_hit_share, 6), "cold_misses": self.cold_misses,
                "reuse_distance_log2": [{"from": 1 << k, "to": (2 << k) - 1, "requests": n}
                                        for k, n in enumerate(self.reuse_log2)],
                "ops": self.ops}


def trace_stats(chunks: Iterable[TraceChunk]) -> TraceStats:
    keys, sizes = [], []
    ops = np.zeros(256, np.int64)
    for c in chunks:
        keys.append(c.key)
        sizes.append(c.size)
        ops += np.bincount(c.op.astype(np.uint8), minlength=256)
    k = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    s = np.concatenate(sizes) if sizes else np.zeros(0, np.int64)
    uniq, first, counts = np.unique(k, return_index=True, return_counts=True)
    d = stack_distances(k)
    reuse = d[d > 0]
    log2 = np.bincount(np.floor(np.log2(reuse)).astype(np.int64)) if len(reuse) else np.zeros(0, np.int64)
    names = {int(o): o.name.lower() for o in Op}
    return TraceStats(requests=len(k), objects=len(uniq), footprint_bytes=int(s[first].sum()),
                      request_bytes=int(s.sum()), one_hit_objects=int(np.count_nonzero(counts == 1)),
                      cold_misses=int(len(k) - len(reuse)), reuse_log2=log2.tolist(),
                      ops={names.get(i, str(i)): int(n) for i, n in enumerate(ops) if n})
