"""Virtual memory: address spaces on the machine's frame pool, laid out as Linux's mm/ is.

    layout.py       every shared array and lock of the VM (VMArrays, VMLocks), and the lock order
    kinds.py        the page-table kinds (the registry, filled) and the THP modes: the one table of each
    frames.py       the frame pool (the top of physical memory): single frames and contiguous runs
    pte.py          x86-64's PTE bits, swap entries
    pagetable.py    the page-table interface and the registry of kinds; tables live in pool frames
    pt_linear.py    one array for the whole space (4 MiB for 32 bits)
    pt_hybrid.py    a linear table per segment, with base and bound
    pt_multilevel.py  x86-64's radix tree (levels and bits configurable)
    pt_inverted.py  one hashed, chained table for the machine; the swap directory
    tlb.py          per-core TLB, set-associative, with the generation shootdown
    swap.py         the swap file (real, unlinked) and its slot map
    lru.py          page replacement's lists: a sim/policies policy over pool frames (mm/swap.c, workingset.c)
    mm.py           MM, one core's handle on all of it (mm_struct): arrays, locks, pool, TLB, table objects
    vma.py          regions, the Region record (vm_area_struct, mm/vma.c)
    rmap.py         the reverse map; a page's frame going back (mm/rmap.c)
    hugepage.py     transparent huge pages (fault, khugepaged, compaction, split) and hugetlb
    vmscan.py       reclaim and the frame allocator it serves (mm/vmscan.c)
    memory.py       the MMU path, the fault handler, zap (mm/memory.c)
    gup.py          pin_user_pages, unpin_user_pages: frames held against reclaim and migration (mm/gup.c)
    mmap.py         mmap, munmap, get_unmapped_area (mm/mmap.c)
    mprotect.py     mprotect (mm/mprotect.c)
    madvise.py      MADV_DONTNEED (mm/madvise.c)
    spaces.py       creating and destroying address spaces (kernel/fork.c mm_alloc, exit_mmap)
    leases.py       who holds a space and until when
    task_mmu.py     the reports: memory_usage, smaps, space stats, vmstat (fs/proc/task_mmu.c)
    vm.py           VM, the system-call surface over all of the above; boot
    heapsource.py   the allocator's arena as an address space (Go's reserve/commit/release)
    recovery.py     check() and recover() after a core died mid-change

Imports go one way, down this list (from kinds.py on): no module imports one below it.
The gRPC service is server/vm_servicer.py; the client is client/vm.py.
"""
