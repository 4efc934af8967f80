"""Every shared array of the cache, what each cell holds, and which lock guards it.

Owns: the names and shapes of the keyspace's arrays in the machine's meta segment, and the named
cells and columns of its small arrays (never a bare `cfg[3]`: every index below has a name, and
no cell holds two things). Touches nothing at run time: `sim/system.py` lays these out once, in
`Machine.create`, and every core maps the same arrays.

    array         shape                 dtype   guarded by          holds
    ks_bucket     (nbuckets,)           int32   keyspace/<stripe>   a chain's first entry, -1 = empty
    e_hash        (n,)                  uint64  keyspace/<stripe>   the entry's key hash (BLAKE2b, 64 bits)
    e_key, e_klen (n,)            uint64/uint32 keyspace/<stripe>   the key object (heap address, length)
    e_val, e_vlen (n,)            uint64/uint32 keyspace/<stripe>   the value object (0-length: no object)
    e_expire      (n,)                  int64   keyspace/<stripe>   expiry time in ms, 0 = none
    e_lru         (n,)                  uint32  none (racy, as Redis's own) the 24-bit LRU/LFU field (evict.py)
    e_next        (n,)                  int32   keyspace/<stripe>   the next entry on the chain, -1 = end
    ks_free       (n,)                  int32   keyspace/entries    the stack of free entry indices
    ks_free_top   (1,)                  int64   keyspace/entries    how many entries the stack holds
    ks_expire_cursor (1,)               int64   none (a lost update re-checks a few buckets) expire.py's walk
    ks_core       (cores, len(K_*))     int64   the row's core only used bytes, keys, INFO counters (K_*)
    ks_evicted    (cores, npolicies)    int64   the row's core only evicted keys by policy id (config.py)
    ks_gauge      (len(G_*),)           int64   see G_* below
    ks_inst       (cores, I_SAMPLES+n)  int64   the row's core only instantaneous_ops_per_sec (I_*)
    ks_config     (len(C_*),)           int64   none (one store)    CONFIG's settings (C_*, config.py)
    ks_seq        (STRIPES,)            int64   keyspace/<stripe>   each stripe's seqcount (seqlock.py SeqStripe)
    kspol_*       (per policy)          -       keyspace/policy     the sim/policies policy state (exact.py)

Invariants: an entry is on exactly one of a bucket's chain, the shared free stack, or one core's
private free list; `e_klen[e] == 0` exactly when entry e holds no key. The sums over the rows of
ks_core are exact even though a row may go negative (a core frees what another allocated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.sim.machine.shm import ArraySpec

STRIPES = 64
ENTRY_BATCH = 32  # free entries a core moves between the shared stack and its own list at a time
SAMPLE_WINDOW = 256  # buckets looked at per step of a scan or a sample

# ks_core columns (per core): what this core added to used_memory and to the key count (rows may be
# negative, their sum is exact), then Redis's INFO counters as this core counted them; the last five
# are the core's Redis-protocol connections (server/resp.py; its listener thread is their one writer):
# open now (connected_clients; set to 0 when the core starts), accepted, refused at maxclients,
# bytes read and written
K_USED_BYTES, K_KEYS, K_HITS, K_MISSES, K_EXPIRED, K_COMMANDS, K_REJECTED, K_READ_RETRIES = range(8)
K_CLIENTS, K_CONNECTIONS, K_REJECTED_CONN, K_NET_IN, K_NET_OUT = range(8, 13)
K_COLUMNS = 13
STAT_COLUMNS = (K_HITS, K_MISSES, K_EXPIRED, K_COMMANDS, K_REJECTED, K_READ_RETRIES,  # CONFIG RESETSTAT zeroes these
                K_CONNECTIONS, K_REJECTED_CONN, K_NET_IN, K_NET_OUT)

# ks_gauge cells: used_memory_peak (raised by whoever looks, a racy max); the sim/policies policy now
# laid out in the kspol_ arrays, by maxmemory-policy id (-1: none), written with every stripe and
# keyspace/policy held (exact.py)
G_PEAK, G_EXACT = range(2)
G_CELLS = 2

# ks_inst (per core): Redis's trackInstantaneousMetric state, then the samples
I_NEXT, I_LAST_MS, I_LAST_COMMANDS = range(3)
I_SAMPLES = 3  # the samples start at this column
INST_SAMPLES = 16  # Redis's STATS_METRIC_SAMPLES: instantaneous_ops_per_sec averages 16 samples

# ks_config cells, one per CONFIG parameter (config.py's CONFIG_PARAMS says which, its range and default)
C_MAXMEMORY, C_POLICY, C_SAMPLES, C_LFU_LOG_FACTOR, C_LFU_DECAY_TIME, C_TENACITY, C_EXPIRE_EFFORT = range(7)
C_CELLS = 7


@dataclass(frozen=True)
class CacheConfig:
    """ks_config read at once, by name."""

    maxmemory: int
    policy: int
    samples: int
    lfu_log_factor: int
    lfu_decay_time: int
    tenacity: int
    expire_effort: int

    @classmethod
    def read(cls, cells: np.ndarray) -> CacheConfig:
        return cls(*(int(v) for v in cells[:C_CELLS].tolist()))


def table_size(max_keys: int) -> tuple[int, int]:
    """(entries, buckets): max_keys rounded up to whole stripes, and a power of two of buckets."""
    n = -(-max_keys // STRIPES) * STRIPES
    return n, 1 << max(4, (n - 1).bit_length())


def cache_specs(max_keys: int, ncores: int, npolicies: int, policy_specs: list[ArraySpec]) -> list[ArraySpec]:
    n, nbuckets = table_size(max_keys)
    return [
        ArraySpec("ks_bucket", "int32", (nbuckets,)),
        ArraySpec("e_hash", "uint64", (n,)),
        ArraySpec("e_key", "uint64", (n,)),
        ArraySpec("e_klen", "uint32", (n,)),
        ArraySpec("e_val", "uint64", (n,)),
        ArraySpec("e_vlen", "uint32", (n,)),
        ArraySpec("e_expire", "int64", (n,)),
        ArraySpec("e_lru", "uint32", (n,)),
        ArraySpec("e_next", "int32", (n,)),
        ArraySpec("ks_free", "int32", (n,)),
        ArraySpec("ks_free_top", "int64", (1,)),
        ArraySpec("ks_expire_cursor", "int64", (1,)),
        ArraySpec("ks_core", "int64", (ncores, K_COLUMNS)),
        ArraySpec("ks_evicted", "int64", (ncores, npolicies)),
        ArraySpec("ks_gauge", "int64", (G_CELLS,)),
        ArraySpec("ks_inst", "int64", (ncores, I_SAMPLES + INST_SAMPLES)),
        ArraySpec("ks_config", "int64", (C_CELLS,)),
        ArraySpec("ks_seq", "int64", (STRIPES,)),
        *policy_specs,
    ]


def keyspace_lock_names() -> list[str]:
    return [f"keyspace/{s}" for s in range(STRIPES)] + ["keyspace/entries", "keyspace/policy"]
