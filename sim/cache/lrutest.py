"""A trace-level model of Redis's sampled allkeys policies, and redis-cli's --lru-test workload.

Owns no shared state: a private dictionary of keys and their 24-bit fields, driven by a virtual
clock, over evict.py's own LRU clock, LFU counter and pool, so that the model and the keyspace
run the same code. Used by tests/sim/cache/test_cache_evict.py (sampled LRU against exact LRU) and by the
cache benchmark's key generator (power_law_rand).
"""

from __future__ import annotations

import random
from collections.abc import Hashable

from memsim.sim.cache.evict import (
    DEFAULT_LFU_DECAY_TIME,
    DEFAULT_LFU_LOG_FACTOR,
    DEFAULT_SAMPLES,
    LFU_INIT_VAL,
    EvictionPool,
    estimate_idle_ms,
    lfu_decr_and_return,
    lfu_minutes,
    lfu_pack,
    lfu_touch,
    lru_clock,
)


class SampledCache:
    """Redis's allkeys-lru / allkeys-lfu / allkeys-random over a trace, with a virtual clock.

    Capacity is in keys (the lru-test's values are all the same size). Time advances by
    1 / ops_per_second per request, so that the LRU clock's one-second resolution and the
    LFU's one-minute decay see a realistic request rate. What matters is how many clock
    ticks the cache takes to turn over: a keyspace scaled down 20x from the lru-test's 1M
    keys needs a request rate scaled down as much (the default 5,000/s stands for Redis's
    ~100k/s on 1M keys). Sampling is uniform over the keys
    present (Redis's dictGetSomeKeys walks random buckets: nearly uniform for a full table).
    """

    def __init__(self, capacity: int, policy: str = "allkeys-lru", samples: int = DEFAULT_SAMPLES,
                 ops_per_second: float = 5_000.0, log_factor: int = DEFAULT_LFU_LOG_FACTOR,
                 decay_time: int = DEFAULT_LFU_DECAY_TIME, seed: int = 0):
        if policy not in ("allkeys-lru", "allkeys-lfu", "allkeys-random"):
            raise ValueError(f"unknown policy {policy!r}")
        if not 1 <= samples <= 64:
            raise ValueError("maxmemory-samples must be between 1 and 64")
        self.capacity = capacity
        self.policy = policy
        self.samples = samples
        self.dt_ms = 1000.0 / ops_per_second
        self.log_factor = log_factor
        self.decay_time = decay_time
        self.rng = random.Random(seed)
        self.pool: EvictionPool[Hashable] = EvictionPool()
        self.field: dict[Hashable, int] = {}  # key -> its 24-bit LRU/LFU field
        self.keys: list[Hashable] = []  # for O(1) uniform sampling
        self.pos: dict[Hashable, int] = {}
        self.now_ms = 0.0
        self.hits = self.misses = self.evictions = 0

    def _now(self) -> tuple[int, int]:
        return lru_clock(int(self.now_ms)), lfu_minutes(self.now_ms / 1000.0)

    def _stamp(self, key: Hashable, new: bool) -> None:
        clock, minutes = self._now()
        if self.policy == "allkeys-lfu":
            old = lfu_pack(minutes, LFU_INIT_VAL) if new else self.field[key]
            self.field[key] = old if new else lfu_touch(old, self.log_factor, self.decay_time, minutes,
                                                        self.rng.random())
        else:
            self.field[key] = clock

    def _score(self, key: Hashable) -> int:
        clock, minutes = self._now()
        if self.policy == "allkeys-lfu":
            return 255 - lfu_decr_and_return(self.field[key], self.decay_time, minutes)
        return estimate_idle_ms(self.field[key], clock)

    def _remove(self, key: Hashable) -> None:
        i = self.pos.pop(key)
        last = self.keys.pop()
        if i < len(self.keys):
            self.keys[i] = last
            self.pos[last] = i
        del self.field[key]

    def evict_one(self) -> Hashable:
        if self.policy == "allkeys-random":
            victim = self.keys[self.rng.randrange(len(self.keys))]
        else:
            victim = None
            while victim is None:
                picks = [self.keys[self.rng.randrange(len(self.keys))] for _ in range(self.samples)]
                self.pool.populate((k, self._score(k)) for k in picks)
                victim = self.pool.pop_best(self.field.__contains__)
        self._remove(victim)
        self.evictions += 1
        return victim

    def access(self, key: Hashable, write: bool = False) -> bool:
        """A GET (write=False: a miss stores nothing) or a SET. Returns whether the key was present."""
        self.now_ms += self.dt_ms
        if key in self.field:
            self.hits += 1
            self._stamp(key, new=False)
            return True
        self.misses += 1
        if write:
            while len(self.keys) >= self.capacity:
                self.evict_one()
            self.pos[key] = len(self.keys)
            self.keys.append(key)
            self._stamp(key, new=True)
        return False


def power_law_rand(rng: random.Random, lo: int, hi: int, alpha: float) -> int:
    """redis-cli's powerLawRand(): alpha 6.2 gives the 80-20 rule its --lru-test uses."""
    hi += 1
    r = rng.random()
    pl = ((hi ** (alpha + 1) - lo ** (alpha + 1)) * r + lo ** (alpha + 1)) ** (1.0 / (alpha + 1))
    return (hi - 1 - int(pl)) + lo


def lru_test_trace(n_keys: int, cycles: int, per_cycle: int = 250, seed: int = 0) -> list[tuple[int, bool]]:
    """redis-cli --lru-test: cycles of `per_cycle` SETs then `per_cycle` GETs on 80/20 keys."""
    rng = random.Random(seed)
    out: list[tuple[int, bool]] = []
    for _ in range(cycles):
        out.extend((power_law_rand(rng, 1, n_keys, 6.2), True) for _ in range(per_cycle))
        out.extend((power_law_rand(rng, 1, n_keys, 6.2), False) for _ in range(per_cycle))
    return out
