"""The TLB: one per core, in that worker's own memory; set-associative, LRU within a set.

An entry caches one translation: (space, vpn) -> the frame, whether the page may be written,
whether it is dirty, and whether it is a huge page (its vpn is then the run's first page and
it covers `span` pages). Sets are picked by the vpn's low bits, as hardware indexes them.

Shootdown. A page unmapped, remapped, protected or evicted by one core must never be used
through another core's entry. Every such change happens under the space's lock and, before
that lock is released, bumps the space's generation (`sp_tlbgen`, shared). Every entry
remembers the generation it was filled under, and every use of an entry compares it with
the space's current one, under the same space lock (the MMU takes it for every access).
So an access that follows a change (it must take the lock after the changer released it)
sees the new generation and misses; an access that precedes it finished before the change
began. That is Linux's lazy TLB flush by mm generation (`tlb_gen`, flush_tlb_mm_range)
without the IPI: cores that are not running the space catch up on their next use, which
hardware cannot do and a simulator can, because the check is as cheap as the lookup. The
price is coarseness: any change flushes every entry the core holds for that space.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from memsim.sim.vm.layout import HUGE_FRAMES


@dataclass
class TLBEntry:
    frame: int  # machine-wide frame number of the (first) page
    writable: bool
    dirty: bool
    gen: int
    span: int = 1  # pages covered: 1, or a huge page's run (a PROT_NONE page is never filled)


class TLB:
    def __init__(self, entries: int, ways: int, gens: np.ndarray, huge_pages: int = HUGE_FRAMES):
        if entries < 1 or ways < 1 or entries % ways:
            raise ValueError(f"a TLB of {entries} entries cannot have {ways}-way sets")
        self.entries, self.ways = entries, ways
        self.nsets = entries // ways
        self.sets: list[OrderedDict[tuple[int, int], TLBEntry]] = [OrderedDict() for _ in range(self.nsets)]
        self.gens = gens
        self.huge_pages = huge_pages
        self.hits = self.misses = 0

    def lookup(self, space: int, vpn: int) -> TLBEntry | None:
        gen = int(self.gens[space])
        for key in ((space, vpn), (space, -1 - vpn // self.huge_pages)):  # a 4 KiB entry, then a huge one
            s = self.sets[key[1] % self.nsets]
            e = s.get(key)
            if e is not None:
                if e.gen != gen:
                    del s[key]  # stale: the space changed since this entry was filled
                    continue
                s.move_to_end(key)
                self.hits += 1
                return e
        self.misses += 1
        return None

    def fill(self, space: int, vpn: int, entry: TLBEntry) -> None:
        key = (space, vpn if entry.span == 1 else -1 - vpn // self.huge_pages)
        s = self.sets[key[1] % self.nsets]
        s[key] = entry
        s.move_to_end(key)
        if len(s) > self.ways:
            s.popitem(last=False)

    def flush(self) -> None:
        for s in self.sets:
            s.clear()

    def __len__(self) -> int:
        return sum(len(s) for s in self.sets)
