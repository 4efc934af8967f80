"""The keyspace's hash table (Redis's src/db.c over src/dict.c): entries, lookup, delete, SCAN, sampling, FLUSHALL.

Owns: the shared hash table and its entries (layout.py: ks_bucket, e_*, ks_free, ks_free_top,
ks_seq), used_memory and the key count (ks_core's K_USED_BYTES, K_KEYS), the hit/miss/expired
counters of lookups, and the per-core free-entry list. Takes: `keyspace/<stripe>` (as SeqStripe),
`keyspace/entries`, and through exact.py `keyspace/policy`; allocates and frees through the Heap.

Any core serves any key. A key hashes (BLAKE2b, 64 bits, db_kernels.key_hash in compiled code:
Python's own hash is salted per process) to a bucket; bucket b belongs to stripe b % STRIPES,
and that stripe's lock guards the bucket's chain and every entry on it. An operation on one
key takes its stripe's lock; one on many (MSET, FLUSHALL, a policy switch) takes theirs in
ascending order, so stripes cannot deadlock with each other. Free entries come from one shared stack under the
`keyspace/entries` lock, moved in batches to a per-core list (Go's mcache pattern: a new
key takes that lock once per ENTRY_BATCH keys). Lock order: stripe -> entries -> mcentral ->
mheap, never the other way round; `keyspace/policy` (exact.py) is a leaf taken inside a stripe.
(A pool per stripe would need no extra lock but caps a stripe at max_keys / STRIPES entries;
an ordinary fill overflows one stripe long before the table is full.)

GET takes no lock at all when it can: each stripe's lock is a seqlock (SeqStripe), and a read
that saw no writer come and go keeps its result. The stripes' locks are futex words
(sim/machine/futex.py), which batch.py's compiled GET/SET path takes too.

An entry holds the key's hash, the key and the value as allocator objects (address and length;
a zero-length value has no object), the expiry time in ms (0 = none) and the 24-bit LRU/LFU
field of evict.py. Entries are never moved, so an entry index is a stable handle for sampling.
Keys and values are allocated by the core that writes them and may be freed by any core (the
allocator's cross-core frees). The table never rehashes.

`used_memory` is Redis's: the allocator's usable size of every key and value object plus
ENTRY_BYTES per key for the index, kept in per-core counters (a core adds what it allocates
and subtracts what it frees; rows may go negative, their sum is exact).

Invariants: every change to a chain, an entry on it or its value object happens under the
stripe's lock (what lets SeqStripe's readers trust an unchanged count); an entry is published on
its chain last, once its key and value objects are written; it leaves the exact policy before
its key object is freed (exact.py).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from memsim.sim.alloc.heap import Heap
from memsim.sim.alloc.owners import CACHE_ENTRY
from memsim.sim.alloc.sizeclasses import MAX_SMALL_SIZE, PAGE_SIZE, TINY_SIZE
from memsim.sim.cache.evict import LFU_INIT_VAL, LFU_POLICIES, Evictor, lfu_minutes, lfu_pack, lfu_touch, lru_clock
from memsim.sim.cache.exact import PREFIX as EXACT_PREFIX
from memsim.sim.cache.exact import ExactPolicies
from memsim.sim.cache.glob import MatchBudgetSpent
from memsim.sim.cache.layout import (
    C_LFU_DECAY_TIME,
    C_LFU_LOG_FACTOR,
    C_POLICY,
    ENTRY_BATCH,
    G_EXACT,
    K_EXPIRED,
    K_HITS,
    K_KEYS,
    K_MISSES,
    K_USED_BYTES,
    SAMPLE_WINDOW,
    STRIPES,
)
from memsim.sim.cache.seqlock import OPTIMISTIC_READS, SeqStripe
from memsim.sim.errors import InvalidArgument, ResourceExhausted
from memsim.sim.machine.locks import LockTable, SharedLock

ENTRY_BYTES = 48  # what one index entry would cost in a C layout: 5 words + 24-bit field + next
# Redis allows 512 MiB (proto-max-bulk-len); here one value is one allocator object moved by one
# heap write, and a command crosses gRPC in one message, so both stop at the heap's 16 MiB.
MAX_KEY_BYTES = 16 << 20
MAX_VALUE_BYTES = 16 << 20


def key_hash(key: bytes) -> int:
    """The table's 64-bit key hash; db_kernels.key_hash computes the same in compiled code."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def now_ms() -> int:
    return int(time.time() * 1000)


def check_key(key: bytes) -> None:
    """Refuse what is not a key: the one rule, for every lookup and for the dispatcher's argument
    checks, which run before admission so that a bad write evicts nothing (commands.py)."""
    if not isinstance(key, bytes | bytearray) or not key:
        raise InvalidArgument("bad key: keys are non-empty byte strings")
    if len(key) > MAX_KEY_BYTES:
        raise InvalidArgument(f"bad key: {len(key)} bytes is over the {MAX_KEY_BYTES}-byte limit")


@dataclass
class KeyspaceArrays:
    """The cache's shared arrays (layout.py says what each holds)."""

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
    ks_expire_cursor: np.ndarray
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
        """First boot: empty buckets, every entry free on the shared stack, no registered policy laid out."""
        self.ks_bucket.fill(-1)
        self.e_next.fill(-1)
        self.ks_free[:] = np.arange(self.ks_free.shape[0], dtype=np.int32)[::-1]
        self.ks_free_top[0] = self.ks_free.shape[0]
        self.ks_gauge[G_EXACT] = -1

    def policies(self, lock: SharedLock | None) -> ExactPolicies:
        return ExactPolicies(self.pol, self.ks_free.shape[0], self.ks_gauge, self.e_hash, lock)


class Db:
    """One core's handle on the shared table. Like Heap: one per core process, one op at a time."""

    def __init__(self, a: KeyspaceArrays, locks: LockTable, heap: Heap, clock: Callable[[], int] = now_ms):
        self.a = a
        self.heap = heap
        self.clock = clock
        self.seq = a.ks_seq.data
        # The hot paths' views of the entry arrays: a memoryview's item is a Python int at a tenth of a
        # NumPy scalar's cost (~100 ns each, and a SET or GET reads a dozen). Same memory as `a`'s arrays.
        self.v_bucket, self.v_next = a.ks_bucket.data, a.e_next.data
        self.v_hash, self.v_key, self.v_klen = a.e_hash.data, a.e_key.data, a.e_klen.data
        self.v_val, self.v_vlen, self.v_expire = a.e_val.data, a.e_vlen.data, a.e_expire.data
        self.v_lru, self.v_config = a.e_lru.data, a.ks_config.data
        self.locks = [SeqStripe(locks[f"keyspace/{s}"], self.seq, s) for s in range(STRIPES)]
        self.entries_lock = locks["keyspace/entries"]
        # A heap in an address space (sim/vm/heapsource.py) reads through the MMU: a lock-free read of a
        # stale address would fault pages in and count segfaults, so reads take the stripe lock there.
        self.heap_paged = heap.source.paged
        self.optimistic = OPTIMISTIC_READS and not self.heap_paged
        self.exact = a.policies(locks["keyspace/policy"])
        self.mask = a.ks_bucket.shape[0] - 1
        self.capacity = a.ks_free.shape[0]
        self.stats = a.ks_core[heap.core].data
        # this core's free entries, a stack (`entries[:entries_top[0]]`) that the compiled SET pops too
        # (db_kernels.py): at most 3 x ENTRY_BATCH, as _take_entry fills only an empty one and
        # _put_entry gives a batch back past 2 x ENTRY_BATCH
        self.entries = np.zeros(3 * ENTRY_BATCH + 1, np.int64)
        self.entries_top = np.zeros(1, np.int64)
        self._free_v, self._top_v = self.entries.data, self.entries_top.data
        self.evictor: Evictor | None = None  # performEvictions(), run by the dispatcher (commands.py)
        self._rng = random.Random(heap.core)  # the LFU counter's coin: reproducible per core

    def attach_evictor(self, evictor: Evictor) -> None:
        self.evictor = evictor

    def all_stripes(self) -> ExitStack:
        """Every stripe's lock, taken in order (leave the returned stack to release them)."""
        held = ExitStack()
        for lk in self.locks:
            held.enter_context(lk)
        return held

    # -- entries (the per-core list in front of the shared stack) ------------------------

    def refill_entries(self) -> int:
        """Up to ENTRY_BATCH free entries from the shared stack onto this core's empty one. Returns how many."""
        if self._top_v[0]:
            return 0
        a = self.a
        with self.entries_lock:
            shared = int(a.ks_free_top[0])
            top = min(ENTRY_BATCH, shared)
            self.entries[:top] = a.ks_free[shared - top:shared]
            a.ks_free_top[0] = shared - top
        self._top_v[0] = top
        return top

    def _take_entry(self) -> int:
        top = self._top_v[0]
        if not top:
            top = self.refill_entries()
            if not top:
                raise ResourceExhausted(
                    f"keyspace full: all {self.capacity} entries are in use (other cores may hold up to "
                    f"{2 * ENTRY_BATCH} free ones each); start the server with more (memsim serve --max-keys)")
        self._top_v[0] = top - 1
        return self._free_v[top - 1]

    def _put_entry(self, e: int) -> None:
        top = self._top_v[0]
        self._free_v[top] = e
        self._top_v[0] = top + 1
        if top + 1 > 2 * ENTRY_BATCH:
            self._give_back(ENTRY_BATCH)

    def _give_back(self, k: int) -> None:
        """The bottom k of this core's free entries back to the shared stack (the oldest, as a list's front)."""
        a, top = self.a, int(self.entries_top[0])
        batch = self.entries[:k].copy()
        self.entries[:top - k] = self.entries[k:top].copy()
        self.entries_top[0] = top - k
        with self.entries_lock:
            shared = int(a.ks_free_top[0])
            a.ks_free[shared:shared + k] = batch
            a.ks_free_top[0] = shared + k

    def entry_free(self) -> bool:
        """Whether a new key would find an entry without eviction (this core's list or the shared stack)."""
        return bool(self._top_v[0]) or int(self.a.ks_free_top[0]) > 0

    def release(self) -> None:
        """Give this core's free entries back (on a clean stop, with Heap.release_caches)."""
        if self.entries_top[0]:
            self._give_back(int(self.entries_top[0]))

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

    # -- objects and accounting ------------------------------------------------------------

    def _charge(self, n: int) -> int:
        """What storing n bytes adds to used_memory: the allocator's usable size for it."""
        if n == 0:
            return 0
        if n < TINY_SIZE:
            return n
        if n <= MAX_SMALL_SIZE:
            return self.heap.sizes[self.heap.t.class_of(n)]
        return -(-n // PAGE_SIZE) * PAGE_SIZE

    def _store(self, data: bytes) -> int:
        """A new object holding data (0 for empty data); charges used_memory."""
        if not data:
            return 0
        r = self.heap.malloc(len(data), CACHE_ENTRY)  # the keyspace's, never a client's (owners.py)
        try:
            # an object just allocated for len(data) bytes: Heap.write's checks (is there an object, is it that
            # long) hold without being made
            self.heap.raw_write(r.address, data)
        except BaseException:
            self.heap.free(r.address)  # nothing may stay allocated for a write that failed
            raise
        self.stats[K_USED_BYTES] += r.usable
        return r.address

    def _drop(self, addr: int, n: int) -> None:
        if n:
            self.stats[K_USED_BYTES] -= self.heap.usable_size(addr)
            self.heap.free(addr)

    def key_of(self, e: int) -> bytes:
        """The key of entry e, read without its lock (for sampling: may be stale, never invalid to read)."""
        n = self.v_klen[e]
        return self.heap.raw(self.v_key[e], n) if n else b""

    def _value(self, e: int) -> bytes:
        n = self.v_vlen[e]
        return self.heap.raw(self.v_val[e], n) if n else b""

    def dbsize(self) -> int:
        return int(self.a.ks_core[:, K_KEYS].sum())

    def used_memory(self) -> int:
        return int(self.a.ks_core[:, K_USED_BYTES].sum())

    # -- lookup (caller holds the stripe lock) ----------------------------------------------

    def _locate(self, key: bytes) -> tuple[int, int, int]:
        """(hash, bucket, stripe) of a key, refusing what is not one."""
        check_key(key)
        h = key_hash(bytes(key))
        bucket = h & self.mask
        return h, bucket, bucket % STRIPES

    def _find(self, bucket: int, h: int, key: bytes) -> tuple[int, int]:
        """(entry, previous entry on the chain) for key, or (-1, -1). Also run without the lock by
        optimistic reads, so a chain longer than the table (a cycle through reused entries) raises."""
        e_hash, e_klen, e_next = self.v_hash, self.v_klen, self.v_next
        n = len(key)
        prev, e = -1, self.v_bucket[bucket]
        steps = self.capacity
        while e >= 0:
            steps -= 1
            if steps < 0:
                raise RuntimeError("chain longer than the table: changed under an optimistic read")
            if e_hash[e] == h and e_klen[e] == n and self.heap.raw(self.v_key[e], n) == key:
                return e, prev
            prev, e = e, e_next[e]
        return -1, -1

    def _expired(self, e: int) -> bool:
        exp = self.v_expire[e]
        return exp != 0 and exp <= self.clock()

    def _lookup(self, key: bytes, bucket: int, h: int) -> int:
        """The live entry for key, deleting it first if it has expired (Redis's expireIfNeeded)."""
        e, prev = self._find(bucket, h, key)
        if e >= 0 and self._expired(e):
            self._unlink_and_free(bucket, e, prev)
            self.stats[K_EXPIRED] += 1
            return -1
        return e

    def _read(self, key: bytes, bucket: int, h: int) -> int:
        """lookupKeyRead(): counts keyspace_hits/misses and touches the LRU/LFU field."""
        e = self._lookup(key, bucket, h)
        self._count_read(e)
        return e

    def _count_read(self, e: int) -> None:
        if e < 0:
            self.stats[K_MISSES] += 1
        else:
            self.stats[K_HITS] += 1
            self._touch(e)

    def _touch(self, e: int, new: bool = False) -> None:
        """Stamp the 24-bit field on access (Redis's updateLRU/updateLFU in lookupKey): the LRU clock,
        or the LFU counter (decayed, then log-incremented); and tell a registered policy (exact.py)."""
        c = self.v_config
        policy = c[C_POLICY]
        now = self.clock()
        if self.exact.active >= 0:
            self.exact.touched(e, new)
        if policy in LFU_POLICIES:
            minutes = lfu_minutes(now / 1000.0)
            if new:
                self.v_lru[e] = lfu_pack(minutes, LFU_INIT_VAL)
            else:
                self.v_lru[e] = lfu_touch(self.v_lru[e], c[C_LFU_LOG_FACTOR], c[C_LFU_DECAY_TIME],
                                          minutes, self._rng.random())
        else:
            self.v_lru[e] = lru_clock(now)

    def _publish(self, e: int, bucket: int, h: int, key_obj: int, klen: int, val_obj: int, vlen: int,
                 expire_at_ms: int) -> None:
        """dbAdd(): fill a taken entry with its objects and put it on its chain, last."""
        self.v_hash[e] = h
        self.v_key[e], self.v_klen[e] = key_obj, klen
        self.v_val[e], self.v_vlen[e] = val_obj, vlen
        self.v_expire[e] = expire_at_ms
        self._touch(e, new=True)
        self.v_next[e] = self.v_bucket[bucket]
        self.v_bucket[bucket] = e  # publish last: the chain never points at a half-built entry
        self.stats[K_USED_BYTES] += ENTRY_BYTES
        self.stats[K_KEYS] += 1

    def _unlink_and_free(self, bucket: int, e: int, prev: int) -> None:
        """dbGenericDelete(): off the policy first (while the key object still exists), off the chain,
        objects freed, the entry back on this core's list."""
        a = self.a
        self.exact.removed(e)
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

    # -- keys commands (Redis's db.c) -------------------------------------------------------

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
            return self._lookup(key, bucket, h) >= 0

    def object_field(self, key: bytes) -> int | None:
        """The key's 24-bit LRU/LFU field without touching it (OBJECT FREQ/IDLETIME); None if missing."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, bucket, h)
            return int(self.a.e_lru[e]) if e >= 0 else None

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

    def flushall(self) -> int:
        """FLUSHALL: delete every key, holding every stripe lock (in order) so nothing slips in."""
        a = self.a
        removed = 0
        with self.all_stripes():
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
        scanned = 0
        while scanned < nb:  # every bucket once at most, wrapping round to those before the start
            hi = min(nb, start + SAMPLE_WINDOW, start + nb - scanned)
            for head in a.ks_bucket[start:hi][a.ks_bucket[start:hi] >= 0].tolist():
                e, steps = head, 0
                while e >= 0 and steps < 64:
                    if a.e_klen[e] and (not volatile or a.e_expire[e]):
                        out.append(e)
                        if len(out) >= n:
                            return out
                    e, steps = int(a.e_next[e]), steps + 1
            scanned += hi - start
            start = 0 if hi >= nb else hi
        return out
