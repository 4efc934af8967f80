"""mmap and munmap: Linux's mm/mmap.c (do_mmap, get_unmapped_area, do_munmap).

A mapping is a region (vma.py) placed at a given address or in a gap: bottom up for most kinds,
top down for stacks (which get a guard page below them, a region of its own), inside its
segment for a hybrid table (`PageTable.region_window`), on a huge-page boundary when it may get
transparent huge pages (Linux's thp_get_unmapped_area). A MAP_HUGETLB mapping is whole huge pages
from the boot-time reservation, set aside at mmap (vma.set_regions refuses it if the reservation
cannot cover it), never swapped. munmap cuts the regions, splits the huge pages it covers in
part, frees what the range holds (memory.zap_range) and shoots the space's TLB entries down.

Touches: the space's regions, table and counters (its lock held, `vm/space/<i>`); through
zap_range the pool, swap and policy. Every check (overlap, the region limit, hugetlb pages, the
splits, pinned pages: gup.py) is made before anything changes, so a refused call leaves the space
as it was.
"""

from __future__ import annotations

from memsim.sim.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from memsim.sim.vm import hugepage
from memsim.sim.vm.gup import check_unpinned
from memsim.sim.vm.layout import S
from memsim.sim.vm.memory import zap_range
from memsim.sim.vm.mm import MM
from memsim.sim.vm.vma import (
    MADV_HUGEPAGE,
    MAP_HUGETLB,
    REGION_KINDS,
    R,
    Region,
    W,
    X,
    check_prot,
    cut,
    page_range,
    regions,
    set_regions,
    whole_hugetlb,
)


def find_gap(mm: MM, sp: int, size: int, kind: str) -> int:
    """The start of a free range of `size` bytes for a region of `kind` (get_unmapped_area)."""
    bits = mm.bits(sp)
    margin = mm.fs * (16 if bits > 24 else 1)  # page 0 (and a little more) stays unmapped: NULL faults
    lo_lim, hi_lim = mm.table(sp).region_window(kind, bits, margin)
    taken = sorted((r.start, r.end) for r in regions(mm, sp) if r.end > lo_lim and r.start < hi_lim)
    if kind in ("stack", "guard"):  # top down, as stacks grow
        top = hi_lim - margin
        for lo, hi in reversed(taken):
            if hi <= top - size:
                break
            top = min(top, lo)
        start = (top - size) // mm.fs * mm.fs
        if start >= lo_lim and all(not (lo < start + size and start < hi) for lo, hi in taken):
            return start
    else:
        start = lo_lim
        for lo, hi in taken:
            if start + size <= lo:
                break
            start = max(start, hi)
        if start + size <= hi_lim:
            return start
    raise ResourceExhausted(f"no free range of {size} bytes for a region of kind {kind} in space {sp}")


def _thp_gap(mm: MM, sp: int, size: int, prot: int, kind: str) -> int | None:
    """Where a region that may get transparent huge pages goes: on a huge-page boundary, so that
    its first 2 MiB can be one huge page (Linux's thp_get_unmapped_area: ask for a huge page
    more, round up). None if no huge page can go there (thp never, a table without a PMD, a region
    too small for one and not madvised) or no such gap is left: any gap then does, as in Linux."""
    t = hugepage.eligible(mm, Region(0, size, prot, kind, ""), mm.table(sp))
    if t is None:
        return None
    hsize = t.huge_pages * mm.fs
    if size < hsize and not prot & MADV_HUGEPAGE:
        return None
    try:
        gap = find_gap(mm, sp, size + hsize, kind)
    except ResourceExhausted:
        return None
    return -(-gap // hsize) * hsize


def mmap(mm: MM, sp: int, length: int, prot: int, kind: str = "anon", name: str = "", addr: int | None = None,
         guard: bool = True, huge: bool = False, hugetlb: bool = False) -> int:
    """Map a region; returns its start (see the module header)."""
    prot = check_prot(prot)
    if hugetlb:
        return _mmap_hugetlb(mm, sp, length, prot, name, addr)
    return mmap_region(mm, sp, length, prot, kind, name, addr, guard, MADV_HUGEPAGE if huge else 0)


def mmap_region(mm: MM, sp: int, length: int, prot: int, kind: str, name: str, addr: int | None, guard: bool,
                flags: int) -> int:
    """mmap with the region flags (MADV_HUGEPAGE, MAP_HUGETLB) beside R/W/X."""
    mm.check_space(sp)
    if kind not in REGION_KINDS or kind == "guard":
        raise InvalidArgument(f"region kind {kind!r} is not one of code, data, heap, stack, anon")
    if length <= 0:
        raise InvalidArgument(f"length {length} must be positive")
    if prot & (W | X):
        prot |= R  # as on x86: a page that can be written or run can be read
    size = -(-length // mm.fs) * mm.fs
    with mm.locks.space[sp]:
        mm.check_space(sp)  # again: a destroy may have come first
        with_guard = kind == "stack" and guard
        below = mm.fs if with_guard else 0
        if addr is None:
            start = _thp_gap(mm, sp, size, prot | flags, kind)
            if start is None:
                start = find_gap(mm, sp, size + below, kind) + below
        else:
            start, _ = page_range(mm, sp, addr, length)
            if with_guard:
                page_range(mm, sp, start - mm.fs, mm.fs)
        lo = start - below
        regs = regions(mm, sp)
        for r in regs:
            if r.start < start + size and lo < r.end:
                raise FailedPrecondition(f"{lo:#x}..{start + size:#x} overlaps region {r.name or r.kind} "
                                         f"{r.start:#x}..{r.end:#x} in space {sp}")
        new = [Region(start, start + size, prot | flags, kind, name or kind)]
        if with_guard:
            new.append(Region(lo, start, 0, "guard", f"{name or 'stack'} guard"))
        set_regions(mm, sp, regs + new)
        try:
            mm.table(sp).prepare(lo >> mm.shift, (start + size) >> mm.shift)
        except BaseException:
            set_regions(mm, sp, regs)  # a table that could not grow: the region was never mapped
            raise
        return start


def _mmap_hugetlb(mm: MM, sp: int, length: int, prot: int, name: str, addr: int | None) -> int:
    mm.check_space(sp)
    t = hugepage.check_hugetlb_table(mm.table(sp), mm.fs)
    hsize = t.huge_pages * mm.fs
    if length <= 0 or length % hsize:
        raise InvalidArgument(f"a hugetlb mapping is whole huge pages: {length} is not a multiple of {hsize}")
    if addr is not None and addr % hsize:
        raise InvalidArgument(f"a hugetlb mapping starts on a huge page: {addr:#x} is not aligned to {hsize}")
    with mm.locks.space[sp]:
        mm.check_space(sp)  # again, under the lock: a destroy may have come first
        if addr is None:
            addr = -(-find_gap(mm, sp, length + hsize, "anon") // hsize) * hsize
        return mmap_region(mm, sp, length, prot, "anon", name or "hugetlb", addr, False, MAP_HUGETLB)


def munmap(mm: MM, sp: int, addr: int, length: int) -> int:
    """Unmap addr..addr+length: pages freed (frames and swap slots), regions cut. Returns pages freed."""
    mm.check_space(sp)
    with mm.locks.space[sp]:
        mm.check_space(sp)  # again: a destroy may have come first
        lo, hi = page_range(mm, sp, addr, length)
        whole_hugetlb(mm, sp, lo, hi, "munmap")
        check_unpinned(mm, sp, lo >> mm.shift, hi >> mm.shift, "munmap")
        regs = cut(mm, sp, lo, hi, None)
        guards = [r for r in regs if r.kind == "guard" and r.end == lo]
        if guards and not any(r.start == lo and r.kind == "stack" for r in regs):
            regs.remove(guards[0])  # the stack went: its guard goes too
        hugepage.split_range(mm, sp, lo >> mm.shift, hi >> mm.shift, mm.table(sp))
        freed = zap_range(mm, sp, lo >> mm.shift, hi >> mm.shift)
        set_regions(mm, sp, regs)
        shootdown(mm, sp)
        return freed


def shootdown(mm: MM, sp: int) -> None:
    """Every core's TLB entries for sp are stale from now on (tlb.py: the generation)."""
    mm.a.sp_tlbgen[sp] += 1
    mm.stat[S["tlb_shootdowns"]] += 1
