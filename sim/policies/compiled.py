"""The compiled trace replay: the simulator's cache loop, and Belady's OPT, in numba.

Owns no state: each call builds a fresh policy on private NumPy storage and runs the whole trace
in one compiled loop that calls the policy's own kernels (base.Kernels: the functions its methods
call for the VM and the cache), so the simulator, the VM and the cache run one implementation of
each policy. Policies without kernels (base.CompiledPolicy's subclasses have them) replay through
simulate.run's Python loop instead.

Keys. A trace here is an integer array. Ids that are small and non-negative (at most
DENSE_LIMIT, or 4 × the request count) index the key → slot table directly, as libCacheSim's
hash table would find them; others are first renumbered 0..k-1 by `np.unique` (O(n log n),
once per trace). A key's fingerprint (S3-FIFO's ghost) is its dense id + 1: distinct keys never
share one, and only equality matters to the ghost.

The loop is the one simulate.py documents: on a hit the policy's hit; on a miss, if the owner
holds `capacity` keys, evict (the victim's slot goes to the new key) else take the next unused
slot, then insert. Slots are handed out in the order Keyed.run hands them out, so both loops
give the same victims in the same order (tests/sim/policies/test_compiled.py, also under
NUMBA_DISABLE_JIT=1).

`belady_compiled` is OPT as simulate.belady computes it: next-use indices (n + i for "never",
so that all differ and ties among dead keys go to the oldest), then a max-heap of next uses with
lazy deletion, here an array heap in the same loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memsim.sim.machine.jit import njit, njit_generic
from memsim.sim.policies.base import POLICIES, CompiledPolicy, State, policy_names

__all__ = ["DENSE_LIMIT", "as_trace", "belady_compiled", "compiled", "dense_ids", "replay_compiled"]

DENSE_LIMIT = 1 << 24  # ids below this index a table directly (8 bytes each: 128 MiB at most)


def as_trace(trace: list[Any] | np.ndarray) -> np.ndarray | None:
    """trace as a 1-D int64 array, or None if it is not all integers (bytes keys, tuples)."""
    a = trace if isinstance(trace, np.ndarray) else np.asarray(trace)
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        return None
    if a.dtype.kind == "u" and a.size and int(a.max()) >= 1 << 63:
        return None
    return a.astype(np.int64, copy=False)


def dense_ids(trace: np.ndarray) -> tuple[np.ndarray, int]:
    """(ids in 0..k-1, k): the trace itself when its ids are small and non-negative, else renumbered."""
    if trace.size == 0:
        return trace, 0
    lo, hi = int(trace.min()), int(trace.max())
    if lo >= 0 and hi < max(DENSE_LIMIT, 4 * trace.size):
        return trace, hi + 1
    uniq, inverse = np.unique(trace, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), int(uniq.size)


def compiled(name: str) -> bool:
    """Whether the registered policy `name` replays through the compiled loop: it has kernels, and
    its four methods are CompiledPolicy's (a subclass that overrides one in Python means that one)."""
    cls = POLICIES.get(name)
    return (cls is not None and issubclass(cls, CompiledPolicy)
            and all(getattr(cls, m) is getattr(CompiledPolicy, m) for m in ("insert", "hit", "remove", "evict")))


@njit_generic
def _replay(ids: np.ndarray, n_keys: int, capacity: int, st: State, hit_st: State, insert: Any, hit: Any,
            evict: Any, victims: np.ndarray) -> tuple[int, int]:
    """(hits, evictions); victims[i] = the key evicted at request i (-1: none), if victims is long enough."""
    slot_of = np.full(n_keys, -1, np.int64)
    key_of = np.full(capacity, -1, np.int64)
    record = len(victims) >= len(ids)
    used = hits = evictions = 0
    for i in range(len(ids)):
        k = ids[i]
        s = slot_of[k]
        if s >= 0:
            hit(hit_st, s)
            hits += 1
            continue
        if used >= capacity:
            s = evict(st)
            old = key_of[s]
            slot_of[old] = -1
            evictions += 1
            if record:
                victims[i] = old
        else:
            s = used
            used += 1
        insert(st, s, k + 1)
        slot_of[k] = s
        key_of[s] = k
    return hits, evictions


def replay_compiled(name: str, trace: np.ndarray, capacity: int, *, victims: np.ndarray | None = None,
                    **options: Any) -> tuple[int, int, int]:
    """(hits, misses, evictions) of the registered compiled policy `name` on an int64 trace of DENSE
    ids (dense_ids) with a cache of `capacity` objects; options go to the policy's constructor.
    victims, if given (int64, as long as the trace, filled with -1), receives each eviction's key."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    cls = POLICIES.get(name)
    if cls is None or not issubclass(cls, CompiledPolicy) or not compiled(name):
        raise KeyError(f"{name!r} is not a compiled policy; compiled: "
                       f"{', '.join(n for n in policy_names() if compiled(n))}")
    n_keys = int(trace.max()) + 1 if trace.size else 0
    # A cache that holds every key never evicts, so its hits do not depend on how much larger it is:
    # size the policy's arrays to the keys, not to a capacity that may be far past the footprint
    # (`memsim trace replay --sizes 1000000000` on a small trace asked for gigabytes).
    capacity = min(capacity, max(n_keys, 1))
    p = cls(capacity, **options)
    k = cls.kernels
    rec = victims if victims is not None else np.empty(0, np.int64)
    hits, evictions = _replay(trace, n_keys, capacity, p.state, p.hit_state, k.insert, k.hit, k.evict, rec)
    return int(hits), int(trace.size - hits), int(evictions)


@njit
def _belady(ids: np.ndarray, n_keys: int, capacity: int) -> tuple[int, int]:
    n = len(ids)
    next_use = np.empty(n, np.int64)
    upcoming = np.full(n_keys, -1, np.int64)
    for i in range(n - 1, -1, -1):
        k = ids[i]
        nu = upcoming[k]
        next_use[i] = n + i if nu < 0 else nu
        upcoming[k] = i
    resident = np.full(n_keys, -1, np.int64)  # key -> its next use, -1: absent
    heap = np.empty(n, np.int64)  # a max-heap of next uses; a stale entry is skipped when popped
    size = hits = evictions = count = 0
    for i in range(n):
        k = ids[i]
        if resident[k] >= 0:
            hits += 1
        else:
            if count >= capacity:
                while True:
                    top = heap[0]  # pop the largest
                    size -= 1
                    last = heap[size]
                    j = 0
                    while True:
                        c = 2 * j + 1
                        if c >= size:
                            break
                        if c + 1 < size and heap[c + 1] > heap[c]:
                            c += 1
                        if heap[c] <= last:
                            break
                        heap[j] = heap[c]
                        j = c
                    if size:
                        heap[j] = last
                    victim = ids[top - n] if top >= n else ids[top]  # the key requested at that index
                    if resident[victim] == top:
                        resident[victim] = -1
                        count -= 1
                        evictions += 1
                        break
            count += 1
        nu = next_use[i]
        resident[k] = nu
        j = size  # push nu
        size += 1
        while j > 0:
            parent = (j - 1) // 2
            if heap[parent] >= nu:
                break
            heap[j] = heap[parent]
            j = parent
        heap[j] = nu
    return hits, evictions


def belady_compiled(trace: np.ndarray, capacity: int) -> tuple[int, int, int]:
    """(hits, misses, evictions) of Belady's OPT on an int64 trace of dense ids (dense_ids)."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    n_keys = int(trace.max()) + 1 if trace.size else 0
    hits, evictions = _belady(trace, n_keys, capacity)
    return int(hits), int(trace.size - hits), int(evictions)
