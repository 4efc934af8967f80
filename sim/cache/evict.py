"""Eviction, as Redis's src/evict.c: performEvictions() and what it chooses victims with.

Owns: admission (`Evictor.admit`: where a denyoom command makes room before it runs),
`maxmemory` enforcement with Redis's eight policies and the registered ones (exact.py), the
24-bit LRU clock, the 8-bit logarithmic LFU counter and the 16-entry eviction pool. Touches:
ks_evicted (its core's row), e_lru/e_expire (racy reads, as Redis's own); deletes victims through
db.py under their stripe locks, never holding one while choosing.

Why approximate. Exact LRU needs a list threaded through every key and an update of that
list on every read; Redis instead keeps 24 bits per object and, when memory is over the
limit, samples `maxmemory-samples` keys (default 5), scores them, and merges them into a
small pool of the best candidates seen so far (the pool survives between evictions, which
is what makes 5 samples nearly as good as 10: Redis's "Key eviction" documentation compares
them with exact LRU on redis-cli's --lru-test, and tests/sim/cache/test_cache_evict.py does the
same on lrutest.py's model). The cost is a few dictionary probes per eviction and no work at all
on a read beyond storing a clock value.

The 24-bit field, by policy:
    LRU   the LRU clock (seconds, wrapping every 2^24 s ≈ 194 days) of the last access
    LFU   16 bits of "last decrement time" in minutes | 8 bits of logarithmic counter
Scores (higher = better victim), as evictionPoolPopulate computes them:
    LRU   idle time in ms;   LFU   255 - decayed counter;   TTL   -(expire time);   random: n/a

Admission. Redis's processCommand() calls performEvictions() before every command flagged
denyoom and refuses it with the OOM error when that fails. Here the flag is the command table's
(commands.py: an entry's `denyoom` names the bytes the write will add and its argument check),
and the dispatcher, `Commands.execute`, is the one caller of `Evictor.admit`, after the check and
before the handler; no keyspace write admits on its own. Admission evicts until
used_memory + growth <= maxmemory, `growth` being what the write will add (the whole key, value
and entry for a new key, the difference for an existing one: t_string.py's `growth`), outside
any stripe lock (eviction takes other stripes' locks, and the lock order forbids stripe ->
stripe). When it evicted something it asks growth again: a victim may be the very key being
written, which the write then makes anew, whole. Then, if no entry is free, it evicts a key for one.

- `noeviction` (the default, as in Redis) refuses the write with Redis's exact OOM text;
- `*-random` deletes a random key (volatile: among keys with a TTL);
- `*-lru`, `*-lfu`, `volatile-ttl` sample `maxmemory-samples` keys, score them and merge them into
  this core's pool, then delete the pool's best candidate that still exists. The pool is per core
  (Redis has one because it has one thread); each core's pool sees the same shared 24-bit fields;
- a registered policy (exact.py) names its victim itself.

Bounded like Redis (`maxmemory-eviction-tenacity`, 0-100, default 10): a time budget of
50 µs × tenacity up to 10, then 500 µs × 1.15^(tenacity-10), unlimited at 100, here
multiplied by PY_SLOWDOWN because this loop is Python. Redis lets a write through when the
budget runs out and finishes on a timer; here the write is refused instead (the OOM error), so
that used_memory never ends above maxmemory because of a write that returned success. Two cores
writing at the same instant can still overshoot by one value each: the check and the write are
not one atomic step across cores. `volatile-*` with no key that has a TTL act as `noeviction`,
as in Redis.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from memsim.sim.cache.exact import FIRST_EXACT_ID, ExactPolicies
from memsim.sim.cache.layout import C_MAXMEMORY, ENTRY_BATCH, CacheConfig
from memsim.sim.errors import ResourceExhausted

K = TypeVar("K")

LRU_BITS = 24
LRU_CLOCK_MAX = (1 << LRU_BITS) - 1
LRU_CLOCK_RESOLUTION_MS = 1000
EVPOOL_SIZE = 16
LFU_INIT_VAL = 5
DEFAULT_SAMPLES = 5
DEFAULT_LFU_LOG_FACTOR = 10
DEFAULT_LFU_DECAY_TIME = 1  # minutes


# maxmemory-policy ids, as stored in the shared configuration
NOEVICTION, ALLKEYS_LRU, ALLKEYS_LFU, ALLKEYS_RANDOM, VOLATILE_LRU, VOLATILE_LFU, VOLATILE_RANDOM, VOLATILE_TTL = \
    range(8)
REDIS_POLICIES = {"noeviction": NOEVICTION, "allkeys-lru": ALLKEYS_LRU, "allkeys-lfu": ALLKEYS_LFU,
                  "allkeys-random": ALLKEYS_RANDOM, "volatile-lru": VOLATILE_LRU, "volatile-lfu": VOLATILE_LFU,
                  "volatile-random": VOLATILE_RANDOM, "volatile-ttl": VOLATILE_TTL}
LFU_POLICIES = (ALLKEYS_LFU, VOLATILE_LFU)
VOLATILE_POLICIES = (VOLATILE_LRU, VOLATILE_LFU, VOLATILE_RANDOM, VOLATILE_TTL)


# -- LRU clock -------------------------------------------------------------------------------

def lru_clock(now_ms: int) -> int:
    """getLRUClock(): the current time in LRU_CLOCK_RESOLUTION units, 24 bits."""
    return (now_ms // LRU_CLOCK_RESOLUTION_MS) & LRU_CLOCK_MAX


def estimate_idle_ms(obj_lru: int, clock: int) -> int:
    """estimateObjectIdleTime(): idle time of an object, assuming the clock wrapped at most once."""
    if clock >= obj_lru:
        return (clock - obj_lru) * LRU_CLOCK_RESOLUTION_MS
    return (clock + (LRU_CLOCK_MAX - obj_lru)) * LRU_CLOCK_RESOLUTION_MS


# -- LFU counter -----------------------------------------------------------------------------

def lfu_minutes(now_s: float) -> int:
    """LFUGetTimeInMinutes(): minutes, 16 bits."""
    return (int(now_s) // 60) & 0xFFFF


def lfu_time_elapsed(ldt: int, now_min: int) -> int:
    if now_min >= ldt:
        return now_min - ldt
    return 0xFFFF - ldt + now_min


def lfu_pack(ldt: int, counter: int) -> int:
    return ((ldt & 0xFFFF) << 8) | (counter & 0xFF)


def lfu_unpack(field24: int) -> tuple[int, int]:
    return field24 >> 8, field24 & 0xFF


def lfu_log_incr(counter: int, log_factor: int, r: float) -> int:
    """LFULogIncr(): +1 with probability 1 / ((counter - LFU_INIT_VAL) * factor + 1), saturating at 255.

    `r` is a uniform random number in [0, 1), passed in so callers control the generator."""
    if counter == 255:
        return 255
    baseval = max(counter - LFU_INIT_VAL, 0)
    p = 1.0 / (baseval * log_factor + 1)
    return counter + 1 if r < p else counter


def lfu_decr_and_return(field24: int, decay_time: int, now_min: int) -> int:
    """LFUDecrAndReturn(): the counter after one decrement per `decay_time` minutes since ldt."""
    ldt, counter = lfu_unpack(field24)
    periods = lfu_time_elapsed(ldt, now_min) // decay_time if decay_time else 0
    if periods:
        counter = 0 if periods > counter else counter - periods
    return counter


def lfu_touch(field24: int, log_factor: int, decay_time: int, now_min: int, r: float) -> int:
    """updateLFU(): decay, then log-increment, and stamp the current minute."""
    counter = lfu_decr_and_return(field24, decay_time, now_min)
    return lfu_pack(now_min, lfu_log_incr(counter, log_factor, r))


# -- the pool --------------------------------------------------------------------------------

@dataclass
class EvictionPool(Generic[K]):
    """The 16 best candidates seen so far, ascending by score (the best victim is last).

    Entries are never re-scored: a key that became hot again after it entered the pool
    keeps its old score until it is popped (Redis's evictionPoolPopulate behaves the same). Deleted
    keys are skipped when popped.
    """

    size: int = EVPOOL_SIZE
    scores: list[int] = field(default_factory=list)
    keys: list[K] = field(default_factory=list)

    def populate(self, samples: Iterable[tuple[K, int]]) -> None:
        """evictionPoolPopulate(): merge scored samples. A sample enters if there is room or it
        beats the worst entry; when the pool is full the worst (leftmost) entry drops out."""
        for key, score in samples:
            k = bisect_left(self.scores, score)  # first entry whose score is >= ours
            if len(self.scores) < self.size:
                self.scores.insert(k, score)
                self.keys.insert(k, key)
            elif k > 0:
                # Full: drop the leftmost (smallest score) and insert just before position k.
                del self.scores[0]
                del self.keys[0]
                self.scores.insert(k - 1, score)
                self.keys.insert(k - 1, key)
            # else: not better than anything in a full pool

    def pop_best(self, exists: Callable[[K], bool]) -> K | None:
        """Take the best candidate that still exists, discarding stale entries on the way."""
        while self.keys:
            self.scores.pop()
            key = self.keys.pop()
            if exists(key):
                return key
        return None

    def __len__(self) -> int:
        return len(self.keys)




# -- performEvictions() ----------------------------------------------------------------------

OOM_ERROR = "OOM command not allowed when used memory > 'maxmemory'."
PY_SLOWDOWN = 20


class OOMError(ResourceExhausted):
    """A write refused by maxmemory, before it ran: Redis counts it in rejected_calls, not as processed."""

    def __init__(self) -> None:
        super().__init__(OOM_ERROR)


def time_budget_s(tenacity: int) -> float | None:
    """Redis's evictionTimeLimitUs(), in seconds × PY_SLOWDOWN; None = unlimited."""
    if tenacity >= 100:
        return None
    us = 50.0 * tenacity if tenacity <= 10 else 500.0 * 1.15 ** (tenacity - 10)
    return us * PY_SLOWDOWN / 1e6


class EntryFields(Protocol):
    """The shared arrays the evictor reads (db.py's KeyspaceArrays has them)."""

    e_lru: np.ndarray
    e_expire: np.ndarray
    e_key: np.ndarray
    e_klen: np.ndarray
    ks_config: np.ndarray
    ks_evicted: np.ndarray


class RawReader(Protocol):
    @property
    def core(self) -> int: ...
    def raw(self, addr: int, n: int) -> bytes: ...


class Evictable(Protocol):
    """What the evictor needs of a keyspace (keyspace.py's Keyspace)."""

    @property
    def a(self) -> EntryFields: ...
    @property
    def heap(self) -> RawReader: ...
    @property
    def heap_paged(self) -> bool: ...
    @property
    def exact(self) -> ExactPolicies: ...
    def clock(self) -> int: ...
    @property
    def config(self) -> CacheConfig: ...
    def used_memory(self) -> int: ...
    def any_volatile(self) -> bool: ...
    def entry_free(self) -> bool: ...
    def exists(self, key: bytes) -> bool: ...
    def key_of(self, e: int) -> bytes: ...
    def evict(self, key: bytes, volatile: bool) -> bool: ...
    def sample_entries(self, rng: random.Random, n: int, volatile: bool = False) -> list[int]: ...


class Evictor:
    """performEvictions() for one core's keyspace, with this core's pool and random generator."""

    def __init__(self, ks: Evictable, seed: int | None = None):
        self.ks = ks
        self._config = ks.a.ks_config.data  # needed() reads maxmemory before every write: a plain int
        self.pool: EvictionPool[bytes] = EvictionPool()
        self.rng = random.Random(seed)

    def needed(self) -> bool:
        """Whether admit() could do anything: a maxmemory is set, or no entry is free (a new key
        would need one evicted). Neither: admit() asks nothing of the command, so it may be skipped."""
        return bool(self._config[C_MAXMEMORY]) or not self.ks.entry_free()

    def admit(self, growth: Callable[[], int], creates: Callable[[], bool]) -> None:
        """Before a denyoom command (its one caller is Commands.execute): make room for what it will add
        (growth() is asked only when maxmemory is set), then an entry if it will make a key (creates())
        and none is free. Caller holds no stripe lock."""
        if int(self.ks.a.ks_config[C_MAXMEMORY]):
            incoming = growth()
            if self.make_room(incoming) and (again := growth()) > incoming:
                # It evicted the very key being written, whose growth was only the difference of its
                # values: the write now makes the key anew, so room for all of it.
                self.make_room(again)
        if not self.ks.entry_free() and creates():
            self.entry_room()

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
            key = self._victim(cfg)
            if key is None:  # nothing evictable (e.g. volatile-* and no key has a TTL)
                raise OOMError()
            if self.ks.evict(key, volatile):
                evicted += 1
                self._count(cfg.policy)
            else:
                misses += 1  # gone, or lost its TTL, since it was sampled
                if misses > 1000:
                    raise OOMError()
        return evicted

    def shrink_to_limit(self) -> int:
        """Evict down to maxmemory now (CONFIG SET lowering it, and the cron), as Redis's
        performEvictions() does from its timer once a limit is lowered. Bounded by tenacity; what is
        left is done by the next call. Returns keys evicted."""
        limit = int(self.ks.a.ks_config[C_MAXMEMORY])
        if not limit or self.ks.used_memory() <= limit:
            return 0
        try:
            return self.make_room(0)
        except ResourceExhausted:
            return 0  # noeviction, or the time budget ran out: writes keep being refused until it is done

    def entry_room(self) -> None:
        """A new key needs an entry: when none is free (here or in the shared stack) and the policy
        evicts, evict keys for one, as running out of index is running out of memory."""
        if self.ks.entry_free() or self.ks.config.policy == NOEVICTION:
            return  # noeviction: taking the entry will say the keyspace is full
        for _ in range(ENTRY_BATCH):
            if self.ks.entry_free() or not self.evict_one():
                return

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
            key = self._victim(cfg)
            if key is None:
                return False
            if self.ks.evict(key, volatile):
                self._count(cfg.policy)
                return True
        return False

    def _count(self, policy: int) -> None:
        self.ks.a.ks_evicted[self.ks.heap.core, policy] += 1

    # -- choosing a victim ---------------------------------------------------------------

    def _victim(self, cfg: CacheConfig) -> bytes | None:
        return self._registered_victim() if cfg.policy >= FIRST_EXACT_ID else self._sampled_victim(cfg)

    def _registered_victim(self) -> bytes | None:
        """The registered policy's victim (exact.py): its key, read under the policy lock, or None if empty."""
        ks = self.ks
        if not ks.heap_paged:
            return ks.exact.evict_entry(ks.key_of)
        # A heap in an address space reads through the VM (its locks, maybe swap I/O): not inside a leaf
        # lock. Read after it: a stale read names a key the evictor then fails to find, or evicts anew.
        where = ks.exact.evict_entry(lambda e: (int(ks.a.e_key[e]), int(ks.a.e_klen[e])))
        if where is None:
            return None
        addr, klen = where
        return ks.heap.raw(addr, klen) if klen and addr else None

    def _sampled_victim(self, cfg: CacheConfig) -> bytes | None:
        ks, a = self.ks, self.ks.a
        policy = cfg.policy
        volatile = policy in VOLATILE_POLICIES
        if policy in (ALLKEYS_RANDOM, VOLATILE_RANDOM):
            for _ in range(16):
                picks = ks.sample_entries(self.rng, 1, volatile)
                if not picks:
                    return None
                key = ks.key_of(picks[0])
                if key:  # empty: the entry was freed between the sample and the read
                    return key
            return None
        for _ in range(16):  # Redis loops until the pool yields a key that still exists
            picks = ks.sample_entries(self.rng, cfg.samples, volatile)
            if not picks:
                return None
            now = ks.clock()
            clock, minutes = lru_clock(now), lfu_minutes(now / 1000.0)
            scored = []
            for e in picks:
                lru = int(a.e_lru[e])
                if policy in LFU_POLICIES:
                    score = 255 - lfu_decr_and_return(lru, cfg.lfu_decay_time, minutes)
                elif policy == VOLATILE_TTL:
                    score = -int(a.e_expire[e])  # the sooner the expiry, the better the victim
                else:
                    score = estimate_idle_ms(lru, clock)
                key = ks.key_of(e)
                if key:
                    scored.append((key, score))
            self.pool.populate(scored)
            best = self.pool.pop_best(ks.exists)
            if best is not None:
                return best
        return None
