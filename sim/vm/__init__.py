"""Virtual memory: address spaces on the machine's frame pool.

    layout.py       every shared array and lock of the VM, and the lock order
    frames.py       the frame pool (the top of physical memory): single frames and contiguous runs
    pte.py          x86-64's PTE bits, swap entries
    pagetable.py    the interface of the four table kinds; tables live in pool frames
    pt_linear.py    one array for the whole space (4 MiB for 32 bits)
    pt_hybrid.py    a linear table per segment, with base and bound
    pt_multilevel.py  x86-64's radix tree (levels and bits configurable)
    pt_inverted.py  one hashed, chained table for the machine; the swap directory
    tlb.py          per-core TLB, set-associative, with the generation shootdown
    swap.py         the swap file (real, unlinked) and its slot map
    vm.py           spaces, regions, the MMU path, faults, reclaim through sim/policies, reports
    hugepage.py     transparent huge pages (fault, khugepaged, compaction, split) and hugetlb
    heapsource.py   the allocator's arena as an address space (Go's reserve/commit/release)
    recovery.py     check() and recover() after a core died mid-change

The gRPC service is server/vm_servicer.py; the client is client/vm.py.
"""
