"""The Redis-like cache (issue 3, in progress).

    keyspace.py   the shared-memory hash table with striped locks; keys and values are
                  allocator objects, so used_memory is real bytes (GET/SET/DEL/EXISTS/expiry)
    evict.py      Redis's approximated eviction: 24-bit LRU clock, LFU log counter, the pool
"""
