"""activeExpireCycle(): Redis's active expiry, bounded in time.

Lazy expiry (a key is deleted when it is touched after its time) never frees a key nobody
reads again. Redis therefore also runs, hz times a second, a slow cycle: sample keys with a
TTL, 20 per loop (ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP) taken in bucket order from where the
last loop stopped (db->expires_cursor), delete the expired ones, and loop
again while more than 10 % of a sample was expired (ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE),
within 25 % of a core's time (25 ms per call at hz 10), looking at the clock every 16 loops.
`active-expire-effort` (1-10) adds, per step above 1, a quarter more keys per loop, 2 % more
CPU, and lowers the stale target by 1 %. The estimate is statistical, as Redis's is: when
fewer than 10 % of sampled keys are expired, the rest can wait for the next cycle or for a
read. Any core may run a cycle; deleting goes through the keyspace's locks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from memsim.sim.cache.keyspace import Keyspace

KEYS_PER_LOOP = 20
ACCEPTABLE_STALE = 10  # percent
SLOW_TIME_PERC = 25  # percent of a core
HZ = 10


@dataclass
class CycleStats:
    loops: int = 0
    sampled: int = 0
    expired: int = 0
    timed_out: bool = False


def cycle_parameters(effort: int, hz: int) -> tuple[int, float, int]:
    """(keys per loop, time limit in seconds, acceptable stale %) as Redis derives them."""
    if not 1 <= effort <= 10:
        raise ValueError("active-expire-effort must be between 1 and 10")
    e = effort - 1
    keys = KEYS_PER_LOOP + KEYS_PER_LOOP // 4 * e
    perc = SLOW_TIME_PERC + 2 * e
    return keys, perc / 100 / hz, ACCEPTABLE_STALE - e


def active_expire_cycle(ks: Keyspace, effort: int = 1, hz: int = HZ) -> CycleStats:
    keys_per_loop, limit, stale = cycle_parameters(effort, hz)
    st = CycleStats()
    t0 = time.perf_counter()
    a = ks.a
    while True:
        st.loops += 1
        if st.loops % 16 == 0 and time.perf_counter() - t0 > limit:  # Redis looks at the clock every 16 loops
            st.timed_out = True
            break
        # A shared cursor: cores running cycles share the walk (a lost update only re-checks a few buckets).
        picks, a.ks_free_top[1] = ks.ttl_entries_from(int(a.ks_free_top[1]), keys_per_loop)
        if not picks and (a.e_expire != 0).sum() == 0:
            break  # no key has a TTL
        if not picks:
            continue  # only empty buckets in this stretch: the next loop goes on from there
        now = ks.clock()
        expired = 0
        for e in picks:
            exp = int(a.e_expire[e])
            if exp and exp <= now and ks.expire_if_due(ks.key_of(e)):
                expired += 1
        st.sampled += len(picks)
        st.expired += expired
        if expired * 100 <= stale * len(picks):
            break
    return st
