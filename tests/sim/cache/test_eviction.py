"""maxmemory and Redis's eight policies on the shared keyspace (sim/cache/evict.py)."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
from collections import OrderedDict

import pytest

from memsim.sim.alloc.recovery import check
from memsim.sim.cache.commands import Commands
from memsim.sim.cache.config import POLICY_IDS
from memsim.sim.cache.evict import OOM_ERROR, Evictor, time_budget_s
from memsim.sim.cache.keyspace import Keyspace
from memsim.sim.cache.lrutest import lru_test_trace
from memsim.sim.errors import InvalidArgument, ResourceExhausted
from memsim.sim.system import Machine, MachineConfig

MiB = 1 << 20
CTX = mp.get_context("fork")


class Clock:
    def __init__(self, t: int = 10**12, step: int = 0):
        self.t, self.step = t, step

    def __call__(self) -> int:
        self.t += self.step
        return self.t


@pytest.fixture
def machine():
    m = Machine.create(MachineConfig(memory_bytes=16 * MiB, cores=4, max_keys=32768))
    try:
        yield m
    finally:
        m.destroy()


def cache(m: Machine, core: int = 0, policy: str = "noeviction", maxmemory: int = 0, clock=None,
          samples: int = 5, tenacity: int = 100) -> Keyspace:
    """A keyspace with an evictor. Tenacity 100 (no time box) unless a test is about the box:
    on a loaded 2-CPU host a 10 ms budget can run out for reasons that have nothing to do with
    the policy under test."""
    ks = m.keyspace(m.heap(core))
    ks.attach_evictor(Evictor(ks, seed=core))
    if clock is not None:
        ks.clock = clock
    ks.config_set("policy", POLICY_IDS[policy])
    ks.config_set("maxmemory", maxmemory)
    ks.config_set("samples", samples)
    ks.config_set("tenacity", tenacity)
    return ks


def cmd_set(ks: Keyspace, key: bytes, value: bytes, expire_at_ms: int = 0) -> None:
    """SET as a client sends it: through the dispatcher, which runs admission (sim/cache/commands.py)."""
    Commands(ks).execute([b"SET", key, value] + ([b"PXAT", b"%d" % expire_at_ms] if expire_at_ms else []))


def test_noeviction_refuses_writes_with_redis_text_and_keeps_reads(machine):
    ks = cache(machine, policy="noeviction", maxmemory=20_000)
    stored = []
    with pytest.raises(ResourceExhausted) as ei:
        for i in range(10_000):
            cmd_set(ks, f"k{i}".encode(), b"v" * 100)
            stored.append(f"k{i}".encode())
    assert str(ei.value) == OOM_ERROR
    assert ks.used_memory() <= 20_000 and ks.dbsize() == len(stored) > 0
    assert ks.get(stored[0]) == b"v" * 100  # reads still work
    assert ks.delete(stored[0])  # and DEL frees room
    cmd_set(ks, b"again", b"v" * 100)


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_allkeys_policies_stay_under_maxmemory_on_every_write(machine, policy):
    ks = cache(machine, policy=policy, maxmemory=50_000, clock=Clock(step=5))
    rng = random.Random(3)
    for _ in range(3000):
        cmd_set(ks, f"key:{rng.randrange(5000)}".encode(), os.urandom(rng.choice([10, 100, 400])))
        assert ks.used_memory() <= 50_000
    assert ks.evicted_keys() > 0
    assert int(ks.a.ks_evicted[0, POLICY_IDS[policy]]) == ks.evicted_keys()


def test_volatile_policies_evict_only_keys_with_a_ttl_and_act_as_noeviction_without(machine):
    clock = Clock(step=1)
    ks = cache(machine, policy="volatile-lru", maxmemory=40_000, clock=clock)
    for i in range(100):
        cmd_set(ks, f"keep:{i}".encode(), b"p" * 100)
    for i in range(1000):
        cmd_set(ks, f"ttl:{i}".encode(), b"t" * 100, expire_at_ms=clock.t + 10**9)
    assert all(ks.get(f"keep:{i}".encode()) == b"p" * 100 for i in range(100))
    assert ks.evicted_keys() > 0
    ks.flushall()
    for i in range(1000):
        try:
            cmd_set(ks, f"plain:{i}".encode(), b"p" * 100)
        except ResourceExhausted as e:
            assert str(e) == OOM_ERROR  # nothing has a TTL: volatile-* is noeviction
            break
    else:
        pytest.fail("volatile-lru never refused a write with no TTL key to evict")


def test_volatile_ttl_evicts_the_soonest_expiry_first(machine):
    clock = Clock()
    ks = cache(machine, policy="volatile-ttl", maxmemory=30_000, clock=clock, samples=64)
    for i in range(60):
        cmd_set(ks, f"t{i}".encode(), b"x" * 200, expire_at_ms=clock.t + 1_000_000 + i * 1000)
    for _ in range(1000):
        if ks.evicted_keys():
            break
        cmd_set(ks, f"more{clock.t}".encode(), b"y" * 200, expire_at_ms=clock.t + 10**9)
        clock.t += 1
    assert ks.evicted_keys() > 0
    assert not ks.exists(b"t0")  # the soonest to expire went first
    assert ks.exists(b"t59")


def test_lfu_keeps_the_hot_keys(machine):
    clock = Clock(step=1)
    ks = cache(machine, policy="allkeys-lfu", maxmemory=60_000, clock=clock, samples=10)
    hot = [f"hot:{i}".encode() for i in range(20)]
    for k in hot:
        cmd_set(ks, k, b"h" * 100)
    for _ in range(150):  # ~150 hits put a counter near 12 (cold keys stay at 5)
        for k in hot:
            ks.get(k)
    for i in range(2000):
        cmd_set(ks, f"cold:{i}".encode(), b"c" * 100)
    assert sum(ks.exists(k) for k in hot) == len(hot)


def test_tenacity_bounds_the_eviction_loop_and_refuses_past_it(machine):
    ks = cache(machine, policy="allkeys-lru", maxmemory=20_000, tenacity=0)  # a budget of zero
    for i in range(400):
        cmd_set(ks, f"k{i}".encode(), b"v" * 60)  # fill with small keys
    before = ks.evicted_keys()
    with pytest.raises(ResourceExhausted) as ei:
        cmd_set(ks, b"big", b"B" * 6000)  # needs far more than 16 evictions
    # Redis looks at the clock every 16 evicted keys: with no budget it stops at the first look.
    assert str(ei.value) == OOM_ERROR and ks.evicted_keys() - before == 16
    assert ks.used_memory() <= 20_000
    ks.config_set("tenacity", 100)
    cmd_set(ks, b"big", b"B" * 6000)  # unbounded: the same write evicts enough and succeeds
    assert ks.get(b"big") == b"B" * 6000 and ks.used_memory() <= 20_000


def test_a_write_bigger_than_maxmemory_evicts_nothing(machine):
    ks = cache(machine, policy="allkeys-lru", maxmemory=20_000)
    for i in range(50):
        cmd_set(ks, f"k{i}".encode(), b"v" * 100)
    with pytest.raises(ResourceExhausted, match="OOM"):
        cmd_set(ks, b"huge", b"H" * 30_000)
    assert ks.evicted_keys() == 0 and ks.dbsize() == 50


@pytest.mark.parametrize("write", [
    [b"SET", b"", b"x"], [b"MSET", b"new", b"x", b"", b"y"], [b"INCR", b""], [b"APPEND", b"", b"x"],
])
def test_a_write_with_a_bad_key_evicts_nothing_with_the_table_full(write):
    """The dispatcher checks a denyoom command's keys before admission: a full table under an
    evicting policy gives up no key for a write that is then refused."""
    m = Machine.create(MachineConfig(memory_bytes=8 << 20, cores=1, max_keys=64, maxmemory_policy="allkeys-random"))
    try:
        ks = m.keyspace(m.heap(0))
        cmds = Commands(ks)
        for i in range(64):
            cmds.execute([b"SET", b"k%d" % i, b"v"])
        with pytest.raises(InvalidArgument, match="bad key"):
            cmds.execute(write)
        assert ks.dbsize() == 64 and ks.evicted_keys() == 0
    finally:
        m.destroy()


def test_set_nx_on_a_key_that_exists_and_xx_on_one_that_does_not_evict_nothing(machine):
    """Such a SET writes nothing, so it needs no room (Redis evicts nothing while used_memory is
    under maxmemory)."""
    ks = cache(machine, policy="allkeys-lru", maxmemory=20_000)
    stored = 0
    while ks.used_memory() + 400 < 20_000:
        cmd_set(ks, f"k{stored}".encode(), b"v" * 100)
        stored += 1
    c = Commands(ks)
    assert c.execute([b"SET", b"k0", b"x" * 3000, b"NX"]) is None
    assert c.execute([b"SET", b"nope", b"x" * 3000, b"XX"]) is None
    assert ks.evicted_keys() == 0 and ks.dbsize() == stored


def test_overwriting_a_key_in_a_full_index_evicts_no_other_key():
    m = Machine.create(MachineConfig(memory_bytes=8 << 20, cores=1, max_keys=256, maxmemory_policy="allkeys-lru"))
    try:
        ks = m.keyspace(m.heap(0))
        c = Commands(ks)
        n = 0
        while ks.entry_free() or n < 256:  # fill every entry of the index
            c.execute([b"SET", b"k%d" % n, b"v"])
            n += 1
            if ks.evicted_keys():
                break
        full = ks.dbsize()
        evicted = ks.evicted_keys()
        for key in (b"k%d" % (n - 1), b"k%d" % (n - 2)):
            c.execute([b"SET", key, b"w"])
            c.execute([b"APPEND", key, b"x"])
            c.execute([b"MSET", key, b"y"])
        assert ks.dbsize() == full and ks.evicted_keys() == evicted
    finally:
        m.destroy()


def test_a_write_that_evicts_its_own_key_is_made_room_for_whole(machine):
    """Admission sized an existing key's write as its values' difference; if eviction then takes
    that very key, the write makes it anew and needs room for all of it."""
    ks = cache(machine, policy="allkeys-lru", maxmemory=20_000, clock=Clock(step=100_000), samples=64)
    cmd_set(ks, b"only", b"a" * 9000)  # the older key: the one LRU takes
    cmd_set(ks, b"other", b"o" * 8000)
    cmd_set(ks, b"only", b"b" * 12_000)  # 3000 B more, so "only" itself is evicted to make room
    assert ks.evicted_keys() >= 1 and ks.get(b"only") == b"b" * 12_000
    assert ks.used_memory() <= 20_000


def test_a_write_that_does_not_grow_memory_is_allowed_at_the_limit(machine):
    ks = cache(machine, policy="noeviction", maxmemory=20_000)
    stored = 0
    with pytest.raises(ResourceExhausted):
        for i in range(1000):
            cmd_set(ks, f"k{i}".encode(), b"v" * 100)
            stored += 1
    cmd_set(ks, b"k0", b"w" * 100)  # same size: Redis accepts it while used <= maxmemory
    cmd_set(ks, b"n", b"1") if ks.used_memory() + 200 < 20_000 else None
    assert ks.get(b"k0") == b"w" * 100


def test_volatile_policy_never_evicts_a_key_that_lost_its_ttl(machine):
    clock = Clock(step=1)
    ks = cache(machine, policy="volatile-lru", maxmemory=30_000, clock=clock, samples=64)
    for i in range(200):
        cmd_set(ks, f"t{i}".encode(), b"x" * 100, expire_at_ms=clock.t + 10**9)
    persisted = [k for k in (f"t{i}".encode() for i in range(0, 200, 2)) if ks.exists(k)]
    assert len(persisted) > 50
    for k in persisted:
        ks.persist(k)  # the pool may still hold them from an earlier sample
    for i in range(300):
        try:
            cmd_set(ks, f"n{i}".encode(), b"y" * 100, expire_at_ms=clock.t + 10**9)
        except ResourceExhausted:
            break
    assert all(ks.exists(k) for k in persisted)


def test_config_set_validates_like_redis(machine):
    ks = cache(machine)
    with pytest.raises(InvalidArgument, match="between 1 and 64"):
        ks.config_set("samples", 65)
    with pytest.raises(InvalidArgument, match="Unknown option"):
        ks.config_set("maxmemory-nonsense", 1)
    with pytest.raises(InvalidArgument):
        ks.config_set("tenacity", 101)
    assert time_budget_s(10) == pytest.approx(500e-6 * 20) and time_budget_s(100) is None


def test_sampled_lru_on_the_keyspace_tracks_exact_lru(machine):
    # The lru-test workload on the real keyspace: 4k keys, equal values, a cache of ~22 %.
    clock = Clock(step=1)  # one ms per request: ~1k requests per LRU-clock second
    ks = cache(machine, policy="allkeys-lru", clock=clock)
    value = b"v" * 64
    cmd_set(ks, b"probe", value)
    per_key = ks.used_memory()
    ks.delete(b"probe")
    cap = 880
    ks.config_set("maxmemory", cap * per_key)
    trace = lru_test_trace(4000, cycles=120, seed=9)
    hits = 0
    for k, write in trace:
        key = b"lru:%d" % k
        if write:
            cmd_set(ks, key, value)
        elif ks.get(key) is not None:
            hits += 1
    d: OrderedDict = OrderedDict()
    exact = 0
    for k, write in trace:
        if k in d:
            d.move_to_end(k)
            if not write:
                exact += 1
        elif write:
            if len(d) >= cap:
                d.popitem(last=False)
            d[k] = True
    gets = len(trace) // 2
    print(f"keyspace allkeys-lru hit {hits / gets:.4f} exact LRU {exact / gets:.4f}")
    assert exact / gets - 0.03 <= hits / gets <= exact / gets + 0.01
    assert ks.dbsize() <= cap


def writer(m: Machine, core: int, q) -> None:
    try:
        ks = m.keyspace(m.heap(core))
        ks.attach_evictor(Evictor(ks, seed=core))
        rng = random.Random(core)
        worst = 0
        for i in range(1500):
            cmd_set(ks, f"c{core}:{rng.randrange(3000)}".encode(), os.urandom(rng.choice([16, 200])))
            worst = max(worst, ks.used_memory())
            if i % 3 == 0:
                ks.get(f"c{core}:{rng.randrange(3000)}".encode())
        ks.release()
        ks.heap.release_caches()
        q.put((core, worst, None))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        q.put((core, 0, repr(e)))
    q.close()
    q.join_thread()
    os._exit(0)


def test_three_cores_evicting_at_once(machine):
    ks = cache(machine, policy="allkeys-lru", maxmemory=80_000, clock=Clock(step=2))
    q = CTX.Queue()
    procs = [CTX.Process(target=writer, args=(machine, c, q)) for c in (1, 2, 3)]
    for p in procs:
        p.start()
    try:
        out = [q.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert [err for *_, err in out] == [None] * 3
    # Concurrent writers may overshoot by at most one value each (documented in evict.py).
    assert max(w for _, w, _ in out) <= 80_000 + 3 * 400
    assert ks.used_memory() <= 80_000 + 3 * 400 and ks.evicted_keys() > 0
    ks.flushall()
    ks.release()
    ks.heap.release_caches()
    assert ks.used_memory() == 0 and check(ks.heap) == []


def test_sampling_a_small_table_finds_every_key_whichever_bucket_it_starts_at():
    """dictGetSomeKeys() walks on from a random bucket and wraps: on a table smaller than one sample
    window, the buckets before the start are reached too."""
    m = Machine.create(MachineConfig(memory_bytes=8 << 20, cores=1, max_keys=64))
    try:
        ks = m.keyspace(m.heap(0))
        for key in (b"one", b"two"):
            ks.set(key, b"v")
        for seed in range(32):
            assert len(ks.sample_entries(random.Random(seed), 5)) == 2
    finally:
        m.destroy()
