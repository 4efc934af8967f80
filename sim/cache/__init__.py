"""The Redis-like cache: a shared keyspace served by every core (memsim.v1.Cache).

    keyspace.py   the shared-memory hash table: 64 striped seqlocks, keys and values as
                  allocator objects (used_memory is real bytes), Redis's string semantics
    commands.py   the command table: Redis's parsing, replies and error texts over a Keyspace
    config.py     CONFIG GET/SET: Redis's parameter names, memory units and policy names
    glob.py       Redis's glob matching (stringmatchlen) for KEYS, SCAN MATCH, CONFIG GET
    info.py       INFO under Redis's names, and what each memory figure means here
    eviction.py   performEvictions(): maxmemory, Redis's eight policies, tenacity, the OOM error
    evict.py      Redis's pure pieces: 24-bit LRU clock, LFU log counter, the 16-entry pool
    exact.py      memsim's exact/modern policies (sim/policies) over the entries, shared by all cores
    expire.py     Redis's active expire cycle (cursor walk, 20 keys a loop, 10 % stale, time box)

The gRPC service around it is server/cache_servicer.py; the client is client/cache.py.
"""
