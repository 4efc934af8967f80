"""The Redis-like cache: a shared keyspace served by every core (memsim.v1.Cache), a file per Redis file.

    layout.py     every shared array and named cell, and the lock guarding each
    db.py         the hash table (db.c/dict.c): entries, lookup, DEL, SCAN, sampling, FLUSHALL,
                  used_memory; seqlock.py: a stripe's seqlock, what lock-free GETs trust
    t_string.py   GET, SET and its options, MSET, INCRBY..., APPEND (t_string.c)
    expire.py     EXPIRE/TTL/PERSIST beside the active expire cycle (expire.c)
    config.py     the parameter table and the maxmemory-policy names, CONFIG GET/SET (config.c)
    stats.py      INFO's counters and gauges (server.c); info.py prints INFO from them
    evict.py      admission (Evictor.admit) and performEvictions(): Redis's 8 policies, the LRU
                  clock, the LFU counter, the pool (evict.c)
    exact.py      the sim/policies registry as maxmemory-policies, its state shared by all cores
    keyspace.py   Keyspace: the above in one object per core; laying the cache out at creation
    commands.py   the command table and the dispatcher: Redis's parsing, replies and error texts;
                  the one caller of admission, before every command flagged `denyoom`
    scan.py       KEYS and SCAN (db.c keysCommand, scanGenericCommand), bounded in reply and matching
    glob.py       Redis's glob matching (stringmatchlen) for KEYS, SCAN MATCH, CONFIG GET
    lrutest.py    a trace model of Redis's sampled policies and redis-cli's --lru-test workload
    util.py       string2ll (util.c), the one integer parser; option words, the syntax error

The gRPC service around it is server/cache_servicer.py; the client is client/cache.py.
"""
