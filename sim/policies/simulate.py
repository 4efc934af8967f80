"""The trace simulator: replay a request trace against a policy and count hits and misses.

The cache loop is the one libCacheSim, cachetools and every paper use, with unit-size
objects and a capacity in objects (the policy is a `Keyed` one: keys mapped to slots):

    for key in trace:
        if key in policy:  policy.hit(key)                       # a hit
        else:                                                     # a miss
            if len(policy) == capacity: policy.evict()            # make room
            policy.insert(key)                                    # admit on every miss

`simulate()` and `belady()` run the compiled loop (compiled.py: the policy's own kernels, ~100×
faster) when the trace is all integers and the policy has kernels; `run()`/`replay()` drive any
KeyedPolicy, step by step, in Python. Both give the same counts and victims.

`belady()` is Belady's OPT / MIN (Belady, IBM Systems Journal 1966): on a miss with a
full cache, evict the resident key whose next request is the farthest in the future (or
never comes). It needs the whole trace, so it is not a Policy; it is the lower bound
every online policy is measured against. Computed in O(n log n) with a precomputed
next-use index and a max-heap with lazy deletion.

`zipf_trace()` draws a seeded, deterministic trace from a bounded Zipf law over
`n_objects` objects (P(rank r) ∝ 1 / r^alpha, object id = rank − 1, so object 0 is the
most popular) by inverse-CDF sampling with numpy's PCG64 generator: the same arguments
give the same trace on every machine and numpy version that keeps default_rng's stream.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from memsim.sim.policies.base import POLICIES, policy_names
from memsim.sim.policies.compiled import as_trace, belady_compiled, compiled, dense_ids, replay_compiled
from memsim.sim.policies.keyed import Keyed, KeyedPolicy

__all__ = ["SimResult", "Step", "belady", "belady_misses", "make", "replay", "run", "simulate", "zipf_trace"]


@dataclass(frozen=True)
class SimResult:
    hits: int
    misses: int
    evictions: int

    @property
    def requests(self) -> int:
        return self.hits + self.misses

    @property
    def miss_ratio(self) -> float:
        return self.misses / self.requests if self.requests else 0.0


class Step(NamedTuple):
    """One request of a replay: the key, whether it hit, and the key evicted to admit it (None if none)."""

    key: Hashable
    hit: bool
    victim: Hashable | None


def make(policy_name: str, capacity: int, **options: Any) -> Keyed:
    """A fresh keyed policy by its registry name, on private storage with `capacity` slots;
    options go to its constructor (e.g. active_ratio, or slots= to hold more keys than capacity)."""
    try:
        cls = POLICIES[policy_name]
    except KeyError:
        raise KeyError(f"unknown policy {policy_name!r}; known: {', '.join(policy_names())}") from None
    return Keyed(cls(capacity, **options))


def run(policy: KeyedPolicy, trace: Iterable[Hashable], capacity: int) -> SimResult:
    """Replay trace against an existing (normally empty) policy; the owner holds at most capacity keys."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    if type(policy) is Keyed:  # the same loop with the adapter's bookkeeping inlined (2x faster)
        return SimResult(*policy.run(trace, capacity))
    hits = misses = evictions = 0
    contains, hit, insert, evict, size = policy.__contains__, policy.hit, policy.insert, policy.evict, policy.__len__
    for key in trace:
        if contains(key):
            hit(key)
            hits += 1
        else:
            misses += 1
            if size() >= capacity:
                evict()
                evictions += 1
            insert(key)
    return SimResult(hits, misses, evictions)


def simulate(policy_name: str, trace: Iterable[Hashable] | np.ndarray, capacity: int, **options: Any) -> SimResult:
    """Hits, misses and evictions of the named policy on trace with a cache of capacity objects
    (compiled when the policy has kernels and the keys are integers; options must then leave
    `slots` alone: the compiled loop sizes the policy to the capacity)."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    if compiled(policy_name) and "slots" not in options:
        trace = trace if isinstance(trace, list | np.ndarray) else list(trace)
        ids = as_trace(trace)
        if ids is not None:
            return SimResult(*replay_compiled(policy_name, dense_ids(ids)[0], capacity, **options))
    return run(make(policy_name, capacity, **options), trace, capacity)


def replay(policy: KeyedPolicy, trace: Iterable[Hashable], capacity: int) -> list[Step]:
    """Like run(), but records every request: the hit/miss sequence and each victim (for tests and teaching)."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    steps = []
    for key in trace:
        if key in policy:
            policy.hit(key)
            steps.append(Step(key, True, None))
            continue
        victim = policy.evict() if len(policy) >= capacity else None
        policy.insert(key)
        steps.append(Step(key, False, victim))
    return steps


def belady(trace: Iterable[Hashable] | np.ndarray, capacity: int) -> SimResult:
    """Belady's OPT on trace: evict the resident key whose next use is farthest (never = infinitely far)."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    ids = as_trace(trace) if isinstance(trace, list | np.ndarray) else None
    if ids is not None:
        return SimResult(*belady_compiled(dense_ids(ids)[0], capacity))
    trace = list(trace)
    n = len(trace)
    # next_use[i]: index of the next request for trace[i] after i; n + i if none, so that every
    # value is distinct (the heap never compares keys, and ties among dead keys are broken by age)
    next_use = [0] * n
    upcoming: dict[Hashable, int] = {}
    for i in range(n - 1, -1, -1):
        key = trace[i]
        next_use[i] = upcoming.get(key, n + i)
        upcoming[key] = i
    resident: dict[Hashable, int] = {}  # key -> its next use
    heap: list[tuple[int, Hashable]] = []  # (-next use, key), stale entries skipped on pop
    hits = misses = evictions = 0
    push, pop = heapq.heappush, heapq.heappop
    for i, key in enumerate(trace):
        nu = next_use[i]
        if key in resident:
            hits += 1
        else:
            misses += 1
            if len(resident) >= capacity:
                while True:
                    neg, victim = pop(heap)
                    if resident.get(victim) == -neg:
                        del resident[victim]
                        evictions += 1
                        break
        resident[key] = nu
        push(heap, (-nu, key))
    return SimResult(hits, misses, evictions)


def belady_misses(trace: Iterable[Hashable], capacity: int) -> int:
    """Misses of Belady's OPT: the fewest any replacement policy can have on this trace."""
    return belady(trace, capacity).misses


def zipf_trace(n_requests: int, n_objects: int, alpha: float, seed: int) -> list[int]:
    """n_requests object ids in [0, n_objects), drawn i.i.d. from Zipf(alpha) truncated at n_objects. Deterministic."""
    if n_objects < 1 or n_requests < 0 or alpha < 0:
        raise ValueError(f"need n_objects >= 1, n_requests >= 0, alpha >= 0 (got {n_objects}, {n_requests}, {alpha})")
    weights = np.arange(1, n_objects + 1, dtype=np.float64) ** -float(alpha)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    u = np.random.default_rng(seed).random(n_requests)
    ids = np.searchsorted(cdf, u, side="right")
    return np.minimum(ids, n_objects - 1).tolist()
