"""The remembered sets: V8's `remembered-set.h` over `slot-set.h`, one bit per tagged slot.

OLD_TO_NEW holds the slots of old and large objects that (may) point into new space: the
scavenger's extra roots, filled by the write barrier (write_barrier.py) and by the scavenger when a
promoted object still points young. OLD_TO_OLD holds slots pointing into evacuation candidates,
recorded while marking, so compaction can update them (mark-compact).

V8 keeps a SlotSet per page (lazily allocated buckets of 1024 bits). Here the bits are indexed by
*physical frame*, machine-wide (`v8_slots[type]`, one bit per word of the VM pool): a heap page's
bits are its frames' rows in address order, no per-page allocation is needed, and a frame belongs
to one committed page of one isolate at a time, so that isolate's locker guards its bits.
`pg_slots[iso, slot, type]` counts the set bits of each page, so that whole pages without slots
are skipped (V8's per-page "has slots" test; Orinoco's work items are the pages with a count).
A spare bit (a slot that no longer points where its type says) is harmless: the consumer checks
the slot's current value and drops it (V8's REMOVE_SLOT).

Owns: `v8_slots`, `pg_slots`. Callers hold the isolate's locker.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.v8.direct_map import DirectMap
from memsim.sim.v8.layout import HEAP_BASE, V8Arrays, V8Geometry


class RememberedSet:
    def __init__(self, a: V8Arrays, iso: int, g: V8Geometry, dmap: DirectMap):
        self.a, self.iso, self.g, self.dmap = a, iso, g, dmap

    def bit(self, va: int) -> int:
        """The pool-wide bit of the slot at va."""
        return self.dmap.index(va) - self.g.pool_base * self.g.words_per_frame

    def insert(self, kind: int, va: int) -> bool:
        """Record the slot at va; True if it was not recorded yet."""
        b = self.bit(va)
        row = self.a.v8_slots[kind]
        w, m = b >> 6, np.uint64(1 << (b & 63))
        if row[w] & m:
            return False
        row[w] |= m
        self.a.pg_slots[self.iso, (va - HEAP_BASE) >> self.g.page_shift, kind] += 1
        return True

    def contains(self, kind: int, va: int) -> bool:
        b = self.bit(va)
        return bool(int(self.a.v8_slots[kind, b >> 6]) >> (b & 63) & 1)

    def _rows(self, page: int, nbytes: int) -> np.ndarray:
        """Each of the page's frames' first bitmap word."""
        frames = self.dmap.frames(page, nbytes).astype(np.int64)
        return (frames - self.g.pool_base) * (self.g.words_per_frame // 64)

    def slots(self, kind: int, page: int, nbytes: int) -> np.ndarray:
        """Every recorded slot's address in [page, page + nbytes), ascending."""
        first = self._rows(page, nbytes)
        per = self.g.words_per_frame // 64
        words = self.a.v8_slots[kind][(first[:, None] + np.arange(per)).ravel()]
        bits = np.unpackbits(words.view(np.uint8), bitorder="little")
        hits = np.flatnonzero(bits)
        return page + (hits // self.g.words_per_frame) * self.g.frame_size + (hits % self.g.words_per_frame) * 8

    def clear(self, kind: int, page: int, nbytes: int) -> None:
        """Forget every slot of [page, page + nbytes) (the page is freed, or its slots were consumed)."""
        first = self._rows(page, nbytes)
        per = self.g.words_per_frame // 64
        self.a.v8_slots[kind][(first[:, None] + np.arange(per)).ravel()] = 0
        lo = (page - HEAP_BASE) >> self.g.page_shift
        self.a.pg_slots[self.iso, lo:lo + max(1, nbytes >> self.g.page_shift), kind] = 0

    def remove(self, kind: int, va: int) -> None:
        b = self.bit(va)
        row = self.a.v8_slots[kind]
        w, m = b >> 6, np.uint64(1 << (b & 63))
        if row[w] & m:
            row[w] &= ~m
            self.a.pg_slots[self.iso, (va - HEAP_BASE) >> self.g.page_shift, kind] -= 1
