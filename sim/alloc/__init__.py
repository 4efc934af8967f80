"""Go's allocator (runtime/malloc.go, mheap.go, mcentral.go, mcache.go) over the machine's memory.

    layout.py       every shared array of the allocator, what it means, who may write it under which lock
    sizeclasses.py  Go's size-class rule and tcmalloc's batch sizes
    pagesource.py   PageSource: everything the heap asks of its memory (flat memory here, sim/vm's heapsource)
    mheap.py        the page heap, its global lock
    mcentral.py     a central free list per size class, its own lock; cross-core frees
    mcache.py       the per-core cache, no lock
    tiny.py         16-byte tiny blocks, with explicit free
    scavenger.py    returns idle free pages to the machine
    memstats.py     Go's MemStats from per-core counters
    owners.py       who allocated each object, the client table, releases
    recovery.py     after a worker dies: reclaim, rebuild, check
    heap.py         Heap: malloc/free/read/write as one core sees them (the entry point)
"""
