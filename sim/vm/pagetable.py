"""The page-table interface, the registry of kinds, and what every kind shares: tables live in pool frames.

A kind is a module with one `PageTable` subclass, registered by name (`register("linear",
LinearTable)`, as sim/policies registers its policies); kinds.py registers the built-in ones. The registry's
order gives each kind its id, the number a space's `sp_kind` holds, so every process must
register the same kinds in the same order (workers inherit them from the supervisor by fork).
One object per (core, space) maps the space's virtual page numbers to PTEs (pte.py):

  creation
    shape(bits, levels, level_bits, page_shift)  checks a new space's geometry, before anything changes
    create(ctx, shape)            lays the new space's table out (its frames, its `sp_*` fields)
    region_window(kind, bits, margin)  where a region of that kind may go (hybrid: its segment)
    prepare(lo, hi)               a region lo..hi-1 (vpns) was mapped: a table that sizes itself grows
  the entries
    walk(vpn) -> (pte, levels)    the entry (0 if none) and how many table reads the walk took
    set(vpn, pte)                 write an entry, allocating table pages on the way if needed
    clear_range(lo, hi)           drop entries of vpns lo..hi-1, freeing tables left empty
    entries(lo, hi)               (vpns, ptes) of the non-zero entries of vpns lo..hi-1
  the frames it holds
    frames()                      every pool frame this space's table occupies (recovery reaches them)
    table_frames()                how many (the space's page-table cost in frames)
    table_bytes()                 the bytes the reports charge the space for its table
    machine_frames(a)             frames a kind holds for the whole machine (the inverted table's)
    destroy()                     free every frame of this space's table

Every table is bytes in pool frames, read and written through NumPy views of physical
memory (FramePool.words), so a table's cost is frames the users' pages cannot have, exactly
as in a kernel. Locks: the caller holds the space's lock (`vm/space/<i>`) for every call, so a
table is never walked and changed at once; creation also holds `vm/spaces`. A kind whose
structure is shared by every space takes its own lock inside (the inverted table: `vm/ipt`,
then `vm/swap` for its swap directory), and table frames come from `ctx.alloc` (vm/frames,
possibly reclaiming: vmscan.py), in layout.py's order. The whole state of a table is its
frames plus the few numbers in the space table (`sp_*`), so any core can walk any space's table.

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
from typing import ClassVar

import numpy as np

from memsim.sim.errors import InvalidArgument
from memsim.sim.vm.frames import FramePool
from memsim.sim.vm.layout import VMArrays, VMLocks

MAX_BITS = 57  # x86-64's 5-level paging: the widest address a space may have


@dataclass(frozen=True)
class SpaceShape:
    """A space's geometry: its address width and, for a radix tree, its levels and their width."""

    bits: int
    levels: int = 1
    level_bits: int = 9


@dataclass
class TableContext:
    """What a page table needs from the machine: the pool, the shared arrays, the locks, its space."""

    pool: FramePool
    a: VMArrays
    locks: VMLocks
    space: int
    alloc_frames: Callable[[int], int]  # n contiguous zeroed-by-caller table frames; may reclaim pages for them

    @property
    def frame_size(self) -> int:
        return self.pool.frame_size

    @property
    def page_shift(self) -> int:
        return self.pool.frame_size.bit_length() - 1

    def alloc(self, n: int) -> int:
        return self.alloc_frames(n)


class PageTable(ABC):
    kind: ClassVar[str] = ""  # set by register
    default_bits: ClassVar[int] = 48  # the width of a space created without one

    def __init__(self, ctx: TableContext):
        self.ctx = ctx
        self.a = ctx.a
        self.sp = ctx.space
        self.visited = 0  # entries handled one by one by range walks (clear_range, entries)

    # -- creation ------------------------------------------------------------------------------

    @classmethod
    def shape(cls, bits: int, levels: int | None, level_bits: int | None, page_shift: int) -> SpaceShape:
        """The geometry of a new space of this kind (bits already checked), or InvalidArgument. Only a
        radix tree has levels: every other kind refuses them."""
        for field, value in (("levels", levels), ("level_bits", level_bits)):
            if value is not None:
                raise InvalidArgument(f"{field} is {value}: only a multilevel page table has levels "
                                      f"(leave {field} unset, or 0, for a {cls.kind} table)")
        return SpaceShape(bits)

    @classmethod
    @abstractmethod
    def create(cls, ctx: TableContext, shape: SpaceShape) -> None:
        """Lay out a new space's table (vm/spaces and the space's lock held; sp_bits etc. already written)."""

    def region_window(self, kind: str, bits: int, margin: int) -> tuple[int, int]:
        """The addresses lo..hi where a region of `kind` may be placed (page 0 and `margin` stay free)."""
        return margin, 1 << bits

    def prepare(self, lo: int, hi: int) -> None:  # noqa: B027 - only a table that sizes itself to its regions
        """A region lo..hi-1 (vpns) was mapped: a table that sizes itself to its regions grows here."""

    # -- the entries ---------------------------------------------------------------------------

    @abstractmethod
    def walk(self, vpn: int) -> tuple[int, int]: ...

    @abstractmethod
    def set(self, vpn: int, pte: int) -> None: ...

    @abstractmethod
    def clear_range(self, lo: int, hi: int) -> None: ...

    @abstractmethod
    def entries(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]: ...

    # -- the frames it holds -------------------------------------------------------------------

    @abstractmethod
    def frames(self) -> np.ndarray:
        """Every pool frame (pool-relative) this space's own table occupies."""

    def table_frames(self) -> int:
        return int(self.frames().size)

    def table_bytes(self) -> int:
        return self.table_frames() * self.ctx.frame_size

    @classmethod
    def machine_frames(cls, a: VMArrays) -> np.ndarray:
        """Pool frames this kind holds for the whole machine, outside any space (none but the inverted table)."""
        return NO_FRAMES

    @abstractmethod
    def destroy(self) -> None: ...

    # -- for kinds laid out as one array of entries (linear, a hybrid segment) ------------------

    def array_entries(self, table: np.ndarray, first: int, n: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """entries(lo, hi) of a table of n entries at table[first:first + n], indexed by vpn."""
        lo, hi = max(0, lo), min(hi, n)
        if lo >= hi:
            return NO_ENTRIES
        words = table[first + lo:first + hi]
        nz = np.flatnonzero(words)
        self.visited += int(nz.size)
        return (lo + nz).astype(np.int64), words[nz].astype(np.uint64)

    @staticmethod
    def array_clear(table: np.ndarray, first: int, n: int, lo: int, hi: int) -> None:
        """clear_range(lo, hi) of the same."""
        lo, hi = max(0, lo), min(hi, n)
        if lo < hi:
            table[first + lo:first + hi] = 0


NO_ENTRIES = (np.zeros(0, np.int64), np.zeros(0, np.uint64))
NO_FRAMES = np.zeros(0, np.int64)


def frame_run(first: int, n: int) -> np.ndarray:
    """The pool frames first..first+n-1 (a table laid out as one run)."""
    return np.arange(first, first + n, dtype=np.int64)


# -- the registry ----------------------------------------------------------------------------------

PAGE_TABLES: dict[str, type[PageTable]] = {}  # name -> kind, in registration order (the kind's id)

def register(name: str, kind: type[PageTable]) -> None:
    """Add a kind to PAGE_TABLES under `name` (its id is its place there); a name is taken once."""
    if not (isinstance(kind, type) and issubclass(kind, PageTable)):
        raise TypeError(f"a page-table kind is a PageTable subclass, not {kind!r}")
    if PAGE_TABLES.setdefault(name, kind) is not kind:
        raise ValueError(f"page-table kind {name!r} is already taken by {PAGE_TABLES[name].__name__}")
    kind.kind = name


def kind_id(name: str) -> int:
    return list(PAGE_TABLES).index(name)


def kind_of(kind: int) -> type[PageTable]:
    """The kind a space's sp_kind names."""
    return list(PAGE_TABLES.values())[kind]


def machine_frames(a: VMArrays) -> np.ndarray:
    """Frames the kinds hold for the whole machine, outside any space (the inverted table's)."""
    return np.concatenate([NO_FRAMES, *(cls.machine_frames(a) for cls in PAGE_TABLES.values())])


def check_kind(name: object) -> type[PageTable]:
    if not isinstance(name, str) or name not in PAGE_TABLES:
        raise InvalidArgument(f"page_table {name!r} is not one of {', '.join(PAGE_TABLES)}")
    return PAGE_TABLES[name]
