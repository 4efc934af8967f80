"""The Redis-like cache (issue 3, in progress).

    keyspace.py   the shared-memory hash table with striped locks; keys and values are
                  allocator objects, so used_memory is real bytes; Redis's string commands
    eviction.py   maxmemory and Redis's eight policies (performEvictions, the pool, sampling)
    expire.py     Redis's active expire cycle (cursor walk, 20 keys a loop, 10 % stale, time box)
    evict.py      Redis's pure pieces: 24-bit LRU clock, LFU log counter, the 16-entry pool
"""
