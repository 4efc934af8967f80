"""memsim's exact and modern policies as the keyspace's maxmemory-policy (sim/cache/exact.py).

The keyspace evicts by bytes; with keys and values of one size a key costs the same number
of bytes, so maxmemory = K keys' worth holds exactly K keys, and the keyspace must then miss
exactly as often as the policy does on its own: cachetools for LRU, LFU and FIFO (the
independent reference), the trace simulator's policies (tested against hand-worked traces in
test_policies.py) for the rest. Then several processes on one exact policy, and switching
policies at run time with keys in place.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random

import cachetools
import pytest

from memsim.sim.cache.commands import Commands
from memsim.sim.cache.config import POLICY_IDS
from memsim.sim.cache.exact import FIRST_EXACT_ID
from memsim.sim.cache.keyspace import Keyspace
from memsim.sim.cache.layout import C_MAXMEMORY, G_EXACT
from memsim.sim.policies import POLICIES, Keyed
from memsim.sim.policies.simulate import zipf_trace
from memsim.sim.system import Machine, MachineConfig

MiB = 1 << 20
CTX = mp.get_context("fork")
EXACT = ["exact-lru", "exact-lfu", "fifo", "clock", "twolist", "sieve", "s3fifo"]
VALUE = b"v" * 24


@pytest.fixture
def machine():
    m = Machine.create(MachineConfig(memory_bytes=16 * MiB, cores=4, max_keys=8192))
    try:
        yield m
    finally:
        m.destroy()


def cache(m: Machine, policy: str, keys_fitting: int, core: int = 0) -> Keyspace:
    ks = m.keyspace(m.heap(core))
    ks.config_set("tenacity", 100)
    ks.config_set("policy", POLICY_IDS[policy])
    per_key = ks._charge(len(b"k00000")) + ks._charge(len(VALUE)) + 48
    ks.config_set("maxmemory", keys_fitting * per_key)
    return ks


def cmd_set(ks: Keyspace, key: bytes, value: bytes) -> None:
    """SET as a client sends it: through the dispatcher, which runs admission (sim/cache/commands.py)."""
    Commands(ks).execute([b"SET", key, value])


def keyspace_misses(ks: Keyspace, trace: list[int]) -> int:
    """Cache-aside: GET, and SET on a miss."""
    misses = 0
    for k in trace:
        key = b"k%05d" % k
        if ks.get(key) is None:
            misses += 1
            cmd_set(ks, key, VALUE)
    return misses


def reference_misses(policy: str, capacity: int, trace: list[int], slots: int) -> int:
    ref = {"exact-lru": cachetools.LRUCache, "exact-lfu": cachetools.LFUCache, "fifo": cachetools.FIFOCache}
    if policy in ref:
        c = ref[policy](maxsize=capacity)
        misses = 0
        for k in trace:
            if k in c:
                c[k]
            else:
                misses += 1
                c[k] = True
        return misses
    # The keyspace's sizing rule (exact.py): the hint is every entry until the first eviction,
    # then the number of keys held each time an eviction starts.
    p = Keyed(POLICIES[policy](slots, slots=slots))
    misses = 0
    for k in trace:
        if k in p:
            p.hit(k)
        else:
            misses += 1
            if len(p) >= capacity:
                p.policy.set_capacity(len(p))
                p.evict()
            p.insert(k)
    return misses


@pytest.mark.parametrize("policy", EXACT)
def test_keyspace_misses_equal_the_reference(machine, policy):
    capacity = 200
    trace = zipf_trace(6000, 1500, 0.9, seed=7)
    ks = cache(machine, policy, capacity)
    got = keyspace_misses(ks, trace)
    assert ks.dbsize() == capacity
    assert got == reference_misses(policy, capacity, trace, ks.capacity)
    pol = ks.exact.get(int(ks.a.ks_gauge[G_EXACT]))
    assert pol.check() == [] and len(pol) == ks.dbsize()
    assert int(ks.a.ks_evicted[0, POLICY_IDS[policy]]) == ks.evicted_keys() > 0


def test_sieve_and_s3fifo_beat_sampled_lru_on_zipf(machine):
    trace = zipf_trace(20000, 4000, 1.0, seed=3)
    hits = {}
    for policy in ("allkeys-lru", "sieve", "s3fifo"):
        ks = cache(machine, policy, 400)
        ks.flushall()
        hits[policy] = 1 - keyspace_misses(ks, trace) / len(trace)
    assert hits["sieve"] > hits["allkeys-lru"] and hits["s3fifo"] > hits["allkeys-lru"], hits


def test_switching_to_an_exact_policy_takes_the_live_keys_in(machine):
    ks = cache(machine, "allkeys-lru", 10_000)
    for i in range(300):
        cmd_set(ks, b"k%05d" % i, VALUE)
    ks.delete(b"k00007")
    ks.config_set("policy", POLICY_IDS["sieve"])
    pol = ks.exact.get(POLICY_IDS["sieve"])
    assert len(pol) == 299 and pol.check() == []
    ks.config_set("policy", POLICY_IDS["allkeys-lfu"])
    assert int(ks.a.ks_gauge[G_EXACT]) == -1
    ks.delete(b"k00008")  # no exact policy: nothing to keep in step
    ks.config_set("policy", POLICY_IDS["s3fifo"])
    assert len(ks.exact.get(POLICY_IDS["s3fifo"])) == 298


def test_exact_policy_at_start(machine):
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, cores=2, max_keys=1024, maxmemory_policy="twolist",
                                     maxmemory=20_000))
    try:
        ks = m.keyspace(m.heap(0))
        assert int(ks.a.ks_gauge[G_EXACT]) == POLICY_IDS["twolist"] >= FIRST_EXACT_ID
        for i in range(500):
            cmd_set(ks, b"k%05d" % i, VALUE)
        assert ks.used_memory() <= 20_000 and ks.evicted_keys() > 0
    finally:
        m.destroy()


def churn(m: Machine, core: int, seed: int, q) -> None:
    try:
        ks = m.keyspace(m.heap(core))
        rng = random.Random(seed)
        for _ in range(1500):
            key = b"k%05d" % rng.randrange(600)
            r = rng.random()
            if r < 0.5:
                ks.get(key)
            elif r < 0.9:
                cmd_set(ks, key, VALUE)
            else:
                ks.delete(key)
        ks.release()
        q.put((core, None))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        q.put((core, f"{type(e).__name__}: {e}"))
    q.close()
    q.join_thread()
    os._exit(0)


@pytest.mark.parametrize("policy", ["exact-lru", "exact-lfu", "s3fifo"])
def test_cores_share_one_exact_policy(machine, policy):
    ks = cache(machine, policy, 150)
    q = CTX.Queue()
    procs = [CTX.Process(target=churn, args=(machine, c, c * 11, q)) for c in (1, 2, 3)]
    for p in procs:
        p.start()
    out = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert [err for _, err in out] == [None, None, None]
    pol = ks.exact.get(POLICY_IDS[policy])
    assert pol.check() == []
    live = {e for e in range(ks.capacity) if int(ks.a.e_klen[e])}
    assert {e for e in live if e in pol} == live and len(pol) == len(live) == ks.dbsize()
    assert ks.used_memory() <= int(ks.a.ks_config[C_MAXMEMORY]) and ks.evicted_keys() > 0
