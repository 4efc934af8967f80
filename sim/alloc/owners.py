"""Who allocated what: the records behind a listing of live objects and a client's release.

Every object carries `obj_owner` (layout.py): the core that allocated it and, if a client asked
for it, that client's entry in a small shared client table (`client_id`, `client_lease`,
`client_expiry`, MAX_CLIENTS entries; entry 0 is "no client"). A client is named by the 63-bit
id it chose (server/sessions.py); the table gives it an entry on its first allocation, and its
lease says until when it is alive. A closing client's objects are freed and its entry given
back (begin_release, client_objects, free_listed, finish_release); `expired(now)` finds clients
that died without closing, whose objects go the same way.

A release lists the entry's objects once and then frees that list, in chunks, with other work
in between; meanwhile another core may free one of them (a client may free its own objects
anywhere) and hand the slot to someone else. So each is freed only if its owner word still
names the entry being released (free_listed), checked just before the free. The check is not
atomic with the free's CAS (that would take a double-word CAS, as check_client_access says), so
the free and reuse of that one slot on another core within those microseconds still escapes it.

An allocation takes its client's entry before it publishes its object (heap.py writes the owner
word just before the size), so one that took it just before the client's release began can
publish after the release listed the entry. finish_release therefore does not give the entry
back: it leaves a TOMBSTONE, which no claim takes, for TOMBSTONE_S; then the lease reaper
(`tombstones(now)`) sweeps it like any release, freeing what was published late, and only then
is the entry free. An allocation holds an entry for the length of one malloc under its core's
mutex, far below TOMBSTONE_S; one stalled longer (a stopped core) could still leave its object
to the entry's next client.

A tiny object (under 16 bytes) shares a 16-byte block with others (Go's tiny allocator); a
block holds one owner's objects only (heap.py starts a new block when another owner asks), so
the block's record is each of its objects' record. A large object's record is at its span's
first slot.

Like `mheap.lock`'s other users, claiming and retiring entries take the heap lock (a client
claims once, so it is rare); reading the table takes no lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from memsim.sim.alloc import layout as L
from memsim.sim.alloc.heap import Heap
from memsim.sim.alloc.sizeclasses import MAX_OBJECTS_PER_SPAN, PAGE_SIZE
from memsim.sim.alloc.tiny import BLOCK, object_end
from memsim.sim.errors import FailedPrecondition, ResourceExhausted

CLIENT_MASK = (1 << L.OWNER_CORE_SHIFT) - 1
# The keyspace's own objects (sim/cache: keys and values). They are no client's, so no release
# frees them, and they are not the allocator service's to free, read or write even given their
# address: the cache alone decides their life, under its stripe locks. An entry no client table
# row can have (the table has MAX_CLIENTS rows).
CACHE_ENTRY = CLIENT_MASK
RELEASE_GRACE_S = 60.0  # a release that has not finished by then (its core died) is taken over
# client_id of a released entry awaiting its sweep. A negated client id (a release under way) is
# -(2**63 - 1) at the least, so no client's release can look like a tombstone.
TOMBSTONE = -(1 << 63)
TOMBSTONE_S = 5.0  # how long a released entry stays out of claims before the reaper sweeps it


@dataclass(frozen=True)
class LiveObject:
    address: int
    size: int
    core: int  # -1: unknown (allocated before owners were recorded)
    client: int  # the client's 63-bit id; 0 = none (kept, the cache's, or a caller without an id)
    kind: str  # small, large or tiny


class Owners:
    """One core's view of the owner records (`heap` is that core's Heap, for its lock and layout)."""

    def __init__(self, heap: Heap):
        self.heap = heap
        self.a: L.HeapArrays = heap.a

    # -- the client table --------------------------------------------------------------------

    def entry_of(self, client: int) -> int:
        """The client's entry, or 0 if it has none."""
        if not client:
            return 0
        hits = np.flatnonzero(self.a.client_id == client)
        return int(hits[0]) if len(hits) else 0

    def claim(self, client: int, lease: float, now: float) -> int:
        """The client's entry, claiming a free one (and renewing its lease) if it has none."""
        entry = self.entry_of(client)
        if entry:
            return entry
        a = self.a
        with self.heap.mheap.lock:
            entry = self.entry_of(client)  # again, under the lock: another core may have claimed it
            if not entry:
                free = np.flatnonzero(a.client_id[1:] == 0)
                if not free.size:
                    raise ResourceExhausted(f"all {L.MAX_CLIENTS - 1} client entries hold objects; close clients "
                                            f"or allocate with keep=True (kept objects are nobody's)")
                entry = int(free[0]) + 1
                a.client_lease[entry], a.client_expiry[entry] = lease, now + lease
                a.client_id[entry] = client
        return entry

    def renew(self, client: int, now: float) -> bool:
        """Extend the client's lease; False if it holds no entry (a plain store: see vm.renew's reason)."""
        entry = self.entry_of(client)
        if entry:
            self.a.client_expiry[entry] = now + self.a.client_lease[entry]
        return bool(entry)

    def expired(self, now: float) -> list[int]:
        """Entries of clients whose lease ran out before `now` (and stalled releases, negated ids)."""
        a = self.a
        ids = a.client_id[1:]
        return (np.flatnonzero((ids != 0) & (ids != TOMBSTONE) & (a.client_expiry[1:] < now)) + 1).tolist()

    def tombstones(self, now: float) -> list[int]:
        """Released entries due for their sweep before `now` (begin_release(entry, TOMBSTONE, ...))."""
        a = self.a
        return (np.flatnonzero((a.client_id[1:] == TOMBSTONE) & (a.client_expiry[1:] < now)) + 1).tolist()

    # -- release: a closing client, or one whose lease ran out -----------------------------------

    def begin_release(self, entry: int, client: int, now: float, expired_only: bool = False) -> bool:
        """Take entry `entry` of `client` out of use (negated: no lookup finds it, no claim reuses
        it) for one releaser, which then frees its objects (free_listed) and gives it back
        (finish_release). If that releaser dies, the entry's expiry (now + RELEASE_GRACE_S) lets a
        reaper take it over later. `client` TOMBSTONE begins a released entry's sweep. False if the
        entry is not (or no longer) the client's."""
        a = self.a
        with self.heap.mheap.lock:
            if not client or int(a.client_id[entry]) != client:
                return False
            if expired_only and float(a.client_expiry[entry]) >= now:
                return False  # renewed meanwhile
            a.client_id[entry] = -abs(client)
            a.client_expiry[entry] = now + RELEASE_GRACE_S
            return True

    def free_some(self, entry: int, budget: int) -> tuple[int, int]:
        """Free up to `budget` objects of a released entry: (objects tried, objects freed); (0, 0)
        when none is left. Lists the entry each time: for a few objects; a release lists once."""
        todo = self.client_objects(entry)[:budget]
        return len(todo), self.free_listed(entry, todo)

    def free_listed(self, entry: int, addrs: list[int]) -> int:
        """Free those of `addrs` (listed earlier for released entry `entry`) that are still that
        entry's; how many were freed. Another core may have freed one since the listing and handed
        its slot to another owner: the owner word, read just before the free, says so."""
        freed = 0
        for addr in addrs:
            word = self.heap.owner_word(addr)
            if word is None or word & CLIENT_MASK != entry:
                continue  # freed meanwhile, and maybe someone else's now
            try:
                self.heap.free(addr)
                freed += 1
            except FailedPrecondition:
                pass  # freed by someone else between the check and the free
        return freed

    def finish_release(self, entry: int, now: float | None = None) -> None:
        """End a release begun at `now`: the entry becomes a TOMBSTONE until now + TOMBSTONE_S (an
        allocation that took it before the release may still publish under it); end a
        tombstone's sweep: the entry is free."""
        a = self.a
        with self.heap.mheap.lock:
            if int(a.client_id[entry]) == TOMBSTONE:
                a.client_id[entry] = 0
            else:
                a.client_expiry[entry] = (time.monotonic() if now is None else now) + TOMBSTONE_S
                a.client_id[entry] = TOMBSTONE

    # -- live objects ------------------------------------------------------------------------

    def _small_slots(self) -> np.ndarray:
        used = int(self.a.heap_gauges[L.G_ARENA_PAGES]) * MAX_OBJECTS_PER_SPAN
        return np.flatnonzero(self.a.slot_state[:used] == L.ALLOCATED)

    def _large_spans(self) -> np.ndarray:
        a = self.a
        used = int(a.heap_gauges[L.G_ARENA_PAGES])
        pages = np.arange(used)
        return pages[(a.span_state[:used] == L.SPAN_LARGE) & (a.page_span[:used] == pages)]

    def client_objects(self, entry: int) -> list[int]:
        """Addresses of the objects (small, large, tiny) recorded for client entry `entry`."""
        a, base = self.a, self.heap.base
        slots = self._small_slots()
        slots = slots[(a.obj_owner[slots] & CLIENT_MASK) == entry]
        words = a.obj_size[slots]
        tiny = (words == L.TINY_RETIRED) | (words >= L.TINY_HELD)
        out: list[int] = self._slot_addrs(slots[(words != 0) & ~tiny]).tolist()
        for block in self._slot_addrs(slots[tiny]).tolist():
            marks = int(a.tiny_marks[(block - base) // BLOCK])
            out.extend(block + off for off, _ in tiny_objects(marks))
        spans = self._large_spans()
        spans = spans[(a.obj_owner[spans * MAX_OBJECTS_PER_SPAN] & CLIENT_MASK) == entry]
        out.extend((base + spans * PAGE_SIZE).tolist())
        return out

    def live(self, core: int | None = None, client: int | None = None,
             limit: int = 1000) -> tuple[list[LiveObject], int]:
        """Up to `limit` live objects (those `core` allocated, those `client` holds), and how many match."""
        a, base = self.a, self.heap.base
        entry = None if client is None else (self.entry_of(client) if client else 0)
        if client and not entry:
            return [], 0  # a client with no entry holds nothing

        def keep(words: np.ndarray) -> np.ndarray:
            ok = np.ones(words.shape, dtype=bool)
            if core is not None:
                ok &= (words >> L.OWNER_CORE_SHIFT) == core + 1
            if entry is not None:
                ok &= (words & CLIENT_MASK) == entry
            return ok

        slots = self._small_slots()
        slots = slots[keep(a.obj_owner[slots].astype(np.int64))]
        spans = self._large_spans()
        spans = spans[keep(a.obj_owner[spans * MAX_OBJECTS_PER_SPAN].astype(np.int64))]
        words = a.obj_size[slots]
        tiny = (words == L.TINY_RETIRED) | (words >= L.TINY_HELD)
        small = slots[(words != 0) & ~tiny]  # 0: being allocated or freed right now
        blocks = slots[tiny]
        block_marks = a.tiny_marks[(self._slot_addrs(blocks) - base) // BLOCK] if blocks.size else blocks
        # Counted without a loop, so that the cost in Python is bounded by `limit`, not by the heap.
        total = int(spans.size + small.size + np.bitwise_count(block_marks & 0xFFFF).sum())
        out: list[LiveObject] = []
        for span in spans[:limit].tolist():
            out.append(self._describe(base + span * PAGE_SIZE, int(a.span_reqsize[span]),
                                      int(a.obj_owner[span * MAX_OBJECTS_PER_SPAN]), "large"))
        small = small[:max(0, limit - len(out))]
        for slot, addr in zip(small.tolist(), self._slot_addrs(small).tolist(), strict=True):
            out.append(self._describe(addr, int(a.obj_size[slot]), int(a.obj_owner[slot]), "small"))
        for slot, addr in zip(blocks.tolist(), self._slot_addrs(blocks).tolist(), strict=True):
            if len(out) >= limit:
                break
            for off, size in tiny_objects(int(a.tiny_marks[(addr - base) // BLOCK])):
                if len(out) < limit:
                    out.append(self._describe(addr + off, size, int(a.obj_owner[slot]), "tiny"))
        return out, total

    def _slot_addrs(self, slots: np.ndarray) -> np.ndarray:
        spans, idx = np.divmod(slots, MAX_OBJECTS_PER_SPAN)
        sizes = np.asarray(self.heap.sizes, dtype=np.int64)[self.a.span_class[spans]]
        return self.heap.base + spans * PAGE_SIZE + idx * sizes

    def _describe(self, addr: int, size: int, word: int, kind: str) -> LiveObject:
        entry = word & CLIENT_MASK
        cid = int(self.a.client_id[entry]) if 0 < entry < L.MAX_CLIENTS else 0
        # A negative id: a released (or releasing) entry, whose objects are on their way out.
        return LiveObject(addr, size, (word >> L.OWNER_CORE_SHIFT) - 1, max(cid, 0), kind)

    def check_client_access(self, addr: int, what: str) -> None:
        check_client_access(self.heap, addr, what)


def tiny_objects(marks: int) -> list[tuple[int, int]]:
    """(offset, size) of each object in a tiny block, from its start (bit i) and end (bit 16 + j) marks
    (an object with no end mark after its start ends at byte 15; tiny.py)."""
    return [(off, object_end(marks, off) - off + 1) for off in range(BLOCK) if marks >> off & 1]


def check_client_access(heap: Heap, addr: int, what: str) -> None:
    """Refuse a client's free, read or write of an object of the cache (CACHE_ENTRY).

    A free slot is nobody's (heap.owner_word is None there), so a double free of what was once
    the cache's is told it is a double free. Checked before the operation, under the core's
    mutex; not atomic with it. The one
    interleaving it misses needs the client to race a free of its own object on another core (a
    double free, which it is told about) and the cache to allocate that very slot in between,
    within the microseconds between this check and the operation's CAS; closing it would take the
    owner word into the free's CAS, a double-word CAS on this layout."""
    word = heap.owner_word(addr)
    if word is not None and word & CLIENT_MASK == CACHE_ENTRY:
        raise FailedPrecondition(f"{what} of {addr:#x} refused: the object there belongs to the cache "
                                 f"(a key or a value of memsim.v1.Cache); only the cache's commands reach it")
