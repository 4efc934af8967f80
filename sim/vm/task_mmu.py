"""The reports: Linux's fs/proc/task_mmu.c (/proc/<pid>/smaps, status) and mm/vmstat.c (/proc/vmstat).

    memory_usage(sp)  Node's process.memoryUsage() names over one space
    memory_map(sp)    smaps: each region with its size, rss, swap, huge pages and pinned bytes
    space_stats(sp)   the space's row of the space table and its counters
    vmstat()          the machine's counters, summed over the cores' rows, and its gauges

Every figure comes from the shared arrays and the page-table interface (`table_bytes`,
`entries`), whatever the space's kind. Each report of a space takes its lock (a destroy, a
reaped lease on any core, may be under way) and walks only what is populated.

`pinned` (smaps) is memsim's own field: Linux's smaps has no line for FOLL_PIN pins. It is the
bytes of the region's resident pages a pin holds (gup.py; a pinned huge page counts whole, as
it is held whole). vmstat's nr_foll_pin_acquired and nr_foll_pin_released are Linux's names;
`pinned_frames` and `pin_limit_frames` are memsim's gauges of the machine-wide pin bound.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from memsim.sim.vm import layout as L
from memsim.sim.vm import pte as P
from memsim.sim.vm.hugepage import hugetlb_free
from memsim.sim.vm.layout import HUGE_HEAD, HUGETLB_HEAD, VMArrays
from memsim.sim.vm.mm import MM, space_name
from memsim.sim.vm.rmap import pinned_mask
from memsim.sim.vm.vma import prot_text, regions


class MemoryUsage(TypedDict):
    rss: int  # resident bytes of pages and page tables
    heapTotal: int  # bytes of heap regions
    heapUsed: int  # resident bytes of heap regions
    external: int  # resident bytes outside the heap
    pageTables: int
    swap: int


class RegionUsage(TypedDict):
    start: int
    end: int
    size: int
    rss: int
    swap: int
    perms: str
    kind: str
    name: str
    huge_pages: int
    pinned: int  # bytes held by pin_user_pages (memsim's field: Linux's smaps has none)


class SpaceStats(TypedDict):
    space: int
    page_table: str
    bits: int
    name: str
    page_table_bytes: int
    rss_pages: int
    swap_pages: int
    minflt: int
    majflt: int
    tlb_hits: int
    tlb_misses: int
    tlb_hit_ratio: float
    accesses: int
    owner: int
    lease_expiry: float


def huge_count(a: VMArrays, sp: int, v_lo: int, v_hi: int) -> int:
    heads = np.flatnonzero((a.vm_huge == HUGE_HEAD) & (a.vm_rmap_space == sp))
    vpns = a.vm_rmap_vpn[heads]
    return int(((vpns >= v_lo) & (vpns < v_hi)).sum())


def memory_usage(mm: MM, sp: int) -> MemoryUsage:
    mm.check_space(sp)
    a = mm.a
    with mm.locks.space[sp]:
        mm.check_space(sp)  # again, under the lock: a destroy may have come first
        resident = np.flatnonzero(a.vm_rmap_space == sp)
        vpns = a.vm_rmap_vpn[resident]
        heap_total = heap_used = 0
        for r in regions(mm, sp):
            if r.kind == "heap":
                heap_total += r.end - r.start
                heap_used += int(((vpns >= r.start >> mm.shift) & (vpns < r.end >> mm.shift)).sum()) * mm.fs
        rss = int(resident.size) * mm.fs
        tables = mm.table(sp).table_bytes()
        return MemoryUsage(rss=rss + tables, heapTotal=heap_total, heapUsed=heap_used, external=rss - heap_used,
                           pageTables=tables, swap=int(a.sp_stats[sp, L.SP_SWAP]) * mm.fs)


def memory_map(mm: MM, sp: int) -> list[RegionUsage]:
    mm.check_space(sp)
    a = mm.a
    out: list[RegionUsage] = []
    with mm.locks.space[sp]:
        mm.check_space(sp)  # again, under the lock: a destroy may have come first
        frames = np.flatnonzero(a.vm_rmap_space == sp)
        vpns = a.vm_rmap_vpn[frames]
        pinned_vpns = vpns[pinned_mask(a, frames)]
        swapped = np.zeros(0, dtype=np.int64)
        if int(a.sp_stats[sp, L.SP_SWAP]):  # every swap entry of the table, in one walk over what is populated
            all_vpns, ptes = mm.entries(sp, 0, 1 << (mm.bits(sp) - mm.shift))
            swapped = all_vpns[((ptes & np.uint64(P.P)) == 0) & ((ptes & np.uint64(P.SW)) != 0)]
        for r in regions(mm, sp):
            v_lo, v_hi = r.start >> mm.shift, r.end >> mm.shift
            rss = int(((vpns >= v_lo) & (vpns < v_hi)).sum())
            swap = int(((swapped >= v_lo) & (swapped < v_hi)).sum())
            out.append(RegionUsage(start=r.start, end=r.end, size=r.end - r.start, rss=rss * mm.fs,
                                   swap=swap * mm.fs, perms=prot_text(r.prot) + "p", kind=r.kind, name=r.name,
                                   huge_pages=huge_count(a, sp, v_lo, v_hi),
                                   pinned=int(((pinned_vpns >= v_lo) & (pinned_vpns < v_hi)).sum()) * mm.fs))
    return out


def space_stats(mm: MM, sp: int) -> SpaceStats:
    mm.check_space(sp)
    with mm.locks.space[sp]:  # a destroy (a reaped lease, on any core) may be under way
        mm.check_space(sp)
        a = mm.a
        st = a.sp_stats[sp]
        hits, misses = int(st[L.SP_TLB_HIT]), int(st[L.SP_TLB_MISS])
        t = mm.table(sp)
        return SpaceStats(space=sp, page_table=t.kind, bits=mm.bits(sp), name=space_name(a.sp_name[sp]),
                          page_table_bytes=t.table_bytes(), rss_pages=int(st[L.SP_RSS]), swap_pages=int(st[L.SP_SWAP]),
                          minflt=int(st[L.SP_MINFLT]), majflt=int(st[L.SP_MAJFLT]), tlb_hits=hits, tlb_misses=misses,
                          tlb_hit_ratio=hits / (hits + misses) if hits + misses else 0.0,
                          accesses=int(st[L.SP_ACCESSES]), owner=int(a.sp_owner[sp]),
                          lease_expiry=float(a.sp_expiry[sp]))


def vmstat(mm: MM) -> dict[str, int]:
    a = mm.a
    tot = a.vm_stat.sum(axis=0)
    out = {name: int(tot[i]) for i, name in enumerate(L.VMSTAT)}
    meta = a.vm_meta
    out.update({"pool_frames": mm.pool.nframes, "free_frames": mm.pool.free_frames(),
                "swap_slots": int(meta[L.M_SWAP_SLOTS]), "swap_used": int(meta[L.M_SWAP_USED]),
                "ipt_frames": int(meta[L.M_IPT_FRAMES]), "spaces": len(mm.spaces()),
                "page_size": mm.fs, "huge_pages": int((a.vm_huge == HUGE_HEAD).sum()),
                "hugetlb_pages_total": int((a.vm_huge == HUGETLB_HEAD).sum()),
                "hugetlb_pages_free": len(hugetlb_free(mm)),
                "thp_mode": int(meta[L.M_THP]),
                "pinned_frames": int(meta[L.M_PINNED]), "pin_limit_frames": int(meta[L.M_PIN_LIMIT])})
    return out
