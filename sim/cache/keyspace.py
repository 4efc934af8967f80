"""The keyspace: Redis's main dictionary as a shared-memory hash table with striped locks.

Any core serves any key. A key hashes (BLAKE2b, 64 bits: Python's own hash is salted per
process) to a bucket; bucket b belongs to stripe b % STRIPES, and that stripe's lock guards
the bucket's chain and every entry on it. An operation on one key takes its stripe's lock; one
on many (MSET, FLUSHALL, a policy switch) takes theirs in ascending order, so stripes cannot
deadlock with each other. Free entries come from one shared stack under the
`keyspace/entries` lock, moved in batches to a per-core list (the mcache pattern again: a new
key takes that lock once per ENTRY_BATCH keys). Lock order: stripe -> entries -> mcentral ->
mheap, never the other way round; `keyspace/policy` (exact.py) is a leaf taken inside a stripe.
(A pool per stripe would need no extra lock but caps a stripe at max_keys / STRIPES entries;
an ordinary fill overflows one stripe long before the table is full.)

GET takes no lock at all when it can: each stripe's lock is a seqlock (SeqStripe), and a read
that saw no writer come and go keeps its result. A lock pair is two fcntl calls, about a
third of a GET's cost.

An entry (arrays `e_*`, index e) holds: the key's hash, the key and the value as allocator
objects (address and length; a zero-length value has no object), the expiry time in ms
(0 = none) and the 24-bit LRU/LFU field of `evict.py`. Entries are never moved, so an entry
index is a stable handle for sampling. Keys and values are allocated by the core that
writes them and may be freed by any core (the allocator's cross-core frees).

`used_memory` is Redis's: the allocator's usable size of every key and value object plus
ENTRY_BYTES per key for the index, kept in per-core counters (a core adds what it allocates
and subtracts what it frees; rows may go negative, their sum is exact).
"""

from __future__ import annotations

import hashlib
import platform
import random
import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from memsim.sim.alloc.heap import Heap
from memsim.sim.alloc.owners import CACHE_ENTRY
from memsim.sim.alloc.sizeclasses import MAX_SMALL_SIZE, PAGE_SIZE, TINY_SIZE
from memsim.sim.cache.evict import LFU_INIT_VAL, LFU_POLICIES, lfu_minutes, lfu_pack, lfu_touch, lru_clock
from memsim.sim.cache.exact import FIRST_EXACT_ID, ExactPolicies, exact_specs, fingerprint
from memsim.sim.cache.exact import PREFIX as EXACT_PREFIX
from memsim.sim.cache.glob import MatchBudgetSpent
from memsim.sim.errors import InvalidArgument, ResourceExhausted
from memsim.sim.machine.locks import LockTable, SharedLock
from memsim.sim.machine.shm import ArraySpec

STRIPES = 64
ENTRY_BYTES = 48  # what one index entry would cost in a C layout: 5 words + 24-bit field + next
# Redis allows 512 MiB (proto-max-bulk-len); here one value is one allocator object moved by one
# heap write, and a command crosses gRPC in one message, so both stop at the heap's 16 MiB.
MAX_KEY_BYTES = 16 << 20
MAX_VALUE_BYTES = 16 << 20
MAX_EXPIRE_MS = (1 << 63) - 1

# ks_core columns (per core): what this core added to used_memory and the key count (rows may be
# negative, their sum is exact), and Redis's INFO stats counted by this core
K_USED_BYTES, K_KEYS, K_HITS, K_MISSES, K_EXPIRED, K_COMMANDS, K_REJECTED, K_READ_RETRIES = range(8)
STAT_COLUMNS = (K_HITS, K_MISSES, K_EXPIRED, K_COMMANDS, K_REJECTED, K_READ_RETRIES)  # CONFIG RESETSTAT zeroes these
MAX_POLICIES = 16  # columns of ks_evicted: Redis's 8 policies, then memsim's (config.py names them)
# ks_gauge: [G_PEAK] used_memory_peak; [G_EXACT] the exact policy laid out in the kspol_ arrays (-1: none)
G_PEAK, G_EXACT = 0, 1
INST_SAMPLES = 16  # Redis's STATS_METRIC_SAMPLES: instantaneous_ops_per_sec averages 16 samples


def keyspace_specs(max_keys: int, ncores: int) -> list[ArraySpec]:
    per = -(-max_keys // STRIPES)
    n = per * STRIPES
    nbuckets = 1 << max(4, (n - 1).bit_length())
    return [
        ArraySpec("ks_bucket", "int32", (nbuckets,)),
        ArraySpec("e_hash", "uint64", (n,)),
        ArraySpec("e_key", "uint64", (n,)),
        ArraySpec("e_klen", "uint32", (n,)),
        ArraySpec("e_val", "uint64", (n,)),
        ArraySpec("e_vlen", "uint32", (n,)),
        ArraySpec("e_expire", "int64", (n,)),
        ArraySpec("e_lru", "uint32", (n,)),
        ArraySpec("e_next", "int32", (n,)),
        ArraySpec("ks_free", "int32", (n,)),  # the stack of free entry indices
        ArraySpec("ks_free_top", "int64", (8,)),  # [0]: entries on the stack; [1]: the expire cursor
        ArraySpec("ks_core", "int64", (ncores, 8)),
        ArraySpec("ks_evicted", "int64", (ncores, MAX_POLICIES)),  # evicted keys per core, by policy id
        ArraySpec("ks_gauge", "int64", (8,)),
        # per core: [0] next sample, [1] time of the last (ms), [2] commands then, [3:] ops/s samples
        ArraySpec("ks_inst", "int64", (ncores, 3 + INST_SAMPLES)),
        ArraySpec("ks_config", "int64", (16,)),  # see CONFIG_FIELDS
        ArraySpec("ks_seq", "int64", (STRIPES,)),  # each stripe's seqcount (SeqStripe)
        *exact_specs(n),  # memsim's exact/modern policies over the entries (exact.py)
    ]


# ks_config columns: Redis's memory settings, settable at run time from any core (CONFIG SET).
CONFIG_FIELDS = ("maxmemory", "policy", "samples", "lfu_log_factor", "lfu_decay_time", "tenacity", "expire_effort")
CONFIG_DEFAULTS = {"maxmemory": 0, "policy": 0, "samples": 5, "lfu_log_factor": 10, "lfu_decay_time": 1,
                   "tenacity": 10, "expire_effort": 1}
CONFIG_PARAMS = {"maxmemory": "maxmemory", "policy": "maxmemory-policy", "samples": "maxmemory-samples",
                 "lfu_log_factor": "lfu-log-factor", "lfu_decay_time": "lfu-decay-time",
                 "tenacity": "maxmemory-eviction-tenacity", "expire_effort": "active-expire-effort"}
CONFIG_RANGES = {"maxmemory": (0, 1 << 62), "policy": (0, 14), "samples": (1, 64), "lfu_log_factor": (0, 1 << 31),
                 "lfu_decay_time": (0, 1 << 31), "tenacity": (0, 100), "expire_effort": (1, 10)}


@dataclass(frozen=True)
class CacheConfig:
    maxmemory: int
    policy: int
    samples: int
    lfu_log_factor: int
    lfu_decay_time: int
    tenacity: int
    expire_effort: int


ENTRY_BATCH = 32
SAMPLE_WINDOW = 256  # buckets looked at per step of a sample


def keyspace_lock_names() -> list[str]:
    return [f"keyspace/{s}" for s in range(STRIPES)] + ["keyspace/entries", "keyspace/policy"]


def maxmemory_over_heap(value: int, heap_bytes: int) -> str | None:
    """Why `value` cannot be the cache's maxmemory on a heap of `heap_bytes`, or None if it can.
    The one rule for CONFIG SET and for a machine's configuration at start.

    Redis takes any value and lets the OS's OOM killer decide; this machine's memory is known,
    and a limit above it would only make writes fail with the allocator's error, evicting nothing.
    """
    if value > heap_bytes:
        return f"{value} bytes is more than this machine's heap of {heap_bytes} bytes"
    return None


def key_hash(key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


_INT64_TEXT = re.compile(rb"0|-?[1-9][0-9]*")  # Redis string2ll: no "-0", no leading zeros
# Redis's string2ll refuses LONG_STR_SIZE (21) bytes or more before looking at a digit: the longest
# 64-bit decimal is "-9223372036854775808". Checked first, so that no parse costs more than 20 bytes
# (Python's int() would take quadratic time on a 16 MiB value, and refuses 4,300 digits with a ValueError).
MAX_INT64_CHARS = 20


def string2ll(value: bytes) -> int | None:
    """Redis's string2ll (src/util.c): a canonical decimal (no spaces, '+', "-0" or leading zeros)
    within 64 bits, else None. Every integer argument and stored counter is parsed by this one."""
    value = bytes(value)
    if len(value) > MAX_INT64_CHARS or not _INT64_TEXT.fullmatch(value):  # int() would take "1_0", " 1", "+1"
        return None
    n = int(value)
    return n if -(1 << 63) <= n < (1 << 63) else None


def parse_int64(value: bytes) -> int:
    """string2ll, or Redis's "value is not an integer or out of range"."""
    n = string2ll(value)
    if n is None:
        raise InvalidArgument("ERR value is not an integer or out of range")
    return n


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class KeyspaceArrays:
    ks_bucket: np.ndarray
    e_hash: np.ndarray
    e_key: np.ndarray
    e_klen: np.ndarray
    e_val: np.ndarray
    e_vlen: np.ndarray
    e_expire: np.ndarray
    e_lru: np.ndarray
    e_next: np.ndarray
    ks_free: np.ndarray
    ks_free_top: np.ndarray
    ks_core: np.ndarray
    ks_evicted: np.ndarray
    ks_config: np.ndarray
    ks_gauge: np.ndarray
    ks_inst: np.ndarray
    ks_seq: np.ndarray
    pol: dict[str, np.ndarray]  # the kspol_* arrays of exact.py

    @classmethod
    def from_region(cls, region: dict[str, np.ndarray]) -> KeyspaceArrays:
        fields = {f: region[f] for f in cls.__dataclass_fields__ if f != "pol"}
        return cls(**fields, pol={n: a for n, a in region.items() if n.startswith(EXACT_PREFIX)})

    def initialise(self) -> None:
        """First boot: empty buckets, every entry free in its stripe's stack."""
        self.ks_bucket.fill(-1)
        self.e_next.fill(-1)
        self.ks_free[:] = np.arange(self.ks_free.shape[0], dtype=np.int32)[::-1]
        self.ks_free_top[0] = self.ks_free.shape[0]
        for i, name in enumerate(CONFIG_FIELDS):
            self.ks_config[i] = CONFIG_DEFAULTS[name]
        self.ks_gauge[G_EXACT] = -1

    def boot_policy(self, pid: int) -> None:
        """The policy at start, before any core runs (so without locks); an exact one is laid out empty."""
        if pid >= FIRST_EXACT_ID:
            ExactPolicies(self.pol, self.ks_free.shape[0]).lay_out(pid, [], [])
            self.ks_gauge[G_EXACT] = pid
        self.ks_config[CONFIG_FIELDS.index("policy")] = pid


# Optimistic reads rely on x86-64's ordering (TSO: loads are not reordered with older loads,
# stores not with older stores), as Linux's seqcount does with its barriers compiled away
# there; Python has no portable fence, so elsewhere every read takes its stripe lock.
OPTIMISTIC_READS = platform.machine() in ("x86_64", "AMD64")
_RETRY = object()


class SeqStripe:
    """A stripe's lock plus its sequence count: Linux's seqlock_t (a lock and a seqcount).

    Writers (anything under the stripe lock) make the count odd on the outermost acquire and
    even again on the outermost release. A GET reads without the lock: it notes the count
    (odd: a writer is inside, take the lock instead), walks the chain and copies the value,
    and keeps the result only if the count is still the same; otherwise it takes the lock.
    Every change to a chain, an entry on it or its value object happens under the stripe's
    lock, and an entry or object is freed only by such a change, so an unchanged count means
    nothing the reader looked at changed. What the reader saw in between may be garbage (a
    freed entry, reused memory): it is bounded (chain steps, heap bounds) and thrown away."""

    __slots__ = ("depth", "i", "lock", "seq")

    def __init__(self, lock: SharedLock, seq: memoryview, i: int):
        self.lock, self.seq, self.i = lock, seq, i
        self.depth = 0

    def __enter__(self) -> SeqStripe:
        self.lock.acquire()
        self.depth += 1
        if self.depth == 1:
            self.seq[self.i] += 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self.depth == 1:
            self.seq[self.i] += 1
        self.depth -= 1
        self.lock.release()

    @property
    def held(self) -> bool:
        return self.depth > 0

    @property
    def name(self) -> str:
        return self.lock.name


class Keyspace:
    """One core's handle on the shared keyspace. Like Heap: one per core process, one op at a time."""

    def __init__(self, a: KeyspaceArrays, locks: LockTable, heap: Heap, clock: Callable[[], int] = now_ms):
        self.a = a
        self.heap = heap
        self.clock = clock
        self.seq = memoryview(a.ks_seq)
        self.locks = [SeqStripe(locks[f"keyspace/{s}"], self.seq, s) for s in range(STRIPES)]
        self.entries_lock = locks["keyspace/entries"]
        self.policy_lock = locks["keyspace/policy"]
        # A heap in an address space (sim/vm/heapsource.py) reads through the MMU: a lock-free read of a
        # stale address would fault pages in and count segfaults, so reads take the stripe lock there.
        self.heap_paged = bool(getattr(heap, "_paged", False))
        self.optimistic = OPTIMISTIC_READS and not self.heap_paged
        self.exact = ExactPolicies(a.pol, a.ks_free.shape[0])
        self.mask = a.ks_bucket.shape[0] - 1
        self.capacity = a.ks_free.shape[0]
        self.stats = memoryview(a.ks_core[heap.core])
        self._entries: list[int] = []  # this core's free entries
        self.evictor = None  # set by attach_evictor(); consulted before every write
        self._rng = random.Random(heap.core)  # the LFU counter's coin: reproducible per core

    # -- configuration (shared; CONFIG GET/SET) ------------------------------------------

    @property
    def config(self) -> CacheConfig:
        c = self.a.ks_config
        return CacheConfig(*(int(c[i]) for i in range(len(CONFIG_FIELDS))))

    def config_check(self, name: str, value: int) -> None:
        """What config_set would refuse, refused without changing anything (CONFIG SET of several
        parameters checks them all first: all or nothing, as Redis 7's)."""
        if name not in CONFIG_RANGES:
            raise InvalidArgument(f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'")
        lo, hi = CONFIG_RANGES[name]
        param = CONFIG_PARAMS[name]
        if not isinstance(value, int) or not lo <= value <= hi:
            raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument '{param}') - "
                                  f"argument must be between {lo} and {hi} inclusive")
        too_big = maxmemory_over_heap(value, self.heap.mheap.total_pages * PAGE_SIZE) if name == "maxmemory" else None
        if too_big:
            raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument 'maxmemory') - {too_big}")

    def config_set(self, name: str, value: int) -> None:
        self.config_check(name, value)
        if name == "policy":
            self.set_policy(value)
        else:
            self.a.ks_config[CONFIG_FIELDS.index(name)] = value
        if name in ("maxmemory", "policy"):
            self.shrink_to_limit()

    def shrink_to_limit(self) -> int:
        """Evict down to maxmemory now (CONFIG SET lowering it, and the cron), as Redis's
        performEvictions() does from its timer once a limit is lowered. Bounded by tenacity; what is
        left is done by the next call. Returns keys evicted."""
        if not self._limited() or self.used_memory() <= int(self.a.ks_config[0]):
            return 0
        try:
            return self.evictor.make_room(0)
        except ResourceExhausted:
            return 0  # noeviction, or the time budget ran out: writes keep being refused until it is done

    def set_policy(self, pid: int) -> None:
        """Switch maxmemory-policy with every stripe lock held, so that no command sees a half-built
        exact policy: an exact one is laid out holding every live key, oldest 24-bit field first."""
        a = self.a
        with ExitStack() as held:
            for lk in self.locks:
                held.enter_context(lk)
            held.enter_context(self.policy_lock)
            if pid >= FIRST_EXACT_ID and int(a.ks_gauge[G_EXACT]) != pid:
                live = np.flatnonzero(a.e_klen > 0)
                live = live[np.argsort(a.e_lru[live], kind="stable")]
                fps = [fingerprint(int(h)) for h in a.e_hash[live].tolist()]
                self.exact.lay_out(pid, live.tolist(), fps)
                a.ks_gauge[G_EXACT] = pid
            elif pid < FIRST_EXACT_ID:
                a.ks_gauge[G_EXACT] = -1
            a.ks_config[CONFIG_FIELDS.index("policy")] = pid

    def recover(self) -> int:
        """After a core died inside a stripe: the kernel released its lock, but the stripe's seqcount
        was left odd, so lock-free readers would fall back to the lock forever. Even them out, holding
        every stripe's lock (the raw locks: the seqlock wrappers would bump the counts themselves).
        Returns how many were repaired. (The dead core's private free entries, up to 2 x ENTRY_BATCH,
        are not recovered: live cores hold such lists too, and nothing records whose they are.)"""
        with ExitStack() as held:
            for st in self.locks:
                held.enter_context(st.lock)
            odd = [i for i in range(STRIPES) if self.seq[i] & 1]
            for i in odd:
                self.seq[i] += 1
        return len(odd)

    def exact_victim(self) -> bytes | None:
        """The exact policy's victim: its key (read under the policy lock, see exact.py), or None if empty."""
        if int(self.a.ks_gauge[G_EXACT]) < 0:
            return None
        with self.policy_lock:
            pid = int(self.a.ks_gauge[G_EXACT])  # again, under the lock: a switch may have come first
            if pid < 0:
                return None
            pol = self.exact.get(pid)
            if not len(pol):
                return None
            pol.set_capacity(max(1, min(pol.slots, len(pol))))
            e = pol.evict()
            if not self.heap_paged:
                return self.key_of(e)
            klen, addr = int(self.a.e_klen[e]), int(self.a.e_key[e])
        # A heap in an address space reads through the VM (its locks, maybe swap I/O): not inside a leaf
        # lock. Read after it: a stale read names a key the evictor then fails to find, or evicts anew.
        return self.heap.raw(addr, klen) if klen and addr else None

    def attach_evictor(self, evictor) -> None:
        self.evictor = evictor

    def count_eviction(self, policy: int) -> None:
        self.a.ks_evicted[self.heap.core, policy] += 1

    def evicted_keys(self) -> int:
        return int(self.a.ks_evicted.sum())

    def _entry_room(self) -> None:
        """A new key needs an entry: when none is free (here or in the shared stack) and the policy
        evicts, evict keys for one, as running out of index is running out of memory (outside locks)."""
        if self._entries or int(self.a.ks_free_top[0]) or self.evictor is None:
            return
        if int(self.a.ks_config[1]) == 0:  # noeviction: _take_entry will say the keyspace is full
            return
        for _ in range(ENTRY_BATCH):
            if self._entries or int(self.a.ks_free_top[0]):
                return
            if not self.evictor.evict_one():
                return

    def _limited(self) -> bool:
        """Whether writes must pass performEvictions() (maxmemory is set), read before computing growth."""
        return self.evictor is not None and int(self.a.ks_config[0]) != 0

    def _admit(self, incoming: int) -> None:
        """performEvictions() before a write. Callers hold no stripe lock (eviction takes other
        stripes' locks, and lock order forbids stripe -> stripe); tests check it."""
        if self.evictor is not None:
            self.evictor.make_room(incoming)

    def _growth(self, key: bytes, new_len: int) -> int:
        """What writing a new_len-byte value under key adds to used_memory: the whole key, value and
        index entry for a new key, only the value's difference for an existing one (read under the
        key's stripe lock, released before any eviction)."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, stripe, bucket, h)
            if e >= 0:
                return self._charge(new_len) - self._charge(int(self.a.e_vlen[e]))
        return self._charge(len(key)) + self._charge(new_len) + ENTRY_BYTES

    def evict(self, key: bytes, volatile: bool) -> bool:
        """Delete a victim chosen from a racy sample, re-checking under its lock that it is still
        there (and, for volatile-* policies, still has a TTL: Redis looks it up in db->expires)."""
        if not key:
            return False
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e, prev = self._find(bucket, h, key)
            if e < 0 or (volatile and not int(self.a.e_expire[e])):
                return False
            self._unlink_and_free(bucket, e, prev)
            return True

    def expire_if_due(self, key: bytes) -> bool:
        """Delete key if its time has come; True only if this call deleted it (active expiry)."""
        if not key:
            return False
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e, prev = self._find(bucket, h, key)
            if e < 0 or not self._expired(e):
                return False
            self._unlink_and_free(bucket, e, prev)
            self.stats[K_EXPIRED] += 1
            return True

    def _charge(self, n: int) -> int:
        """What storing n bytes adds to used_memory: the allocator's usable size for it."""
        if n == 0:
            return 0
        if n < TINY_SIZE:
            return n
        if n <= MAX_SMALL_SIZE:
            return self.heap.sizes[self.heap.t.class_of(n)]
        return -(-n // PAGE_SIZE) * PAGE_SIZE

    def key_of(self, e: int) -> bytes:
        """The key of entry e, read without its lock (for sampling: may be stale, never invalid to read)."""
        n = int(self.a.e_klen[e])
        return self.heap.raw(int(self.a.e_key[e]), n) if n else b""

    def _touch(self, e: int, new: bool = False) -> None:
        """Stamp the 24-bit field on access: the LRU clock, or the LFU counter (decayed, then log-incremented)."""
        cfg_policy = int(self.a.ks_config[1])
        now = self.clock()
        if cfg_policy >= FIRST_EXACT_ID:
            with self.policy_lock:
                pid = int(self.a.ks_gauge[G_EXACT])  # under the lock: the one laid out now (set_policy)
                pol = self.exact.get(pid) if pid >= 0 else None
                if pol is not None and new:
                    pol.insert(e, fingerprint(int(self.a.e_hash[e])))
                elif pol is not None and e in pol:  # not in it: an evictor has just taken it out (exact.py)
                    pol.hit(e)
        if cfg_policy in LFU_POLICIES:
            minutes = lfu_minutes(now / 1000.0)
            if new:
                self.a.e_lru[e] = lfu_pack(minutes, LFU_INIT_VAL)
            else:
                c = self.a.ks_config
                self.a.e_lru[e] = lfu_touch(int(self.a.e_lru[e]), int(c[3]), int(c[4]), minutes, self._rng.random())
        else:
            self.a.e_lru[e] = lru_clock(now)

    # -- entries (the per-core list in front of the shared stack) ------------------------

    def _take_entry(self) -> int:
        if not self._entries:
            a = self.a
            with self.entries_lock:
                top = int(a.ks_free_top[0])
                k = min(ENTRY_BATCH, top)
                self._entries.extend(a.ks_free[top - k:top].tolist())
                a.ks_free_top[0] = top - k
            if not self._entries:
                raise ResourceExhausted(
                    f"keyspace full: all {self.capacity} entries are in use (other cores may hold up to "
                    f"{2 * ENTRY_BATCH} free ones each); start the server with more (memsim serve --max-keys)")
        return self._entries.pop()

    def _put_entry(self, e: int) -> None:
        self._entries.append(e)
        if len(self._entries) > 2 * ENTRY_BATCH:
            self._give_back(ENTRY_BATCH)

    def _give_back(self, k: int) -> None:
        a = self.a
        batch, self._entries = self._entries[:k], self._entries[k:]
        with self.entries_lock:
            top = int(a.ks_free_top[0])
            a.ks_free[top:top + len(batch)] = batch
            a.ks_free_top[0] = top + len(batch)

    def release(self) -> None:
        """Give this core's free entries back (on a clean stop, with Heap.release_caches)."""
        if self._entries:
            self._give_back(len(self._entries))

    # -- internals (caller holds the stripe lock) ----------------------------------------

    def _find(self, bucket: int, h: int, key: bytes) -> tuple[int, int]:
        """(entry, previous entry on the chain) for key, or (-1, -1). Also run without the lock by
        optimistic reads, so a chain longer than the table (a cycle through reused entries) raises."""
        a = self.a
        prev, e = -1, int(a.ks_bucket[bucket])
        steps = self.capacity
        while e >= 0:
            steps -= 1
            if steps < 0:
                raise RuntimeError("chain longer than the table: changed under an optimistic read")
            if int(a.e_hash[e]) == h and int(a.e_klen[e]) == len(key) and \
                    self.heap.raw(int(a.e_key[e]), len(key)) == key:
                return e, prev
            prev, e = e, int(a.e_next[e])
        return -1, -1

    def _usable(self, addr: int, n: int) -> int:
        return self.heap.usable_size(addr) if n else 0

    def _store(self, data: bytes) -> int:
        """A new object holding data (0 for empty data); charges used_memory."""
        if not data:
            return 0
        r = self.heap.malloc(len(data), CACHE_ENTRY)  # the keyspace's, never a client's (owners.py)
        try:
            self.heap.write(r.address, 0, data)
        except BaseException:
            self.heap.free(r.address)  # nothing may stay allocated for a write that failed
            raise
        self.stats[K_USED_BYTES] += r.usable
        return r.address

    def _drop(self, addr: int, n: int) -> None:
        if n:
            self.stats[K_USED_BYTES] -= self.heap.usable_size(addr)
            self.heap.free(addr)

    def _unlink_and_free(self, bucket: int, e: int, prev: int) -> None:
        a = self.a
        if int(a.ks_gauge[G_EXACT]) >= 0:  # first, while the key object still exists: see exact.py
            with self.policy_lock:
                pid = int(a.ks_gauge[G_EXACT])
                if pid >= 0 and e in (pol := self.exact.get(pid)):
                    pol.remove(e)
        nxt = int(a.e_next[e])
        if prev >= 0:
            a.e_next[prev] = nxt
        else:
            a.ks_bucket[bucket] = nxt
        self._drop(int(a.e_key[e]), int(a.e_klen[e]))
        self._drop(int(a.e_val[e]), int(a.e_vlen[e]))
        a.e_klen[e] = a.e_vlen[e] = 0
        a.e_key[e] = a.e_val[e] = 0
        a.e_expire[e] = 0
        a.e_next[e] = -1
        self._put_entry(e)
        self.stats[K_USED_BYTES] -= ENTRY_BYTES
        self.stats[K_KEYS] -= 1

    def _expired(self, e: int) -> bool:
        exp = int(self.a.e_expire[e])
        return exp != 0 and exp <= self.clock()

    def _locate(self, key: bytes) -> tuple[int, int, int]:
        if not isinstance(key, bytes | bytearray) or not key:
            raise InvalidArgument("bad key: keys are non-empty byte strings")
        if len(key) > MAX_KEY_BYTES:
            raise InvalidArgument(f"bad key: {len(key)} bytes is over the {MAX_KEY_BYTES}-byte limit")
        h = key_hash(bytes(key))
        bucket = h & self.mask
        return h, bucket, bucket % STRIPES

    def _lookup(self, key: bytes, stripe: int, bucket: int, h: int) -> int:
        """The live entry for key, deleting it first if it has expired (Redis's lazy expiry)."""
        e, prev = self._find(bucket, h, key)
        if e >= 0 and self._expired(e):
            self._unlink_and_free(bucket, e, prev)
            self.stats[K_EXPIRED] += 1
            return -1
        return e

    # -- commands ------------------------------------------------------------------------

    def _read(self, key: bytes, stripe: int, bucket: int, h: int) -> int:
        """A read's lookup (lock held): counts keyspace_hits/misses and touches the LRU/LFU field."""
        e = self._lookup(key, stripe, bucket, h)
        if e < 0:
            self.stats[K_MISSES] += 1
        else:
            self.stats[K_HITS] += 1
            self._touch(e)
        return e

    def get(self, key: bytes) -> bytes | None:
        h, bucket, stripe = self._locate(key)
        if self.optimistic:
            value = self._get_optimistic(key, stripe, bucket, h)
            if value is not _RETRY:
                return value
            self.stats[K_READ_RETRIES] += 1
        with self.locks[stripe]:
            e = self._read(key, stripe, bucket, h)
            return self._value(e) if e >= 0 else None

    def _get_optimistic(self, key: bytes, stripe: int, bucket: int, h: int) -> object:
        """GET without the stripe lock (read_seqbegin / read_seqretry, see SeqStripe), or _RETRY.
        An expired key is left to the locked path, which deletes it."""
        seq = self.seq
        start = seq[stripe]
        if start & 1:
            return _RETRY
        try:
            e, _ = self._find(bucket, h, key)
            value = None
            if e >= 0:
                exp = int(self.a.e_expire[e])
                if exp and exp <= self.clock():
                    return _RETRY
                value = self._value(e)
        except Exception:  # noqa: BLE001 - garbage seen mid-change; the count check would reject it anyway
            return _RETRY
        if seq[stripe] != start:
            return _RETRY
        if e < 0:
            self.stats[K_MISSES] += 1
        else:
            self.stats[K_HITS] += 1
            self._touch(e)  # a racy store of the 24-bit field, as Redis's own is unlocked
        return value

    def set(self, key: bytes, value: bytes, *, expire_at_ms: int = 0, nx: bool = False, xx: bool = False,
            keepttl: bool = False, get: bool = False) -> tuple[bool, bytes | None]:
        """SET with Redis's options. Returns (stored, old value if get=True)."""
        if not isinstance(value, bytes | bytearray):
            raise InvalidArgument("bad value: values are byte strings")
        if len(value) > MAX_VALUE_BYTES:
            raise InvalidArgument(f"ERR string exceeds maximum allowed size ({MAX_VALUE_BYTES} bytes)")
        if nx and xx:
            raise InvalidArgument("syntax error: NX and XX are mutually exclusive")
        if keepttl and expire_at_ms:
            raise InvalidArgument("ERR syntax error: KEEPTTL and an expiry are mutually exclusive")
        if not 0 <= expire_at_ms <= MAX_EXPIRE_MS:
            raise InvalidArgument("ERR invalid expire time in 'set' command")
        if self._limited():
            self._admit(self._growth(key, len(value)))
        self._entry_room()
        return self._set(key, value, expire_at_ms=expire_at_ms, nx=nx, xx=xx, keepttl=keepttl, get=get)

    def _set(self, key: bytes, value: bytes, *, expire_at_ms: int = 0, nx: bool = False, xx: bool = False,
             keepttl: bool = False, get: bool = False) -> tuple[bool, bytes | None]:
        """SET without admission: the caller has made room (or holds stripe locks and must not evict)."""
        h, bucket, stripe = self._locate(key)
        a = self.a
        with self.locks[stripe]:
            e = self._lookup(key, stripe, bucket, h)
            old = None
            if get and e >= 0:
                old = self._value(e)
            if (nx and e >= 0) or (xx and e < 0):
                return False, old
            if e >= 0:
                self._replace_value(e, bytes(value))
                if not keepttl:
                    a.e_expire[e] = expire_at_ms
                self._touch(e)
                return True, old
            e = self._take_entry()
            try:
                key_obj = self._store(bytes(key))
                try:
                    val_obj = self._store(bytes(value))
                except BaseException:
                    self._drop(key_obj, len(key))
                    raise
            except BaseException:
                self._put_entry(e)  # out of memory: nothing was published
                raise
            a.e_hash[e] = h
            a.e_key[e], a.e_klen[e] = key_obj, len(key)
            a.e_val[e], a.e_vlen[e] = val_obj, len(value)
            a.e_expire[e] = expire_at_ms
            self._touch(e, new=True)
            a.e_next[e] = int(a.ks_bucket[bucket])
            a.ks_bucket[bucket] = e  # publish last: the chain never points at a half-built entry
            self.stats[K_USED_BYTES] += ENTRY_BYTES
            self.stats[K_KEYS] += 1
            return True, old

    def delete(self, key: bytes) -> bool:
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e, prev = self._find(bucket, h, key)
            if e < 0:
                return False
            expired = self._expired(e)
            self._unlink_and_free(bucket, e, prev)
            if expired:
                self.stats[K_EXPIRED] += 1
            return not expired

    def exists(self, key: bytes) -> bool:
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            return self._lookup(key, stripe, bucket, h) >= 0

    def expire_at(self, key: bytes, when_ms: int, *, nx: bool = False, xx: bool = False, gt: bool = False,
                  lt: bool = False) -> bool:
        """PEXPIREAT with Redis 7's conditions (NX: no TTL yet; XX: has one; GT/LT: later/sooner than
        the current one, no TTL counting as forever). A time already past deletes the key, as Redis
        does, without counting it as expired. False if the key is missing or a condition failed."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, stripe, bucket, h)
            if e < 0:
                return False
            cur = int(self.a.e_expire[e])
            if (nx and cur) or (xx and not cur) or (gt and (not cur or when_ms <= cur)) or \
                    (lt and cur and when_ms >= cur):
                return False
            if when_ms <= self.clock():
                _, prev = self._find(bucket, h, key)
                self._unlink_and_free(bucket, e, prev)
                return True
            self.a.e_expire[e] = when_ms
            return True

    def persist(self, key: bytes) -> bool:
        """PERSIST: drop the key's TTL; False if it is missing or had none."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, stripe, bucket, h)
            if e < 0 or not int(self.a.e_expire[e]):
                return False
            self.a.e_expire[e] = 0
            return True

    def object_field(self, key: bytes) -> int | None:
        """The key's 24-bit LRU/LFU field without touching it (OBJECT FREQ/IDLETIME); None if missing."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, stripe, bucket, h)
            return int(self.a.e_lru[e]) if e >= 0 else None

    def pttl(self, key: bytes) -> int:
        """Milliseconds to live; -2 if the key does not exist, -1 if it has no expiry (Redis's PTTL)."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, stripe, bucket, h)
            if e < 0:
                return -2
            exp = int(self.a.e_expire[e])
            return -1 if exp == 0 else max(0, exp - self.clock())

    def _value(self, e: int) -> bytes:
        n = int(self.a.e_vlen[e])
        return self.heap.raw(int(self.a.e_val[e]), n) if n else b""

    def _replace_value(self, e: int, value: bytes) -> None:
        """A value of the same length is written over the old one (the stripe's seqcount tells
        lock-free readers); otherwise a new object first, the old one dropped after, so that an
        OOM leaves the old value in place. Same length is the common case of a cache (fixed-size
        records, counters), and skips a malloc and a free."""
        a = self.a
        n = int(a.e_vlen[e])
        if n and n == len(value):
            self.heap.write(int(a.e_val[e]), 0, value)
            return
        new_val = self._store(value)
        self._drop(int(a.e_val[e]), int(a.e_vlen[e]))
        a.e_val[e] = new_val
        a.e_vlen[e] = len(value)

    def incrby(self, key: bytes, delta: int) -> int:
        """INCRBY/DECRBY/INCR/DECR: a missing key counts as 0; the value must be a 64-bit integer."""
        self._entry_room()
        if not -(1 << 63) <= delta < (1 << 63):
            raise InvalidArgument("ERR value is not an integer or out of range")
        h, bucket, stripe = self._locate(key)
        if self._limited():
            self._admit(self._growth(key, 20))  # at most 20 digits and a sign
        with self.locks[stripe]:
            e = self._lookup(key, stripe, bucket, h)
            current = 0
            if e >= 0:
                if int(self.a.e_vlen[e]) > MAX_INT64_CHARS:  # no integer: refused without copying it
                    raise InvalidArgument("ERR value is not an integer or out of range")
                current = parse_int64(self._value(e))
            result = current + delta
            if not -(1 << 63) <= result < (1 << 63):
                raise InvalidArgument("ERR increment or decrement would overflow")
            # Still under the stripe lock (re-entrant): read and write are one step, as in Redis.
            self._set(key, str(result).encode(), keepttl=True)
        return result

    def append(self, key: bytes, tail: bytes) -> int:
        """APPEND: returns the new length (a missing key is created)."""
        self._entry_room()
        h, bucket, stripe = self._locate(key)
        if self._limited():
            self._admit(self._growth(key, self.strlen(key) + len(tail)))
        with self.locks[stripe]:
            e = self._lookup(key, stripe, bucket, h)
            if e >= 0:
                if int(self.a.e_vlen[e]) + len(tail) > MAX_VALUE_BYTES:  # refused before copying anything
                    raise InvalidArgument(f"ERR string exceeds maximum allowed size ({MAX_VALUE_BYTES} bytes)")
                value = self._value(e) + bytes(tail)
                self._replace_value(e, value)
                return len(value)
            self._set(key, bytes(tail))  # under the same lock: nobody can create it in between
            return len(tail)

    def strlen(self, key: bytes) -> int:
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, stripe, bucket, h)
            return int(self.a.e_vlen[e]) if e >= 0 else 0

    def getdel(self, key: bytes) -> bytes | None:
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._read(key, stripe, bucket, h)
            if e < 0:
                return None
            value = self._value(e)
            _, prev = self._find(bucket, h, key)
            self._unlink_and_free(bucket, e, prev)
            return value

    def mget(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.get(k) for k in keys]

    def mset(self, pairs: list[tuple[bytes, bytes]]) -> None:
        """MSET, atomic as Redis's: every stripe involved is locked, in stripe order, for the whole
        write, and all of it or nothing is written: every entry and object the write needs is taken
        first, and only then is anything published (a full keyspace or heap refuses the whole MSET)."""
        for _, v in pairs:
            if not isinstance(v, bytes | bytearray):
                raise InvalidArgument("bad value: values are byte strings")
            if len(v) > MAX_VALUE_BYTES:
                raise InvalidArgument(f"ERR string exceeds maximum allowed size ({MAX_VALUE_BYTES} bytes)")
        last = {bytes(k): bytes(v) for k, v in pairs}  # a key given twice: the last value wins, as in Redis
        located = [(self._locate(k), k, v) for k, v in last.items()]
        self._entry_room()
        if self._limited():
            self._admit(sum(self._growth(k, len(v)) for _, k, v in located))
        stripes = sorted({loc[2] for loc, _, _ in located})
        a = self.a
        with ExitStack() as held:
            for s in stripes:
                held.enter_context(self.locks[s])
            plan: list[tuple[int, int, int, int, bytes, bytes, int]] = []  # (entry or -1, bucket, hash, ...)
            taken: list[tuple[int, int, int, int]] = []  # what to give back if anything fails
            try:
                for (h, bucket, stripe), k, v in located:
                    e = self._lookup(k, stripe, bucket, h)
                    val_obj = self._store(v)
                    taken.append((-1, 0, val_obj, len(v)))
                    if e >= 0:
                        plan.append((e, bucket, h, val_obj, k, v, 0))
                        continue
                    new_e = self._take_entry()
                    taken.append((new_e, 0, 0, 0))
                    key_obj = self._store(k)
                    taken.append((-1, 0, key_obj, len(k)))
                    plan.append((new_e, bucket, h, val_obj, k, v, key_obj))
            except BaseException:
                for e, _, obj, n in taken:
                    if e >= 0:
                        self._put_entry(e)
                    else:
                        self._drop(obj, n)
                raise
            for e, bucket, h, val_obj, k, v, key_obj in plan:  # nothing can fail from here on
                if not key_obj:  # an existing key: the new value object replaces the old one
                    self._drop(int(a.e_val[e]), int(a.e_vlen[e]))
                    a.e_val[e], a.e_vlen[e] = val_obj, len(v)
                    a.e_expire[e] = 0
                    self._touch(e)
                    continue
                a.e_hash[e] = h
                a.e_key[e], a.e_klen[e] = key_obj, len(k)
                a.e_val[e], a.e_vlen[e] = val_obj, len(v)
                a.e_expire[e] = 0
                self._touch(e, new=True)
                a.e_next[e] = int(a.ks_bucket[bucket])
                a.ks_bucket[bucket] = e
                self.stats[K_USED_BYTES] += ENTRY_BYTES
                self.stats[K_KEYS] += 1

    def flushall(self) -> int:
        """FLUSHALL: delete every key, holding every stripe lock (in order) so nothing slips in."""
        a = self.a
        removed = 0
        with ExitStack() as held:
            for s in range(STRIPES):
                held.enter_context(self.locks[s])
            for bucket in np.flatnonzero(a.ks_bucket >= 0).tolist():
                while (e := int(a.ks_bucket[bucket])) >= 0:
                    self._unlink_and_free(bucket, e, -1)
                    removed += 1
        return removed

    def scan(self, cursor: int, count: int = 10, match: Callable[[bytes], bool] | None = None,
             max_bytes: int | None = None) -> tuple[int, list[bytes]]:
        """SCAN: walk buckets from `cursor`; returns (next cursor, keys), cursor 0 when done.

        The table never rehashes, so a bucket-order cursor gives Redis's guarantee: a key present
        for the whole scan is returned (exactly once, in fact). As in Redis 7's scanGenericCommand,
        `count` bounds the keys looked at, not the keys returned: a MATCH that selects few keys
        returns few per call (maybe none, with a cursor to go on from), never walks the whole table.

        `match` runs on copies of the keys after their stripe lock is released: a pattern's cost
        (up to len(key) x len(pattern), glob.py) must not hold up other cores using the stripe.
        When it raises MatchBudgetSpent (the command's matching budget, glob.py) the walk stops at
        that bucket: the cursor returned is that bucket's, so the next call matches all of its keys
        again and none is returned twice. Cut short before any bucket was taken, it raises
        MatchBudgetSpent itself: that cursor would never move on.
        With max_bytes, the walk stops before a bucket whose keys would take the reply past it,
        unless that bucket is the first one taken (a call always makes progress)."""
        a = self.a
        nb = a.ks_bucket.shape[0]
        if not 0 <= cursor < nb:
            raise InvalidArgument("ERR invalid cursor")
        if count < 1:
            raise InvalidArgument("ERR syntax error: COUNT must be positive")
        keys: list[bytes] = []
        seen = size = 0
        b = cursor
        taken = False
        while b < nb and seen < count:
            # Empty buckets are skipped by one racy NumPy look, not locked one by one: a key that
            # lands in one after the look was not present for the whole scan, so SCAN owes it nothing.
            window = a.ks_bucket[b:b + SAMPLE_WINDOW]
            busy = np.flatnonzero(window >= 0)
            if not busy.size:
                b += len(window)
                continue
            b += int(busy[0])
            found = self._bucket_keys(b)
            try:
                kept = found if match is None else [k for k in found if match(k)]
            except MatchBudgetSpent:
                if not taken:
                    raise  # not one bucket's keys within a whole budget: no cursor would make progress
                return b, keys  # this bucket again next time, whole
            grown = size + sum(len(k) for k in kept)
            if max_bytes is not None and grown > max_bytes and taken:
                return b, keys  # this bucket starts the next reply
            keys += kept
            size, seen, taken = grown, seen + len(found), True
            b += 1
        return (0 if b >= nb else b), keys

    def _bucket_keys(self, bucket: int) -> list[bytes]:
        """Copies of the live keys on a bucket's chain, read under its stripe lock."""
        a = self.a
        out: list[bytes] = []
        with self.locks[bucket % STRIPES]:
            e = int(a.ks_bucket[bucket])
            while e >= 0:
                if not self._expired(e):
                    out.append(self.heap.raw(int(a.e_key[e]), int(a.e_klen[e])))
                e = int(a.e_next[e])
        return out

    def sample_entries(self, rng: random.Random, n: int, volatile: bool = False) -> list[int]:
        """dictGetSomeKeys(): up to n live entries (with a TTL if volatile) from the chains of the
        buckets after a random one. Buckets are in hash order, so neighbours are unrelated keys.
        (Consecutive *entries* would not do: entries are handed out in insertion order, so
        neighbours have nearly the same age and five of them score like one; the lru-test
        workload put that 6 points under exact LRU.)

        Read without the stripe locks, as a racy snapshot: a sampled entry may be gone by the
        time it is used, so users re-check the key under its lock."""
        a = self.a
        nb = a.ks_bucket.shape[0]
        out: list[int] = []
        start = rng.randrange(nb)
        for _ in range(nb // SAMPLE_WINDOW + 1):
            hi = min(nb, start + SAMPLE_WINDOW)
            for head in a.ks_bucket[start:hi][a.ks_bucket[start:hi] >= 0].tolist():
                e, steps = head, 0
                while e >= 0 and steps < 64:
                    if a.e_klen[e] and (not volatile or a.e_expire[e]):
                        out.append(e)
                        if len(out) >= n:
                            return out
                    e, steps = int(a.e_next[e]), steps + 1
            start = 0 if hi >= nb else hi
        return out

    def ttl_entries_from(self, cursor: int, n: int) -> tuple[list[int], int]:
        """Entries with a TTL in bucket order from `cursor`: (up to n entries, next cursor).

        The active expire cycle walks the whole table this way, as Redis walks its expires dict
        with db->expires_cursor: a random start would keep re-sampling regions it had already
        cleaned and stop while other regions were still full of dead keys."""
        a = self.a
        nb = a.ks_bucket.shape[0]
        out: list[int] = []
        b = cursor % nb
        for _ in range(min(nb, 20 * n)):  # Redis visits at most num*20 buckets per loop
            e, steps = int(a.ks_bucket[b]), 0
            while e >= 0 and steps < 64:
                if a.e_klen[e] and a.e_expire[e]:
                    out.append(e)
                e, steps = int(a.e_next[e]), steps + 1
            b = (b + 1) % nb
            if len(out) >= n:
                break
        return out, b

    # -- figures -------------------------------------------------------------------------

    def dbsize(self) -> int:
        return int(self.a.ks_core[:, K_KEYS].sum())

    def used_memory(self) -> int:
        return int(self.a.ks_core[:, K_USED_BYTES].sum())

    def any_volatile(self) -> bool:
        """Whether some key has a TTL (a racy NumPy look, for volatile-* policies' fast refusal)."""
        return bool(np.any(self.a.e_expire[self.a.e_klen > 0]))

    def expires_summary(self) -> tuple[int, int]:
        """(keys with a TTL, their mean time to live in ms) for INFO's keyspace line (a racy snapshot)."""
        a = self.a
        exp = a.e_expire[(a.e_klen > 0) & (a.e_expire != 0)]
        if not exp.size:
            return 0, 0
        return int(exp.size), max(0, int(exp.mean()) - self.clock())

    def used_memory_peak(self) -> int:
        """Redis's peak: raised by whoever looks (the cron, INFO); a racy max is fine for a gauge."""
        used = self.used_memory()
        if used > int(self.a.ks_gauge[G_PEAK]):
            self.a.ks_gauge[G_PEAK] = used
        return int(self.a.ks_gauge[G_PEAK])

    def stat(self, column: int) -> int:
        return int(self.a.ks_core[:, column].sum())

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: zero the counters (not the keys, the bytes, or the peak's meaning)."""
        a = self.a
        for col in STAT_COLUMNS:
            a.ks_core[:, col] = 0
        a.ks_evicted[:] = 0
        a.ks_inst[:, 3:] = 0
        a.ks_gauge[G_PEAK] = self.used_memory()

    def sample_ops(self, now_ms: int) -> None:
        """trackInstantaneousMetric() for this core, run by its cron every 100 ms: one ops/s sample."""
        row = self.a.ks_inst[self.heap.core]
        done = int(self.stats[K_COMMANDS])
        last_t = int(row[1])
        if last_t and now_ms > last_t:
            row[3 + int(row[0]) % INST_SAMPLES] = (done - int(row[2])) * 1000 // (now_ms - last_t)
            row[0] = (int(row[0]) + 1) % INST_SAMPLES
        row[1], row[2] = now_ms, done

    def instantaneous_ops_per_sec(self) -> int:
        """The sum over cores of each core's mean of its last 16 samples (Redis: getInstantaneousMetric)."""
        return int(self.a.ks_inst[:, 3:].sum() // INST_SAMPLES)
