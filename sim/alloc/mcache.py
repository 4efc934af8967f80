"""mcache: one core's private cache of free objects, one list per size class. No lock.

Only the worker process of its core ever touches an mcache (it lives in that process's
own memory, as Go's mcache lives in its P), so allocation and free on the fast path are a
Python list pop/append plus the object's own state word: no lock, no atomic, and the lock
counters stay flat while `cache_hits` rises.

When a list runs dry the cache refills a batch from the class's mcentral (one lock
acquisition per batch); when it grows past twice the batch it flushes one batch back
(tcmalloc's ThreadCache::ListTooLong). With per-core caches switched off (an experiment
switch), every allocation and free goes through mcentral under its lock, one object at a
time: the design Go and tcmalloc moved away from, kept here so it can be measured.
"""

from __future__ import annotations

from memsim.sim.alloc import layout as L
from memsim.sim.alloc.mcentral import MCentral


class MCache:
    def __init__(self, core: int, centrals: list[MCentral | None], stats_row: memoryview, enabled: bool = True):
        self.core = core
        self.state = 1 + core  # slot_state value for "cached by this core"
        self.centrals = centrals
        self.lists: list[list[int]] = [[] for _ in centrals]
        self.stats = stats_row
        self.enabled = enabled

    def alloc(self, cls: int) -> tuple[int, bool]:
        """Take a free object of class cls. Returns (slot, hit)."""
        lst = self.lists[cls]
        if lst:
            self.stats[L.S_CACHE_HITS] += 1
            return lst.pop(), True
        c = self.centrals[cls]
        assert c is not None
        with c.lock:
            if self.enabled:
                lst.extend(c.remove_range(c.batch, self.state))
                self.stats[L.S_CACHE_REFILLS] += 1
            else:
                lst.extend(c.remove_range(1, self.state))
                self.stats[L.S_CENTRAL_DIRECT] += 1
        return lst.pop(), False

    def free(self, cls: int, slot: int) -> None:
        """Take back an object this core has just freed (its state is already CACHED by us)."""
        lst = self.lists[cls]
        lst.append(slot)
        c = self.centrals[cls]
        assert c is not None
        if not self.enabled:
            with c.lock:
                c.insert_range(lst)
            lst.clear()
            self.stats[L.S_CENTRAL_DIRECT] += 1
            return
        if len(lst) > 2 * c.batch:
            batch = lst[: c.batch]
            del lst[: c.batch]
            with c.lock:
                c.insert_range(batch)
            self.stats[L.S_CACHE_FLUSHES] += 1

    def release_all(self) -> int:
        """Return every cached object to its mcentral (Go's mcache.releaseAll). Returns objects moved."""
        moved = 0
        for cls, lst in enumerate(self.lists):
            if lst:
                c = self.centrals[cls]
                assert c is not None
                with c.lock:
                    c.insert_range(lst)
                moved += len(lst)
                lst.clear()
        return moved

    def cached(self) -> int:
        return sum(len(lst) for lst in self.lists)
