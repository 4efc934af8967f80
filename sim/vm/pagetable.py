"""The interface of the four page-table kinds, and what they share: tables live in pool frames.

Each kind is a module (pt_linear, pt_hybrid, pt_multilevel, pt_inverted) with a class that
maps virtual page numbers of one address space to PTEs (pte.py):

    walk(vpn)  -> (pte, levels)   the entry (0 if none) and how many table reads the walk took
    set(vpn, pte)                 write an entry, allocating table pages on the way if needed
    clear_range(lo, hi)           drop entries of vpns lo..hi-1, freeing tables left empty
    entries(lo, hi)               (vpns, ptes) of the non-zero entries of vpns lo..hi-1
    table_frames()                the pool frames this space's table occupies
    destroy()                     free every table frame

Every table is bytes in pool frames, read and written through NumPy views of physical
memory, so a table's cost is frames the users' pages cannot have, exactly as in a kernel.
The caller holds the space's lock for every call: a table is never walked and changed at once.
The whole state of a table is its frames plus the few numbers in the space table (`sp_*`),
so any core can walk any space's table.

Range operations (clear_range, entries) cost what is populated, not the range's length, as
Linux's walk_page_range (mm/pagewalk.c) skips empty PGD/PUD/PMD entries: a multilevel table
descends only into present tables, an inverted one looks only at the frames and swap slots its
space owns, and a linear or hybrid table reads at most its own entries (which the space paid
for in frames). `visited` counts the entries a range walk handled one by one (vmstat's
pagewalk_entries), so that tests can see the cost follow the population.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from memsim.sim.machine.memory import FRAME_PAGETABLE
from memsim.sim.vm.frames import FramePool


@dataclass
class TableContext:
    """What a page table needs from the machine: the pool and the space table's row."""

    pool: FramePool
    a: dict[str, np.ndarray]  # the VM's shared arrays
    space: int
    frame_size: int
    alloc_frames: Callable[[int], int] | None = None  # n contiguous table frames; may reclaim pages for them

    def alloc(self, n: int) -> int:
        if self.alloc_frames is not None:
            return self.alloc_frames(n)
        return self.pool.take_run(n, FRAME_PAGETABLE)

    @property
    def words(self) -> np.ndarray:
        """The pool as 64-bit words."""
        return _words(self.pool, np.uint64)

    @property
    def words32(self) -> np.ndarray:
        return _words(self.pool, np.uint32)


_views: dict[tuple[int, str], np.ndarray] = {}


def _words(pool: FramePool, dtype) -> np.ndarray:
    key = (id(pool.mem.data), np.dtype(dtype).name)
    v = _views.get(key)
    if v is None:
        start = pool.base * pool.frame_size
        v = pool.mem.data[start:start + pool.nframes * pool.frame_size].view(dtype)
        _views[key] = v
    return v


class PageTable(ABC):
    kind: str

    def __init__(self, ctx: TableContext):
        self.ctx = ctx
        self.a = ctx.a
        self.sp = ctx.space
        self.visited = 0  # entries handled one by one by range walks (clear_range, entries)

    @abstractmethod
    def walk(self, vpn: int) -> tuple[int, int]: ...

    @abstractmethod
    def set(self, vpn: int, pte: int) -> None: ...

    @abstractmethod
    def clear_range(self, lo: int, hi: int) -> None: ...

    @abstractmethod
    def entries(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def table_frames(self) -> int: ...

    @abstractmethod
    def destroy(self) -> None: ...

    def prepare(self, lo: int, hi: int) -> None:  # noqa: B027 - only the hybrid table sizes itself to its regions
        """A region lo..hi-1 (vpns) was mapped: a table that sizes itself to its regions grows here."""


NO_ENTRIES = (np.zeros(0, np.int64), np.zeros(0, np.uint64))
