"""The keyspace a core holds: Redis's main dictionary and its commands, in one object per core.

Owns nothing itself: it assembles the mechanisms, each in the file Redis keeps it in, and lays
the cache out at machine creation.

    db.py        the shared hash table, entries, lookup, DEL, SCAN, sampling, FLUSHALL (db.c)
    t_string.py  GET, SET, MSET, INCRBY, APPEND... (t_string.c)
    expire.py    EXPIRE/TTL/PERSIST and the active expire cycle (expire.c)
    config.py    the parameter and policy tables, CONFIG SET/GET (config.c)
    stats.py     the INFO counters and gauges (server.c)
    evict.py     admission and performEvictions() (evict.c); exact.py the registered policies

`Machine.keyspace(heap)` (sim/system.py) gives a core its Keyspace, with its Evictor attached.
"""

from __future__ import annotations

from memsim.sim.cache.config import Config, boot_config, maxmemory_policies
from memsim.sim.cache.db import KeyspaceArrays
from memsim.sim.cache.exact import exact_specs
from memsim.sim.cache.expire import Expires
from memsim.sim.cache.layout import cache_specs, table_size
from memsim.sim.cache.t_string import Strings
from memsim.sim.machine.shm import ArraySpec


class Keyspace(Strings, Expires, Config):
    """One core's handle on the shared keyspace. Like Heap: one per core process, one op at a time."""


def keyspace_specs(max_keys: int, ncores: int) -> list[ArraySpec]:
    """Every array of the cache, for Machine.create: the table, and every registered policy's state."""
    n, _ = table_size(max_keys)
    return cache_specs(max_keys, ncores, len(maxmemory_policies()), exact_specs(n))


def boot_keyspace(a: KeyspaceArrays, maxmemory: int, policy: str) -> None:
    """First boot, before any core exists: an empty table, the defaults, then the machine's settings."""
    a.initialise()
    boot_config(a.ks_config, a.policies(None), maxmemory, policy)
