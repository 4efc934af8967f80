"""Transparent huge pages: fault-time allocation, khugepaged's collapse, compaction, splitting.

A huge page is an aligned run of H frames (H = 512 with 4 KiB frames: 2 MiB) mapped by one
PMD entry with the PS bit (pt_multilevel.py), so one TLB entry covers all of it (tlb.py):
TLB reach grows 512-fold for the price of finding 512 contiguous free frames. Only
multilevel spaces have them, as only radix tables have a PMD. Linux's knobs and counters:

- `thp` (vm_meta[M_THP], kinds.THP_MODES): never | madvise (regions mapped with huge=True,
  MADV_HUGEPAGE) | always (every heap and anon region);
- fault: the first touch of an aligned H-page range wholly inside an eligible region, whose
  PMD is still empty, takes an aligned run (`thp_fault_alloc`); with no free run, direct
  compaction (`compact_stall`, `compact_success`) migrates the few pages out of the emptiest
  aligned window; if that fails too the fault falls back to a 4 KiB page
  (`thp_fault_fallback`). That compaction is the latency spike the trade-off is about;
- khugepaged (`collapse_scan`, a worker's background thread every `khugepaged_ms`): an
  aligned range whose H pages are all present is copied into a fresh run and mapped huge, its
  page table freed (`thp_collapse_alloc`); Linux's max_ptes_none would allow holes, here
  only fully populated ranges are promoted (max_ptes_none = 0), so a collapse never adds memory;
- split (`thp_split_page`): a partial munmap or mprotect, or reclaim choosing a huge page
  (memory pressure), turns the PMD entry back into a page table of H small PTEs.

Bookkeeping: every frame of a huge page is reverse-mapped like a small page; vm_huge marks
the head and the tails; the replacement policy holds only the head (the huge page ages as one).
Each huge page keeps a page-table frame in reserve (`vm_deposit`, Linux's
pgtable_trans_huge_deposit), so that splitting it never needs a free frame: reclaim splits
exactly when no frame is free.
Pinned pages (gup.py, FOLL_PIN; a huge page's pins are on its head) are never migrated, copied
away or split: compaction skips a window holding one, khugepaged a range holding one, and a
split of a pinned huge page (a partial munmap or mprotect) is refused, as Linux's migration
and split_folio refuse a folio_maybe_dma_pinned folio (its frames must stay what the pin holder
was given).
Everything here runs under the space's lock (and takes a victim's or a migrated page's space
lock only with a try-lock, as reclaim does). Touches, beside the space's table: the reverse map,
`vm_huge`, `vm_deposit`, `sp_stats`, the pool (vm/frames) and the policy (vm/lru).

hugetlb (MAP_HUGETLB): pages come from runs of HUGE_FRAMES frames set aside at boot, so a
space can map them only if its PMD entry spans exactly that many pages (level_bits 9); mmap
refuses other tables, and the fault checks again before it claims anything. khugepaged looks
only at PMD entries that link a page table, so a vast, sparse region costs what it holds.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from memsim.sim.machine.memory import FRAME_PAGETABLE, FRAME_USER
from memsim.sim.vm import pte as P
from memsim.sim.vm.kinds import THP_MODES
from memsim.sim.vm.layout import (
    HUGE_FRAMES,
    HUGE_HEAD,
    HUGE_TAIL,
    HUGETLB_HEAD,
    HUGETLB_TAIL,
    M_POOL_BASE,
    M_THP,
    SP_PT_FRAMES,
    SP_RSS,
    S,
    VMArrays,
)
from memsim.sim.vm.mm import MM
from memsim.sim.vm.pagetable import PageTable
from memsim.sim.vm.pt_multilevel import NONLEAF, MultiLevelTable
from memsim.sim.vm.rmap import any_pinned, folio_maybe_dma_pinned, release_frame
from memsim.sim.vm.vma import MADV_HUGEPAGE, Region, W, X, regions

THP_KINDS = ("heap", "anon")
THP_NEVER, THP_ALWAYS = THP_MODES.index("never"), THP_MODES.index("always")  # vm_meta[M_THP]


def pmd_table(t: PageTable) -> MultiLevelTable | None:
    """t, if it has a PMD level whose entries can map huge pages: only a radix tree of two levels or more."""
    return t if isinstance(t, MultiLevelTable) and t.pmd_depth >= 0 else None


def eligible(mm: MM, region: Region, t: PageTable) -> MultiLevelTable | None:
    """The table, if a transparent huge page may back this region (thp mode, region kind, PMD size)."""
    mode = int(mm.a.vm_meta[M_THP])
    pmd = pmd_table(t)
    if mode == THP_NEVER or pmd is None or pmd.huge_pages != mm.tlb.huge_pages:
        return None  # (a PMD of another size than the TLB's huge entries: no huge pages there)
    if region.kind in THP_KINDS and (mode == THP_ALWAYS or bool(region.prot & MADV_HUGEPAGE)):
        return pmd
    return None


def fault_huge(mm: MM, sp: int, vpn: int, region: Region, t: MultiLevelTable, write: bool) -> int | None:
    """Map the aligned huge page around vpn at its first touch; the PTE for vpn, or None to fall back."""
    hp = t.huge_pages
    base_vpn = vpn - vpn % hp
    lo, hi, prot = region.start, region.end, region.prot
    if base_vpn << mm.shift < lo or (base_vpn + hp) << mm.shift > hi:
        return None  # the run would stick out of the region
    i = t.pmd_index(base_vpn, create=True)
    if i is None or int(t.words[i]):
        return None  # a page table is already there (small pages were touched): khugepaged's job
    f = mm.pool.take_aligned(hp, FRAME_USER)
    if f is None:
        f = compact(mm, sp, hp)
    deposit = mm.pool.take(FRAME_PAGETABLE) if f is not None else None
    if f is None or deposit is None:
        if f is not None:
            mm.pool.give(f, hp)
        mm.stat[S["thp_fault_fallback"]] += 1
        return None
    mm.pool.zero(f, hp)
    _claim(mm, sp, f, base_vpn, hp)
    mm.a.vm_deposit[f] = deposit
    mm.a.sp_stats[sp, SP_PT_FRAMES] += 1
    e = P.make(mm.pool.base + f, bool(prot & W), bool(prot & X)) | P.PS | P.A | (P.D if write else 0)
    t.words[i] = e
    mm.lru.admit(f, sp, base_vpn)
    mm.a.sp_stats[sp, SP_RSS] += hp
    mm.stat[S["thp_fault_alloc"]] += 1
    return (e & ~P.PFN_MASK) | ((P.frame_of(e) + vpn % hp) << P.PFN_SHIFT)


def _claim(mm: MM, sp: int, f: int, base_vpn: int, hp: int) -> None:
    a = mm.a
    a.vm_rmap_space[f:f + hp] = sp
    a.vm_rmap_vpn[f:f + hp] = np.arange(base_vpn, base_vpn + hp)
    a.vm_frame_swap[f:f + hp] = -1
    a.vm_huge[f] = HUGE_HEAD
    a.vm_huge[f + 1:f + hp] = HUGE_TAIL


def split(mm: MM, sp: int, vpn: int, t: MultiLevelTable, except_frame: int = -1) -> bool:
    """Turn the huge page around vpn into H small pages; False if no frame for the table or the huge page
    is pinned (caller decides)."""
    i = t.pmd_index(vpn, create=False)
    if i is None:
        return True
    e = int(t.words[i])
    if not e & P.PS:
        return True
    hp = t.huge_pages
    head = P.frame_of(e) - mm.pool.base
    if mm.a.vm_huge[head] == HUGETLB_HEAD:
        raise InvalidArgument("hugetlb pages are not split: unmap or protect whole huge pages")
    if mm.a.vm_pincount[head] > 0:
        return False  # its pins hold the huge page whole (callers check first: this is the last guard)
    table = int(mm.a.vm_deposit[head])  # the table kept for this moment: no allocation
    if table < 0:  # lost (a core died mid-split before): find one, or give up
        found = mm.pool.take(FRAME_PAGETABLE)
        if found is None:
            return False
        table = found
        mm.a.sp_stats[sp, SP_PT_FRAMES] += 1
    mm.pool.zero(table)
    flags = e & ~P.PFN_MASK & ~P.PS
    first = table * t.per_frame
    t.words[first:first + hp] = (np.uint64(flags)
                                 | ((np.arange(hp, dtype=np.uint64) + np.uint64(mm.pool.base + head))
                                    << np.uint64(P.PFN_SHIFT)))
    t.words[i] = ((mm.pool.base + table) << P.PFN_SHIFT) | NONLEAF
    mm.a.vm_deposit[head] = -1  # only now that the table is linked
    mm.a.vm_huge[head:head + hp] = 0
    with mm.lru.lock:
        base_vpn = vpn - vpn % hp
        for f in range(head, head + hp):
            if f != except_frame and f not in mm.lru:
                mm.lru.insert(f, sp, base_vpn + f - head)
    mm.a.sp_tlbgen[sp] += 1
    mm.stat[S["thp_split_page"]] += 1
    return True


def split_range(mm: MM, sp: int, lo_vpn: int, hi_vpn: int, t: PageTable) -> None:
    """Split the huge pages that lo..hi-1 covers only in part (munmap, mprotect, madvise). Checks every
    one first (a hugetlb page is never split; one whose deposited table was lost needs a free frame),
    so that a refusal leaves every huge page whole. A pinned huge page is not split (FAILED_PRECONDITION)."""
    pmd = pmd_table(t)
    if pmd is None or lo_vpn >= hi_vpn:
        return
    hp = pmd.huge_pages
    edges: list[tuple[int, bool]] = []
    for edge in sorted({lo_vpn - lo_vpn % hp, (hi_vpn - 1) - (hi_vpn - 1) % hp}):
        if edge >= lo_vpn and edge + hp <= hi_vpn:
            continue  # wholly covered: unmapped or protected whole
        i = pmd.pmd_index(edge, create=False)
        e = int(pmd.words[i]) if i is not None else 0
        if not e & P.PS:
            continue
        head = P.frame_of(e) - mm.pool.base
        if mm.a.vm_huge[head] == HUGETLB_HEAD:
            raise InvalidArgument(f"{lo_vpn << mm.shift:#x}..{hi_vpn << mm.shift:#x} cuts a hugetlb page, and "
                                  f"hugetlb pages are not split: unmap, protect or discard whole huge pages")
        if mm.a.vm_pincount[head] > 0:
            raise FailedPrecondition(f"{lo_vpn << mm.shift:#x}..{hi_vpn << mm.shift:#x} cuts a pinned huge page "
                                     f"(pin_user_pages) of space {sp}: unpin it first, or change whole huge pages")
        edges.append((edge, int(mm.a.vm_deposit[head]) < 0))
    if sum(lost for _, lost in edges) > mm.pool.free_frames():
        raise ResourceExhausted("no free frame for the page table a partial unmap of a huge page needs")
    for edge, _ in edges:
        if not split(mm, sp, edge, pmd):
            raise ResourceExhausted("no free frame for the page table a partial unmap of a huge page needs")


def _migrate(mm: MM, f: int, window: range) -> bool:
    """Move the page in user frame f to a free frame outside `window` (its space locked by the caller)."""
    a = mm.a
    sp, vpn = int(a.vm_rmap_space[f]), int(a.vm_rmap_vpn[f])
    dst = mm.pool.take_outside(window, FRAME_USER)
    if dst is None:
        return False
    mm.pool.view(dst)[:] = mm.pool.view(f)
    t = mm.table(sp)
    e, _ = t.walk(vpn)
    t.set(vpn, (e & ~P.PFN_MASK) | ((mm.pool.base + dst) << P.PFN_SHIFT))
    a.vm_rmap_space[dst], a.vm_rmap_vpn[dst] = sp, vpn
    a.vm_frame_swap[dst] = a.vm_frame_swap[f]
    a.vm_rmap_space[f] = a.vm_rmap_vpn[f] = -1
    a.vm_frame_swap[f] = -1
    with mm.lru.lock:
        mm.lru.remove(f)
        mm.lru.insert(dst, sp, vpn)
    a.sp_tlbgen[sp] += 1
    mm.pool.give(f)
    mm.stat[S["compact_migrate_pages"]] += 1
    return True


def compact(mm: MM, holding_sp: int, hp: int) -> int | None:
    """Direct compaction: empty the aligned window with the fewest used frames (user pages only, no
    tables, no huge pages, no pinned pages) by migrating its pages, then take it. The run's first frame, or None."""
    mm.stat[S["compact_stall"]] += 1
    n = mm.pool.nframes // hp
    if n == 0:
        return None
    owner = mm.mem.frame_owner[mm.pool.base:mm.pool.base + n * hp].reshape(n, hp)
    huge = mm.a.vm_huge[:n * hp].reshape(n, hp)
    used = (mm.pool.free_map[:n * hp].reshape(n, hp) == 0)
    pinned = mm.a.vm_pincount[:n * hp].reshape(n, hp) > 0
    movable = ~(owner == FRAME_PAGETABLE).any(axis=1) & ~(huge != 0).any(axis=1) & ~pinned.any(axis=1)
    free_total = mm.pool.free_frames()
    candidates = [w for w in np.argsort(used.sum(axis=1)).tolist() if movable[w]]
    for w in candidates[:4]:
        window = range(w * hp, (w + 1) * hp)
        need = int(used[w].sum())
        if free_total - (hp - need) < need:
            return None  # not enough free frames elsewhere to take this window's pages
        for f in [f for f in window if not mm.pool.free_map[f]]:
            sp = int(mm.a.vm_rmap_space[f])
            if sp < 0:
                break
            lock = mm.locks.space[sp]
            if not lock.try_acquire():
                break
            try:
                # again under the lock: the frame may have been freed or changed hands meanwhile
                if (mm.pool.free_map[f] or int(mm.a.vm_rmap_space[f]) != sp or mm.a.vm_huge[f]
                        or folio_maybe_dma_pinned(mm.a, f) or mm.mem.frame_owner[mm.pool.base + f] != FRAME_USER
                        or not _migrate(mm, f, window)):
                    break
            finally:
                lock.release()
        got = mm.pool.take_aligned(hp, FRAME_USER)
        if got is not None:
            mm.stat[S["compact_success"]] += 1
            return got
    return None


def collapse_scan(mm: MM, max_ranges: int = 64) -> int:
    """khugepaged: promote aligned, fully populated ranges of eligible regions, `max_ranges` per
    call, going on from where the last call stopped (its cursor: space, vpn) as khugepaged's
    mm_slot list does; returns how many ranges it collapsed."""
    collapsed = scanned = 0
    start_sp, start_vpn = mm.khugepaged_cursor
    spaces = mm.spaces()
    order = [sp for sp in spaces if sp >= start_sp] + [sp for sp in spaces if sp < start_sp]
    for sp in order:
        lock = mm.locks.space[sp]
        if not lock.try_acquire():
            continue
        try:
            table = mm.table(sp)
            for region in regions(mm, sp):
                t = eligible(mm, region, table)
                if t is None:
                    continue
                hp = t.huge_pages
                lo, hi = region.start >> mm.shift, region.end >> mm.shift
                # only ranges with a page table under their PMD entry: empty ones have nothing to collapse,
                # and a vast region must cost what it holds (khugepaged skips pmd_none too)
                first = max(-(-lo // hp) * hp, start_vpn if sp == start_sp else 0)
                candidates = t.pmd_tables(first, (hi // hp) * hp)
                mm.count_walk(t)
                for base_vpn in candidates:
                    if scanned >= max_ranges:
                        mm.khugepaged_cursor = (sp, base_vpn)
                        return collapsed
                    scanned += 1
                    mm.stat[S["khugepaged_pages_scanned"]] += hp
                    if _collapse(mm, sp, base_vpn, t):
                        collapsed += 1
        finally:
            lock.release()
    mm.khugepaged_cursor = (0, 0)  # a whole pass: start again from the first space
    return collapsed


def _collapse(mm: MM, sp: int, base_vpn: int, t: MultiLevelTable) -> bool:
    i = t.pmd_index(base_vpn, create=False)
    if i is None:
        return False
    e = int(t.words[i])
    if not e & P.P or e & P.PS:
        return False
    hp = t.huge_pages
    table = P.frame_of(e) - mm.pool.base
    ptes = t.words[table * t.per_frame:table * t.per_frame + hp]
    if not bool(np.all(ptes & np.uint64(P.P))) or not bool(np.all(ptes & np.uint64(P.US))):
        return False  # not fully populated (or some pages in swap), or PROT_NONE pages: leave them be
    old = [P.frame_of(int(x)) - mm.pool.base for x in ptes.tolist()]
    if any_pinned(mm.a, np.array(old, dtype=np.int64)):
        return False  # a pinned page is not copied away (Linux's collapse skips a pinned page too)
    f = mm.pool.take_aligned(hp, FRAME_USER)
    if f is None:
        f = compact(mm, sp, hp)
    if f is None:
        return False
    # Compaction may have moved this very range's pages (their space's lock is ours, and re-entrant):
    # read their frames again from the entries it rewrote.
    old = [P.frame_of(int(x)) - mm.pool.base for x in ptes.tolist()]
    writable = bool(np.all(ptes & np.uint64(P.RW)))
    for k, src in enumerate(old):
        mm.pool.view(f + k)[:] = mm.pool.view(src)
    for src in old:
        release_frame(mm, src, sp)  # rss -= 1 each; the run adds them back below
    _claim(mm, sp, f, base_vpn, hp)
    # Dirty always: the copy is new memory, and the pages' swap copies (if any) were let go with them.
    t.words[i] = P.make(mm.pool.base + f, writable, not bool(int(ptes[0]) & P.NX)) | P.PS | P.A | P.D
    mm.a.vm_deposit[f] = table  # the emptied page table is the new huge page's deposit
    mm.a.sp_stats[sp, SP_RSS] += hp
    mm.lru.admit(f, sp, base_vpn)
    mm.a.sp_tlbgen[sp] += 1
    mm.stat[S["thp_collapse_alloc"]] += 1
    return True


# -- explicit huge pages: the hugetlb reservation ------------------------------------------------------

def reserve_hugetlb(a: VMArrays, owner: np.ndarray, count: int) -> int:
    """At boot: set `count` aligned runs of HUGE_FRAMES frames aside (vm.nr_hugepages); returns how many fit.
    They leave the pool for good, as hugetlbfs pages leave the buddy allocator."""
    n, hp, pool_free, base = 0, HUGE_FRAMES, a.vm_free, int(a.vm_meta[M_POOL_BASE])
    for w in range(len(pool_free) // hp):
        if n == count:
            break
        f = w * hp
        if pool_free[f:f + hp].all():
            pool_free[f:f + hp] = 0
            owner[base + f:base + f + hp] = FRAME_USER
            a.vm_huge[f] = HUGETLB_HEAD
            a.vm_huge[f + 1:f + hp] = HUGETLB_TAIL
            n += 1
    return n


def hugetlb_free(mm: MM) -> list[int]:
    heads = np.flatnonzero(mm.a.vm_huge == HUGETLB_HEAD)
    return [int(f) for f in heads if int(mm.a.vm_rmap_space[f]) < 0]


def check_hugetlb_table(t: PageTable, frame_size: int) -> MultiLevelTable:
    """The table, if hugetlb pages can be mapped in it. A hugetlb page is one reserved run of HUGE_FRAMES
    frames mapped by one PMD entry, so the table needs a PMD, mapping exactly that many pages (Linux: a
    hugetlb page size is one the architecture's table levels can map, arch/x86/mm/hugetlbpage.c);
    otherwise the entry would claim frames past the run."""
    pmd = pmd_table(t)
    if pmd is None:
        raise InvalidArgument("hugetlb mappings need a multilevel page table (their pages are PMD entries)")
    if pmd.huge_pages != HUGE_FRAMES:
        raise InvalidArgument(
            f"hugetlb pages are runs of {HUGE_FRAMES} frames ({HUGE_FRAMES * frame_size} bytes), but a PMD entry of "
            f"this space's table maps {pmd.huge_pages} pages (level_bits={pmd.level_bits}): map hugetlb memory in a "
            f"multilevel space with level_bits=9")
    return pmd


def fault_hugetlb(mm: MM, sp: int, vpn: int, region: Region, table: PageTable, write: bool) -> int:
    """A MAP_HUGETLB region's fault: a page from the reservation, never from the pool, never swapped.
    With none left the access fails, as SIGBUS does on Linux. Everything is checked, and the page
    claimed, before a table is created: a refused fault changes nothing."""
    try:
        # mmap refuses such regions; one made otherwise must not fault either
        t = check_hugetlb_table(table, mm.fs)
    except InvalidArgument as refused:
        raise FailedPrecondition(f"{vpn << mm.shift:#x}: no huge page can be mapped here: {refused}") from None
    hp = t.huge_pages
    base_vpn = vpn - vpn % hp
    lo, hi, prot = region.start, region.end, region.prot
    if base_vpn << mm.shift < lo or (base_vpn + hp) << mm.shift > hi:
        raise FailedPrecondition(f"{vpn << mm.shift:#x}: a hugetlb region is whole aligned huge pages")
    i = t.pmd_index(base_vpn, create=False)
    if i is not None and int(t.words[i]):
        raise FailedPrecondition(f"{vpn << mm.shift:#x}: a page table is already where the huge page would go")
    a = mm.a
    with mm.pool.lock:  # the reservation is shared by every space: claim a page under the pool's lock
        free = hugetlb_free(mm)
        if not free:
            raise ResourceExhausted(f"no free huge page for {vpn << mm.shift:#x}: the hugetlb reservation "
                                    f"(memsim serve --hugetlb-pages) is all in use (SIGBUS on Linux)")
        f = free[0]
        a.vm_rmap_space[f:f + hp] = sp
        a.vm_rmap_vpn[f:f + hp] = np.arange(base_vpn, base_vpn + hp)
    try:
        i = t.pmd_index(base_vpn, create=True)  # the tables above the PMD may need frames (and reclaim)
    except BaseException:
        with mm.pool.lock:  # the page goes back to the reservation untouched
            a.vm_rmap_space[f:f + hp] = -1
            a.vm_rmap_vpn[f:f + hp] = -1
        raise
    mm.pool.zero(f, hp)
    e = P.make(mm.pool.base + f, bool(prot & W), bool(prot & X)) | P.PS | P.A | (P.D if write else 0)
    t.words[i] = e
    a.sp_stats[sp, SP_RSS] += hp
    mm.stat[S["hugetlb_faults"]] += 1
    return (e & ~P.PFN_MASK) | ((P.frame_of(e) + vpn % hp) << P.PFN_SHIFT)
