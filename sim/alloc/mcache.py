"""mcache: one core's private cache of free objects, one stack per size class. No lock.

Only the worker process of its core ever touches an mcache (it lives in that process's
own memory, as Go's mcache lives in its P), so allocation and free on the fast path are a
pop or a push on the class's stack plus the object's own state word: no lock, no atomic,
and the lock counters stay flat while `cache_hits` rises.

The stacks are one NumPy array (`slots[cls, :count[cls]]`, the top at the end) rather than
Python lists so that compiled code can allocate from them too, as Go's mallocgc takes its
fast path (nextFreeFast) without a call into the runtime's slow path: sim/alloc/malloc_kernels.py
pops them for the keyspace's compiled SET. Python's own path goes through memoryviews of the
same arrays (an item costs a tenth of a NumPy scalar's).

When a stack runs dry the cache refills a batch from the class's mcentral (one lock
acquisition per batch); when it grows past twice the batch it flushes one batch back
(tcmalloc's ThreadCache::ListTooLong). With per-core caches switched off (an experiment
switch), every allocation and free goes through mcentral under its lock, one object at a
time: the design Go and tcmalloc moved away from, kept here so it can be measured.

Invariant: count[cls] <= 2 * batch + 1 (a refill happens only on an empty stack, a flush as
soon as a push passes 2 * batch), so `slots` is sized by the largest batch once.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.alloc import layout as L
from memsim.sim.alloc.mcentral import MCentral
from memsim.sim.errors import ResourceExhausted


class MCache:
    def __init__(self, core: int, centrals: list[MCentral | None], stats_row: memoryview, enabled: bool = True):
        self.core = core
        self.state = 1 + core  # slot_state value for "cached by this core"
        self.centrals = centrals
        depth = 2 * max((c.batch for c in centrals if c is not None), default=1) + 2
        self.slots = np.zeros((len(centrals), depth), np.int64)
        self.count = np.zeros(len(centrals), np.int64)
        # 1 where refill() ran for a compiled caller and no pop has come since: that pop is the allocation
        # that missed (counted by the refill), not a hit, as alloc() counts its own refills
        self.owed = np.zeros(len(centrals), np.int64)
        self._slots, self._count, self._owed = self.slots.data, self.count.data, self.owed.data
        self.stats = stats_row
        self.enabled = enabled

    def _push_all(self, cls: int, slots: list[int]) -> None:
        n = self._count[cls]
        self.slots[cls, n:n + len(slots)] = slots
        self._count[cls] = n + len(slots)

    def alloc(self, cls: int) -> tuple[int, bool]:
        """Take a free object of class cls. Returns (slot, hit)."""
        n = self._count[cls]
        if n:
            self._count[cls] = n - 1
            if self._owed[cls]:
                self._owed[cls] = 1
                return self._slots[cls, n - 1], False
            self.stats[L.S_CACHE_HITS] += 1
            return self._slots[cls, n - 1], True
        c = self.centrals[cls]
        assert c is not None
        with c.lock:
            if self.enabled:
                got = c.remove_range(c.batch, self.state)
                self.stats[L.S_CACHE_REFILLS] += 1
            else:
                got = c.remove_range(1, self.state)
                self.stats[L.S_CENTRAL_DIRECT] += 1
        self._push_all(cls, got[:-1])
        return got[-1], False

    def refill(self, cls: int) -> bool:
        """A batch from mcentral onto an empty stack, for a compiled caller that found it so (Go's
        mcache.refill); False, with nothing changed, where the cache is switched off or
        the heap has no object left to give (the caller's slow path then raises the out-of-memory)."""
        c = self.centrals[cls]
        if not self.enabled or c is None or self._count[cls]:
            return False
        try:
            with c.lock:
                got = c.remove_range(c.batch, self.state)
        except ResourceExhausted:
            return False
        self.stats[L.S_CACHE_REFILLS] += 1
        self._push_all(cls, got)
        self._owed[cls] = 1
        return True

    def free(self, cls: int, slot: int) -> None:
        """Take back an object this core has just freed (its state is already CACHED by us)."""
        c = self.centrals[cls]
        assert c is not None
        if not self.enabled:
            with c.lock:
                c.insert_range([slot])
            self.stats[L.S_CENTRAL_DIRECT] += 1
            return
        n = self._count[cls]
        self._slots[cls, n] = slot
        n += 1
        if n <= 2 * c.batch:
            self._count[cls] = n
            return
        row = self.slots[cls]
        batch = row[:c.batch].tolist()  # the oldest (bottom) batch goes back, as the list's front did
        row[:n - c.batch] = row[c.batch:n].copy()
        self._count[cls] = n - c.batch
        with c.lock:
            c.insert_range(batch)
        self.stats[L.S_CACHE_FLUSHES] += 1

    def release_all(self) -> int:
        """Return every cached object to its mcentral (Go's mcache.releaseAll). Returns objects moved."""
        moved = 0
        for cls in range(len(self.centrals)):
            n = int(self.count[cls])
            if n:
                c = self.centrals[cls]
                assert c is not None
                with c.lock:
                    c.insert_range(self.slots[cls, :n].tolist())
                moved += n
                self.count[cls] = 0
        self.owed[:] = 0
        return moved

    def cached(self) -> int:
        return int(self.count.sum())
