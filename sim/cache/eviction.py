"""performEvictions(): keeping the keyspace under `maxmemory`, with Redis's eight policies.

Before every write a core calls `Evictor.make_room(incoming)`, outside any stripe lock, as
Redis calls performEvictions() before every command. While used_memory + incoming would
pass maxmemory it evicts one key at a time:

- `noeviction` (the default, as in Redis) refuses the write with Redis's exact OOM text;
- `*-random` deletes a random key (volatile: among keys with a TTL);
- `*-lru`, `*-lfu`, `volatile-ttl` sample `maxmemory-samples` keys, score them (idle time,
  255 - decayed LFU counter, soonest expiry) and merge them into this core's 16-entry pool
  (`evict.py`), then delete the pool's best candidate that still exists.

Sampling is the keyspace's dictGetSomeKeys() (`Keyspace.sample_entries`): a random bucket,
then the chains of the buckets after it. The pool is per core (Redis has
one because it has one thread); each core's pool sees the same shared 24-bit fields.

Bounded like Redis (`maxmemory-eviction-tenacity`, 0-100, default 10): a time budget of
50 µs × tenacity up to 10, then 500 µs × 1.15^(tenacity-10), unlimited at 100, here
multiplied by PY_SLOWDOWN because this loop is Python. Redis lets a write through when the
budget runs out and finishes on a timer; here the write is refused instead (OOM error), so
that used_memory never ends above maxmemory because of a write that returned success
(ANCHORS §1; issue 3). Two cores writing at the same instant can still overshoot by one
value each: the check and the write are not one atomic step across cores.

`volatile-*` with no key that has a TTL act as `noeviction`, as in Redis.
"""

from __future__ import annotations

import random
import time

from memsim.sim.cache.evict import (
    ALLKEYS_RANDOM,
    LFU_POLICIES,
    NOEVICTION,
    VOLATILE_POLICIES,
    VOLATILE_RANDOM,
    VOLATILE_TTL,
    EvictionPool,
    estimate_idle_ms,
    lfu_decr_and_return,
    lfu_minutes,
    lru_clock,
)
from memsim.sim.cache.exact import FIRST_EXACT_ID
from memsim.sim.cache.keyspace import Keyspace
from memsim.sim.errors import ResourceExhausted

OOM_ERROR = "OOM command not allowed when used memory > 'maxmemory'."


class OOMError(ResourceExhausted):
    """A write refused by maxmemory, before it ran: Redis counts it in rejected_calls, not as processed."""

    def __init__(self) -> None:
        super().__init__(OOM_ERROR)
PY_SLOWDOWN = 20



def time_budget_s(tenacity: int) -> float | None:
    """Redis's evictionTimeLimitUs(), in seconds × PY_SLOWDOWN; None = unlimited."""
    if tenacity >= 100:
        return None
    us = 50.0 * tenacity if tenacity <= 10 else 500.0 * 1.15 ** (tenacity - 10)
    return us * PY_SLOWDOWN / 1e6


class Evictor:
    def __init__(self, ks: Keyspace, seed: int | None = None):
        self.ks = ks
        self.pool = EvictionPool()
        self.rng = random.Random(seed)

    def make_room(self, incoming: int) -> int:
        """Evict until used_memory + incoming <= maxmemory. Returns keys evicted; raises the OOM error."""
        cfg = self.ks.config
        limit = cfg.maxmemory
        if limit == 0 or self.ks.used_memory() + incoming <= limit:
            return 0
        if cfg.policy == NOEVICTION or incoming > limit:  # a write bigger than maxmemory: evict nothing for it
            raise OOMError()
        volatile = cfg.policy in VOLATILE_POLICIES
        if volatile and not self.ks.any_volatile():
            raise OOMError()  # no key has a TTL: nothing to sample for, refuse at once
        budget = time_budget_s(cfg.tenacity)
        t0 = time.perf_counter()
        evicted = 0
        misses = 0
        while self.ks.used_memory() + incoming > limit:
            # Like Redis, look at the clock every 16 evicted keys, not before the first one.
            if budget is not None and evicted and evicted % 16 == 0 and time.perf_counter() - t0 > budget:
                raise OOMError()
            key = self.ks.exact_victim() if cfg.policy >= FIRST_EXACT_ID else self._choose(cfg)
            if key is None:  # nothing evictable (e.g. volatile-* and no key has a TTL)
                raise OOMError()
            if self.ks.evict(key, volatile):
                evicted += 1
                self.ks.count_eviction(cfg.policy)
            else:
                misses += 1  # gone, or lost its TTL, since it was sampled
                if misses > 1000:
                    raise OOMError()
        return evicted

    def evict_one(self) -> bool:
        """Evict one key by the current policy, whatever used_memory is (a full keyspace needs an
        entry). False if the policy has nothing to evict."""
        cfg = self.ks.config
        if cfg.policy == NOEVICTION:
            return False
        volatile = cfg.policy in VOLATILE_POLICIES
        if volatile and not self.ks.any_volatile():
            return False
        for _ in range(16):
            key = self.ks.exact_victim() if cfg.policy >= FIRST_EXACT_ID else self._choose(cfg)
            if key is None:
                return False
            if self.ks.evict(key, volatile):
                self.ks.count_eviction(cfg.policy)
                return True
        return False

    # -- choosing a victim ---------------------------------------------------------------

    def _sample(self, volatile: bool, n: int) -> list[int]:
        return self.ks.sample_entries(self.rng, n, volatile)

    def _choose(self, cfg) -> bytes | None:
        ks, a = self.ks, self.ks.a
        policy = cfg.policy
        volatile = policy in VOLATILE_POLICIES
        if policy in (ALLKEYS_RANDOM, VOLATILE_RANDOM):
            for _ in range(16):
                picks = self._sample(volatile, 1)
                if not picks:
                    return None
                key = ks.key_of(picks[0])
                if key:  # empty: the entry was freed between the sample and the read
                    return key
            return None
        for _ in range(16):  # Redis loops until the pool yields a key that still exists
            picks = self._sample(volatile, cfg.samples)
            if not picks:
                return None
            now = ks.clock()
            clock, minutes = lru_clock(now), lfu_minutes(now / 1000.0)
            scored = []
            for e in picks:
                field = int(a.e_lru[e])
                if policy in LFU_POLICIES:
                    score = 255 - lfu_decr_and_return(field, cfg.lfu_decay_time, minutes)
                elif policy == VOLATILE_TTL:
                    score = -int(a.e_expire[e])  # the sooner the expiry, the better the victim
                else:
                    score = estimate_idle_ms(field, clock)
                key = ks.key_of(e)
                if key:
                    scored.append((key, score))
            self.pool.populate(scored)
            key = self.pool.pop_best(ks.exists)
            if key is not None:
                return key
        return None
