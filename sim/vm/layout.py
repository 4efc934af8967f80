"""Every shared array of virtual memory, what it holds, and which lock guards it.

The VM owns a POOL of physical frames: the last `vm_memory` bytes of the machine (the heap
keeps the rest). Pool frames hold users' pages and page tables alike, so a page table's cost
is frames taken from the same pool that user pages need. Indices called `f` below are
pool-relative frame numbers (0 .. pool_frames-1); a PTE holds the machine-wide frame number
(pool base + f), as a real PTE holds a physical address.

    array              shape                      lock            meaning
    vm_free            (pool,) uint8              vm/frames       1 = frame free
    vm_meta            (16,) int64                vm/frames       see M_* below
    vm_rmap_space      (pool,) int32              space of owner  user frame -> its space (-1: none)
    vm_rmap_vpn        (pool,) int64              space of owner  user frame -> its virtual page
    vm_frame_swap      (pool,) int64              space of owner  swap slot still holding a copy of the
                                                                  frame's page (swap cache), -1 none
    vm_huge            (pool,) uint8              space of owner  1 head / 2 tail of a huge page (hugepage.py)
    vm_stat            (cores, NSTAT) int64       none (own row)  Linux's vmstat counters, per core
    sp_*               (MAX_SPACES, ...)          vm/space/<i>    the space table (vm.py)
    sp_owner/lease/expiry                         vm/spaces       who holds a space and until when
                                                                  (vm.py, "leases"); VM.renew also stores
                                                                  sp_expiry without it (see there)
    vma_*              (MAX_SPACES, MAX_REGIONS)  vm/space/<i>    each space's regions (its VMAs)
    sw_used            (swap slots,) uint8        vm/swap         1 = slot in use
    sd_*                                          vm/swap         swap directory of inverted spaces
    vmpol_*                                       vm/lru          the replacement policy over pool frames

Lock order: vm/spaces -> vm/space/<i> -> vm/ipt -> vm/frames -> vm/lru -> vm/swap (the inverted
table's lock is taken inside a space's; laying that table out takes frames). Reclaim runs holding
the faulting space's lock and takes a victim's space lock only with a try-lock (Linux's
trylock_page in shrink_page_list): a busy victim goes back to the policy and the next one is
tried, so two cores reclaiming from each other's spaces cannot deadlock.
"""

from __future__ import annotations

from memsim.sim.machine.shm import ArraySpec

MAX_SPACES = 128
MAX_REGIONS = 32
NAME_BYTES = 24

# vm_meta cells
(M_POOL_BASE, M_POOL_FRAMES, M_FREE, M_SWAP_SLOTS, M_SWAP_USED, M_IPT_FRAMES, M_IPT_BASE, M_POLICY, M_THP,
 M_SPACE_SERIAL) = range(10)  # M_SPACE_SERIAL: spaces ever created (under vm/spaces), see sp_serial
THP_MODES = ("never", "madvise", "always")  # /sys/kernel/mm/transparent_hugepage/enabled
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
          "pagewalk_entries")  # entries range walks handled one by one (pagetable.py): follows what is populated
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
        ArraySpec("sp_system", "int8", (MAX_SPACES,)),  # 1 = the machine's own (the heap's arena): clients only look
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
        *[ArraySpec("vm" + s.name, s.dtype, s.shape) for s in policy_specs],
    ]


def vm_lock_names() -> list[str]:
    return ["vm/spaces", "vm/frames", "vm/lru", "vm/swap", "vm/ipt"] + [f"vm/space/{i}" for i in range(MAX_SPACES)]
