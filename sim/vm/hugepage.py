"""Transparent huge pages: fault-time allocation, khugepaged's collapse, compaction, splitting.

A huge page is an aligned run of H frames (H = 512 with 4 KiB frames: 2 MiB) mapped by one
PMD entry with the PS bit (pt_multilevel.py), so one TLB entry covers all of it (tlb.py):
TLB reach grows 512-fold for the price of finding 512 contiguous free frames. Only
multilevel spaces have them, as only radix tables have a PMD. Linux's knobs and counters:

- `thp` (vm_meta[M_THP]): never | madvise (regions mapped with huge=True, MADV_HUGEPAGE) |
  always (every heap and anon region);
- fault: the first touch of an aligned H-page range wholly inside an eligible region, whose
  PMD is still empty, takes an aligned run (`thp_fault_alloc`); with no free run, direct
  compaction (`compact_stall`, `compact_success`) migrates the few pages out of the emptiest
  aligned window; if that fails too the fault falls back to a 4 KiB page
  (`thp_fault_fallback`). That compaction is the latency spike the trade-off is about;
- khugepaged (`collapse_scan`, a worker's background thread every `khugepaged_ms`): an
  aligned range whose H pages are all present is copied into a fresh run and mapped huge, its
  page table freed (`thp_collapse_alloc`); Linux's max_ptes_none would allow holes, here
  only fully populated ranges are promoted, as the issue asks;
- split (`thp_split_page`): a partial munmap or mprotect, or reclaim choosing a huge page
  (memory pressure), turns the PMD entry back into a page table of H small PTEs.

Bookkeeping: every frame of a huge page is reverse-mapped like a small page; vm_huge marks
the head and the tails; the replacement policy holds only the head (the huge page ages as one).
Each huge page keeps a page-table frame in reserve (`vm_deposit`, Linux's
pgtable_trans_huge_deposit), so that splitting it never needs a free frame: reclaim splits
exactly when no frame is free.
Everything here runs under the space's lock (and takes a victim's or a migrated page's space
lock only with a try-lock, as reclaim does).

hugetlb (MAP_HUGETLB): pages come from runs of HUGE_FRAMES frames set aside at boot, so a
space can map them only if its PMD entry spans exactly that many pages (level_bits 9); mmap
refuses other tables, and the fault checks again before it claims anything. khugepaged looks
only at PMD entries that link a page table, so a vast, sparse region costs what it holds.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.machine.memory import FRAME_PAGETABLE, FRAME_USER
from memsim.sim.vm import pte as P
from memsim.sim.vm.layout import (
    HUGE_FRAMES,
    HUGE_HEAD,
    HUGE_TAIL,
    HUGETLB_HEAD,
    HUGETLB_TAIL,
    M_THP,
    SP_PT_FRAMES,
    SP_RSS,
    S,
)
from memsim.sim.vm.pt_multilevel import NONLEAF, MultiLevelTable

MADV_HUGEPAGE = 8  # the region flags beside R/W/X in vma_prot
MAP_HUGETLB = 16
THP_KINDS = ("heap", "anon")


def eligible(vm, sp: int, region: tuple[int, int, int, str, str], t) -> bool:
    mode = int(vm.a["vm_meta"][M_THP])
    if mode == 0 or not isinstance(t, MultiLevelTable) or t.pmd_depth < 0 or t.huge_pages != vm.tlb.huge_pages:
        return False  # (a PMD of another size than the TLB's huge entries: no huge pages there)
    _, _, prot, kind, _ = region
    return kind in THP_KINDS and (mode == 2 or bool(prot & MADV_HUGEPAGE))


def fault_huge(vm, sp: int, vpn: int, region, t: MultiLevelTable, write: bool) -> int | None:
    """Map the aligned huge page around vpn at its first touch; the PTE for vpn, or None to fall back."""
    hp = t.huge_pages
    base_vpn = vpn - vpn % hp
    lo, hi, prot, _, _ = region
    if base_vpn << vm.shift < lo or (base_vpn + hp) << vm.shift > hi:
        return None  # the run would stick out of the region
    i = t.pmd_index(base_vpn, create=True)
    if i is None or int(t.words[i]):
        return None  # a page table is already there (small pages were touched): khugepaged's job
    f = vm.pool.take_aligned(hp, FRAME_USER)
    if f is None:
        f = compact(vm, sp, hp)
    deposit = vm.pool.take(FRAME_PAGETABLE) if f is not None else None
    if f is None or deposit is None:
        if f is not None:
            vm.pool.give(f, hp)
        vm.stat[S["thp_fault_fallback"]] += 1
        return None
    vm.pool.zero(f, hp)
    _claim(vm, sp, f, base_vpn, hp)
    vm.a["vm_deposit"][f] = deposit
    vm.a["sp_stats"][sp, SP_PT_FRAMES] += 1
    e = P.make(vm.pool.base + f, bool(prot & 2), bool(prot & 4)) | P.PS | P.A | (P.D if write else 0)
    t.words[i] = e
    vm.admit(f, sp, base_vpn)
    vm.a["sp_stats"][sp, SP_RSS] += hp
    vm.stat[S["thp_fault_alloc"]] += 1
    return (e & ~P.PFN_MASK) | ((P.frame_of(e) + vpn % hp) << P.PFN_SHIFT)


def _claim(vm, sp: int, f: int, base_vpn: int, hp: int) -> None:
    a = vm.a
    a["vm_rmap_space"][f:f + hp] = sp
    a["vm_rmap_vpn"][f:f + hp] = np.arange(base_vpn, base_vpn + hp)
    a["vm_frame_swap"][f:f + hp] = -1
    a["vm_huge"][f] = HUGE_HEAD
    a["vm_huge"][f + 1:f + hp] = HUGE_TAIL


def split(vm, sp: int, vpn: int, t: MultiLevelTable, except_frame: int = -1) -> bool:
    """Turn the huge page around vpn into H small pages; False if no frame for the table (caller decides)."""
    i = t.pmd_index(vpn, create=False)
    if i is None:
        return True
    e = int(t.words[i])
    if not e & P.PS:
        return True
    hp = t.huge_pages
    head = P.frame_of(e) - vm.pool.base
    if vm.a["vm_huge"][head] == HUGETLB_HEAD:
        from memsim.sim.errors import InvalidArgument

        raise InvalidArgument("hugetlb pages are not split: unmap or protect whole huge pages")
    table = int(vm.a["vm_deposit"][head])  # the table kept for this moment: no allocation
    if table < 0:  # lost (a core died mid-split before): find one, or give up
        found = vm.pool.take(FRAME_PAGETABLE)
        if found is None:
            return False
        table = found
        vm.a["sp_stats"][sp, SP_PT_FRAMES] += 1
    vm.pool.zero(table)
    flags = e & ~P.PFN_MASK & ~P.PS
    first = table * t.per_frame
    t.words[first:first + hp] = (np.uint64(flags)
                                 | ((np.arange(hp, dtype=np.uint64) + np.uint64(vm.pool.base + head))
                                    << np.uint64(P.PFN_SHIFT)))
    t.words[i] = ((vm.pool.base + table) << P.PFN_SHIFT) | NONLEAF
    vm.a["vm_deposit"][head] = -1  # only now that the table is linked
    vm.a["vm_huge"][head:head + hp] = 0
    with vm.lru_lock:
        base_vpn = vpn - vpn % hp
        for f in range(head, head + hp):
            if f != except_frame and f not in vm.policy:
                vm._insert(f, sp, base_vpn + f - head)
    vm.a["sp_tlbgen"][sp] += 1
    vm.stat[S["thp_split_page"]] += 1
    return True


def split_range(vm, sp: int, lo_vpn: int, hi_vpn: int, t) -> None:
    """Split the huge pages that lo..hi-1 covers only in part (munmap, mprotect, madvise). Checks every
    one first (a hugetlb page is never split; one whose deposited table was lost needs a free frame),
    so that a refusal leaves every huge page whole."""
    from memsim.sim.errors import InvalidArgument, ResourceExhausted

    if not isinstance(t, MultiLevelTable) or t.pmd_depth < 0 or lo_vpn >= hi_vpn:
        return
    hp = t.huge_pages
    edges = []
    for edge in sorted({lo_vpn - lo_vpn % hp, (hi_vpn - 1) - (hi_vpn - 1) % hp}):
        if edge >= lo_vpn and edge + hp <= hi_vpn:
            continue  # wholly covered: unmapped or protected whole
        i = t.pmd_index(edge, create=False)
        e = int(t.words[i]) if i is not None else 0
        if not e & P.PS:
            continue
        head = P.frame_of(e) - vm.pool.base
        if vm.a["vm_huge"][head] == HUGETLB_HEAD:
            raise InvalidArgument(f"{lo_vpn << vm.shift:#x}..{hi_vpn << vm.shift:#x} cuts a hugetlb page, and "
                                  f"hugetlb pages are not split: unmap, protect or discard whole huge pages")
        edges.append((edge, int(vm.a["vm_deposit"][head]) < 0))
    if sum(lost for _, lost in edges) > vm.pool.free_frames():
        raise ResourceExhausted("no free frame for the page table a partial unmap of a huge page needs")
    for edge, _ in edges:
        if not split(vm, sp, edge, t):
            raise ResourceExhausted("no free frame for the page table a partial unmap of a huge page needs")


def _migrate(vm, f: int, window: range) -> bool:
    """Move the page in user frame f to a free frame outside `window` (its space locked by the caller)."""
    a = vm.a
    sp, vpn = int(a["vm_rmap_space"][f]), int(a["vm_rmap_vpn"][f])
    dst = vm.pool.take_outside(window, FRAME_USER)
    if dst is None:
        return False
    vm.pool.view(dst)[:] = vm.pool.view(f)
    t = vm.table(sp)
    e, _ = t.walk(vpn)
    t.set(vpn, (e & ~P.PFN_MASK) | ((vm.pool.base + dst) << P.PFN_SHIFT))
    a["vm_rmap_space"][dst], a["vm_rmap_vpn"][dst] = sp, vpn
    a["vm_frame_swap"][dst] = a["vm_frame_swap"][f]
    a["vm_rmap_space"][f] = a["vm_rmap_vpn"][f] = -1
    a["vm_frame_swap"][f] = -1
    with vm.lru_lock:
        if f in vm.policy:
            vm.policy.remove(f)
        vm._insert(dst, sp, vpn)
    a["sp_tlbgen"][sp] += 1
    vm.pool.give(f)
    vm.stat[S["compact_migrate_pages"]] += 1
    return True


def compact(vm, holding_sp: int, hp: int) -> int | None:
    """Direct compaction: empty the aligned window with the fewest used frames (user pages only, no
    tables, no huge pages) by migrating its pages, then take it. The run's first frame, or None."""
    vm.stat[S["compact_stall"]] += 1
    n = vm.pool.nframes // hp
    if n == 0:
        return None
    owner = vm.mem.frame_owner[vm.pool.base:vm.pool.base + n * hp].reshape(n, hp)
    huge = vm.a["vm_huge"][:n * hp].reshape(n, hp)
    used = (vm.pool.free_map[:n * hp].reshape(n, hp) == 0)
    movable = ~(owner == FRAME_PAGETABLE).any(axis=1) & ~(huge != 0).any(axis=1)
    free_total = vm.pool.free_frames()
    candidates = [w for w in np.argsort(used.sum(axis=1)).tolist() if movable[w]]
    for w in candidates[:4]:
        window = range(w * hp, (w + 1) * hp)
        need = int(used[w].sum())
        if free_total - (hp - need) < need:
            return None  # not enough free frames elsewhere to take this window's pages
        for f in [f for f in window if not vm.pool.free_map[f]]:
            sp = int(vm.a["vm_rmap_space"][f])
            if sp < 0:
                break
            lock = vm.space_locks[sp]
            if not lock.try_acquire():
                break
            try:
                # again under the lock: the frame may have been freed or changed hands meanwhile
                if (vm.pool.free_map[f] or int(vm.a["vm_rmap_space"][f]) != sp or vm.a["vm_huge"][f]
                        or vm.mem.frame_owner[vm.pool.base + f] != FRAME_USER or not _migrate(vm, f, window)):
                    break
            finally:
                lock.release()
        got = vm.pool.take_aligned(hp, FRAME_USER)
        if got is not None:
            vm.stat[S["compact_success"]] += 1
            return got
    return None


def collapse_scan(vm, max_ranges: int = 64) -> int:
    """khugepaged: promote aligned, fully populated ranges of eligible regions, `max_ranges` per
    call, going on from where the last call stopped (its cursor: space, vpn) as khugepaged's
    mm_slot list does; returns how many ranges it collapsed."""
    collapsed = scanned = 0
    start_sp, start_vpn = getattr(vm, "khugepaged_cursor", (0, 0))
    spaces = vm.spaces()
    order = [sp for sp in spaces if sp >= start_sp] + [sp for sp in spaces if sp < start_sp]
    for sp in order:
        lock = vm.space_locks[sp]
        if not lock.try_acquire():
            continue
        try:
            t = vm.table(sp)
            for region in vm.regions(sp):
                if not eligible(vm, sp, region, t):
                    continue
                hp = t.huge_pages
                lo, hi = region[0] >> vm.shift, region[1] >> vm.shift
                # only ranges with a page table under their PMD entry: empty ones have nothing to collapse,
                # and a vast region must cost what it holds (khugepaged skips pmd_none too)
                first = max(-(-lo // hp) * hp, start_vpn if sp == start_sp else 0)
                candidates = t.pmd_tables(first, (hi // hp) * hp)
                vm._count_walk(t)
                for base_vpn in candidates:
                    if scanned >= max_ranges:
                        vm.khugepaged_cursor = (sp, base_vpn)
                        return collapsed
                    scanned += 1
                    vm.stat[S["khugepaged_pages_scanned"]] += hp
                    if _collapse(vm, sp, base_vpn, t):
                        collapsed += 1
        finally:
            lock.release()
    vm.khugepaged_cursor = (0, 0)  # a whole pass: start again from the first space
    return collapsed


def _collapse(vm, sp: int, base_vpn: int, t: MultiLevelTable) -> bool:
    i = t.pmd_index(base_vpn, create=False)
    if i is None:
        return False
    e = int(t.words[i])
    if not e & P.P or e & P.PS:
        return False
    hp = t.huge_pages
    table = P.frame_of(e) - vm.pool.base
    ptes = t.words[table * t.per_frame:table * t.per_frame + hp]
    if not bool(np.all(ptes & np.uint64(P.P))) or not bool(np.all(ptes & np.uint64(P.US))):
        return False  # not fully populated (or some pages in swap), or PROT_NONE pages: leave them be
    f = vm.pool.take_aligned(hp, FRAME_USER)
    if f is None:
        f = compact(vm, sp, hp)
    if f is None:
        return False
    old = [P.frame_of(int(x)) - vm.pool.base for x in ptes.tolist()]
    writable = bool(np.all(ptes & np.uint64(P.RW)))
    for k, src in enumerate(old):
        vm.pool.view(f + k)[:] = vm.pool.view(src)
    for src in old:
        vm._release_frame(src, sp)  # rss -= 1 each; the run adds them back below
    _claim(vm, sp, f, base_vpn, hp)
    # Dirty always: the copy is new memory, and the pages' swap copies (if any) were let go with them.
    t.words[i] = P.make(vm.pool.base + f, writable, not bool(int(ptes[0]) & P.NX)) | P.PS | P.A | P.D
    vm.a["vm_deposit"][f] = table  # the emptied page table is the new huge page's deposit
    vm.a["sp_stats"][sp, SP_RSS] += hp
    vm.admit(f, sp, base_vpn)
    vm.a["sp_tlbgen"][sp] += 1
    vm.stat[S["thp_collapse_alloc"]] += 1
    return True


# -- explicit huge pages: the hugetlb reservation ------------------------------------------------------

def reserve_hugetlb(a: dict, pool_free: np.ndarray, owner: np.ndarray, base: int, count: int, hp: int) -> int:
    """At boot: set `count` aligned runs of hp frames aside (vm.nr_hugepages); returns how many fit.
    They leave the pool for good, as hugetlbfs pages leave the buddy allocator."""
    n = 0
    for w in range(len(pool_free) // hp):
        if n == count:
            break
        f = w * hp
        if pool_free[f:f + hp].all():
            pool_free[f:f + hp] = 0
            owner[base + f:base + f + hp] = FRAME_USER
            a["vm_huge"][f] = HUGETLB_HEAD
            a["vm_huge"][f + 1:f + hp] = HUGETLB_TAIL
            n += 1
    return n


def hugetlb_free(vm) -> list[int]:
    heads = np.flatnonzero(vm.a["vm_huge"] == HUGETLB_HEAD)
    return [int(f) for f in heads if int(vm.a["vm_rmap_space"][f]) < 0]


def check_hugetlb_span(t: MultiLevelTable, frame_size: int) -> None:
    """A hugetlb page is one reserved run of HUGE_FRAMES frames mapped by one PMD entry, so the table's
    PMD must map exactly that many pages (Linux: a hugetlb page size is one the architecture's table
    levels can map, arch/x86/mm/hugetlbpage.c); otherwise the entry would claim frames past the run."""
    from memsim.sim.errors import InvalidArgument

    if t.huge_pages != HUGE_FRAMES:
        raise InvalidArgument(
            f"hugetlb pages are runs of {HUGE_FRAMES} frames ({HUGE_FRAMES * frame_size} bytes), but a PMD entry of "
            f"this space's table maps {t.huge_pages} pages (level_bits={t.level_bits}): map hugetlb memory in a "
            f"multilevel space with level_bits=9")


def fault_hugetlb(vm, sp: int, vpn: int, region, t: MultiLevelTable, write: bool) -> int:
    """A MAP_HUGETLB region's fault: a page from the reservation, never from the pool, never swapped.
    With none left the access fails, as SIGBUS does on Linux. Everything is checked, and the page
    claimed, before a table is created: a refused fault changes nothing."""
    from memsim.sim.errors import FailedPrecondition, InvalidArgument, ResourceExhausted

    hp = t.huge_pages
    try:
        check_hugetlb_span(t, vm.fs)  # mmap refuses such regions; one made otherwise must not fault either
    except InvalidArgument as e:
        raise FailedPrecondition(f"{vpn << vm.shift:#x}: no huge page can be mapped here: {e}") from None
    base_vpn = vpn - vpn % hp
    lo, hi, prot, _, _ = region
    if base_vpn << vm.shift < lo or (base_vpn + hp) << vm.shift > hi:
        raise FailedPrecondition(f"{vpn << vm.shift:#x}: a hugetlb region is whole aligned huge pages")
    i = t.pmd_index(base_vpn, create=False)
    if i is not None and int(t.words[i]):
        raise FailedPrecondition(f"{vpn << vm.shift:#x}: a page table is already where the huge page would go")
    a = vm.a
    with vm.pool.lock:  # the reservation is shared by every space: claim a page under the pool's lock
        free = hugetlb_free(vm)
        if not free:
            raise ResourceExhausted(f"no free huge page for {vpn << vm.shift:#x}: the hugetlb reservation "
                                    f"(memsim serve --hugetlb-pages) is all in use (SIGBUS on Linux)")
        f = free[0]
        a["vm_rmap_space"][f:f + hp] = sp
        a["vm_rmap_vpn"][f:f + hp] = np.arange(base_vpn, base_vpn + hp)
    try:
        i = t.pmd_index(base_vpn, create=True)  # the tables above the PMD may need frames (and reclaim)
    except BaseException:
        with vm.pool.lock:  # the page goes back to the reservation untouched
            a["vm_rmap_space"][f:f + hp] = -1
            a["vm_rmap_vpn"][f:f + hp] = -1
        raise
    vm.pool.zero(f, hp)
    e = P.make(vm.pool.base + f, bool(prot & 2), bool(prot & 4)) | P.PS | P.A | (P.D if write else 0)
    t.words[i] = e
    a["sp_stats"][sp, SP_RSS] += hp
    vm.stat[S["hugetlb_faults"]] += 1
    return (e & ~P.PFN_MASK) | ((P.frame_of(e) + vpn % hp) << P.PFN_SHIFT)
