"""Every shared array of virtual memory, what it holds, and which lock guards it; their typed record.

The VM owns a POOL of physical frames: the last `vm_memory` bytes of the machine (the heap
keeps the rest). Pool frames hold users' pages and page tables alike, so a page table's cost
is frames taken from the same pool that user pages need. Indices called `f` below are
pool-relative frame numbers (0 .. pool_frames-1); a PTE holds the machine-wide frame number
(pool base + f), as a real PTE holds a physical address.

    array              shape                      lock            meaning
    vm_free            (pool,) uint8              vm/frames       1 = frame free
    vm_meta            (16,) int64                vm/frames       see M_* below (M_PINNED, M_PIN_LIMIT: gup.py)
    vm_rmap_space      (pool,) int32              space of owner  user frame -> its space (-1: none)
    vm_rmap_vpn        (pool,) int64              space of owner  user frame -> its virtual page
    vm_frame_swap      (pool,) int64              space of owner  swap slot still holding a copy of the
                                                                  frame's page (swap cache), -1 none
    vm_huge            (pool,) uint8              space of owner  1 head / 2 tail of a huge page (hugepage.py)
    vm_pincount        (pool,) int32              space of owner  FOLL_PIN pins of the page (of a huge page: on
                                                                  its head frame only); vm_pin_core's column
                                                                  sum plus vm_pin_longterm
    vm_pin_core        (cores+1, pool) int16      space of owner  the short-term pins, per core that took them
                                                                  (gup.py), so recovery can release a dead core's
    vm_pin_longterm    (pool,) int16              space of owner  the long-term pins (FOLL_LONGTERM), the space's:
                                                                  no core holds them, recovery leaves them
    vm_stat            (cores, NSTAT) int64       none (own row)  Linux's vmstat counters, per core
    sp_*               (MAX_SPACES, ...)          vm/space/<i>    the space table (mm.py, spaces.py)
    sp_owner/lease/expiry                         vm/spaces       who holds a space and until when
                                                                  (leases.py); renew also stores
                                                                  sp_expiry without it (see there)
    vma_*              (MAX_SPACES, MAX_REGIONS)  vm/space/<i>    each space's regions, its VMAs (vma.py)
    sw_used            (swap slots,) uint8        vm/swap         1 = slot in use
    sd_*                                          vm/swap         swap directory of inverted spaces
    vmpolicy_*                                    vm/lru          the replacement policy over pool frames (lru.py)

`VMArrays` is the typed record of these arrays that every module of the VM reads them through
(`a.vm_meta[M_POLICY]`, never a name looked up in a dict); `VMLocks` the same for the locks.

Lock order: vm/spaces -> vm/space/<i> -> vm/ipt -> vm/frames -> vm/lru -> vm/swap (the inverted
table's lock is taken inside a space's; laying that table out takes frames). Reclaim runs holding
the faulting space's lock and takes a victim's space lock only with a try-lock (Linux's
trylock_page in shrink_page_list): a busy victim goes back to the policy and the next one is
tried, so two cores reclaiming from each other's spaces cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from memsim.sim.machine.locks import LockTable, SharedLock
from memsim.sim.machine.shm import ArraySpec

MAX_SPACES = 128
SYSTEM_ARENA, SYSTEM_ISOLATE = 1, 2  # sp_system: the allocator's arena (heap_in_vm), an isolate's heap (sim/v8)
MAX_REGIONS = 32
NAME_BYTES = 24

# vm_meta cells
(M_POOL_BASE, M_POOL_FRAMES, M_FREE, M_SWAP_SLOTS, M_SWAP_USED, M_IPT_FRAMES, M_IPT_BASE, M_POLICY, M_THP,
 M_SPACE_SERIAL, M_PINNED, M_PIN_LIMIT) = range(12)  # M_SPACE_SERIAL: spaces ever created (under vm/spaces), see
# sp_serial; M_PINNED: frames held by FOLL_PIN pins (a pinned huge page counts all its frames), at most M_PIN_LIMIT
HUGE_HEAD, HUGE_TAIL = 1, 2  # vm_huge: the first frame of a transparent huge page, and the others
HUGETLB_HEAD, HUGETLB_TAIL = 3, 4  # the same for the hugetlb reservation (mapped or not)
# Frames of a huge page: one PMD entry of x86-64's 9-bit levels. The hugetlb reservation is cut in runs
# of this many frames and the TLB's huge entries span as many; a table whose PMD maps another number of
# pages (level_bits other than 9) can have neither kind of huge page (hugepage.py).
HUGE_FRAMES = 512

# vm_stat columns: /proc/vmstat's names (tlb_* are the TLB's own, thp_* and compact_* for huge pages)
VMSTAT = ("pgfault", "pgmajfault", "pswpin", "pswpout", "pgscan", "pgsteal", "tlb_hit", "tlb_miss",
          "pt_walks", "pt_walk_levels", "tlb_shootdowns", "thp_fault_alloc", "thp_collapse_alloc",
          "thp_split_page", "compact_stall", "compact_success", "segfaults", "protection_faults",
          "accesses", "bytes_swapped_out", "bytes_swapped_in", "reclaim_busy_skips", "thp_fault_fallback",
          "khugepaged_pages_scanned", "compact_migrate_pages", "hugetlb_faults",
          "pagewalk_entries",
          "nr_foll_pin_acquired", "nr_foll_pin_released",  # pages pinned and unpinned (gup.py)
          "reclaim_pinned_skips")  # victims reclaim put back because they were pinned (vmscan.py)
# pagewalk_entries: entries range walks handled one by one (pagetable.py): follows what is populated
S = {name: i for i, name in enumerate(VMSTAT)}

# sp_stats columns (per space, under its lock)
SP_RSS, SP_SWAP, SP_MINFLT, SP_MAJFLT, SP_TLB_HIT, SP_TLB_MISS, SP_ACCESSES, SP_PT_FRAMES = range(8)


def vm_specs(pool_frames: int, swap_slots: int, ncores: int, policy_specs: list[ArraySpec]) -> list[ArraySpec]:
    sd_anchor = 1 << max(4, (max(1, swap_slots) - 1).bit_length())
    return [
        ArraySpec("vm_free", "uint8", (pool_frames,)),
        ArraySpec("vm_meta", "int64", (16,)),
        ArraySpec("vm_rmap_space", "int32", (pool_frames,)),
        ArraySpec("vm_rmap_vpn", "int64", (pool_frames,)),
        ArraySpec("vm_frame_swap", "int64", (pool_frames,)),
        ArraySpec("vm_huge", "uint8", (pool_frames,)),  # HUGE_HEAD / HUGE_TAIL for frames of a huge page
        ArraySpec("vm_deposit", "int32", (pool_frames,)),  # huge head -> the page table kept for its split
        ArraySpec("vm_pincount", "int32", (pool_frames,)),
        ArraySpec("vm_pin_core", "int16", (ncores + 1, pool_frames)),  # row ncores: the supervisor
        ArraySpec("vm_pin_longterm", "int16", (pool_frames,)),
        ArraySpec("vm_stat", "int64", (ncores + 1, len(VMSTAT))),  # row ncores: the supervisor
        ArraySpec("sp_state", "int8", (MAX_SPACES,)),
        ArraySpec("sp_kind", "int8", (MAX_SPACES,)),
        ArraySpec("sp_bits", "int16", (MAX_SPACES,)),
        ArraySpec("sp_levels", "int16", (MAX_SPACES,)),
        ArraySpec("sp_level_bits", "int16", (MAX_SPACES,)),
        ArraySpec("sp_root", "int64", (MAX_SPACES,)),  # linear: first table frame; multilevel: root table
        ArraySpec("sp_tlbgen", "int64", (MAX_SPACES,)),
        ArraySpec("sp_serial", "int64", (MAX_SPACES,)),  # which incarnation of the slot: names its pages
        ArraySpec("sp_hugetlb", "int64", (MAX_SPACES,)),  # huge pages its hugetlb regions reserve (+ vm/frames)
        ArraySpec("sp_seg_base", "int64", (MAX_SPACES, 4)),  # hybrid: each segment's table (first frame)
        ArraySpec("sp_seg_frames", "int64", (MAX_SPACES, 4)),  # hybrid: frames of that table
        ArraySpec("sp_seg_bound", "int64", (MAX_SPACES, 4)),  # hybrid: pages the segment's table covers
        ArraySpec("sp_stats", "int64", (MAX_SPACES, 8)),
        ArraySpec("sp_name", "uint8", (MAX_SPACES, NAME_BYTES)),
        ArraySpec("sp_owner", "int64", (MAX_SPACES,)),  # the client that holds the space's lease; 0 = kept
        ArraySpec("sp_system", "int8", (MAX_SPACES,)),  # the machine's own (SYSTEM_*): clients only look
        ArraySpec("sp_lease", "float64", (MAX_SPACES,)),  # the lease's length, seconds
        ArraySpec("sp_expiry", "float64", (MAX_SPACES,)),  # CLOCK_MONOTONIC time the lease runs out
        ArraySpec("vma_count", "int16", (MAX_SPACES,)),
        ArraySpec("vma_start", "uint64", (MAX_SPACES, MAX_REGIONS)),
        ArraySpec("vma_end", "uint64", (MAX_SPACES, MAX_REGIONS)),
        ArraySpec("vma_prot", "int8", (MAX_SPACES, MAX_REGIONS)),
        ArraySpec("vma_kind", "int8", (MAX_SPACES, MAX_REGIONS)),
        ArraySpec("vma_name", "uint8", (MAX_SPACES, MAX_REGIONS, NAME_BYTES)),
        ArraySpec("sw_used", "uint8", (max(1, swap_slots),)),
        ArraySpec("sd_anchor", "int32", (sd_anchor,)),
        ArraySpec("sd_space", "int32", (max(1, swap_slots),)),
        ArraySpec("sd_vpn", "int64", (max(1, swap_slots),)),
        ArraySpec("sd_next", "int32", (max(1, swap_slots),)),
        *[ArraySpec(POLICY_PREFIX + s.name, s.dtype, s.shape) for s in policy_specs],
    ]


POLICY_PREFIX = "vmpolicy_"  # the replacement policy's own arrays, under their policy's names


@dataclass
class VMArrays:
    """Typed handles on the arrays above (views into the machine's meta segment)."""

    vm_free: np.ndarray
    vm_meta: np.ndarray
    vm_rmap_space: np.ndarray
    vm_rmap_vpn: np.ndarray
    vm_frame_swap: np.ndarray
    vm_huge: np.ndarray
    vm_deposit: np.ndarray
    vm_pincount: np.ndarray
    vm_pin_core: np.ndarray
    vm_pin_longterm: np.ndarray
    vm_stat: np.ndarray
    sp_state: np.ndarray
    sp_kind: np.ndarray
    sp_bits: np.ndarray
    sp_levels: np.ndarray
    sp_level_bits: np.ndarray
    sp_root: np.ndarray
    sp_tlbgen: np.ndarray
    sp_serial: np.ndarray
    sp_hugetlb: np.ndarray
    sp_seg_base: np.ndarray
    sp_seg_frames: np.ndarray
    sp_seg_bound: np.ndarray
    sp_stats: np.ndarray
    sp_name: np.ndarray
    sp_owner: np.ndarray
    sp_system: np.ndarray
    sp_lease: np.ndarray
    sp_expiry: np.ndarray
    vma_count: np.ndarray
    vma_start: np.ndarray
    vma_end: np.ndarray
    vma_prot: np.ndarray
    vma_kind: np.ndarray
    vma_name: np.ndarray
    sw_used: np.ndarray
    sd_anchor: np.ndarray
    sd_space: np.ndarray
    sd_vpn: np.ndarray
    sd_next: np.ndarray
    policy: dict[str, np.ndarray]  # the replacement policy's arrays, by the policy's own names

    @classmethod
    def from_region(cls, region: dict[str, np.ndarray]) -> VMArrays:
        named = {f.name: region[f.name] for f in fields(cls) if f.name != "policy"}
        policy = {n.removeprefix(POLICY_PREFIX): v for n, v in region.items() if n.startswith(POLICY_PREFIX)}
        return cls(**named, policy=policy)


def vm_lock_names() -> list[str]:
    return ["vm/spaces", "vm/frames", "vm/lru", "vm/swap", "vm/ipt"] + [f"vm/space/{i}" for i in range(MAX_SPACES)]


@dataclass
class VMLocks:
    """One process's handles on the VM's locks (the order is the module header's)."""

    spaces: SharedLock
    space: list[SharedLock]  # vm/space/<i>, one per slot of the space table
    ipt: SharedLock
    frames: SharedLock
    lru: SharedLock
    swap: SharedLock

    @classmethod
    def from_table(cls, locks: LockTable) -> VMLocks:
        return cls(locks["vm/spaces"], [locks[f"vm/space/{i}"] for i in range(MAX_SPACES)], locks["vm/ipt"],
                   locks["vm/frames"], locks["vm/lru"], locks["vm/swap"])
