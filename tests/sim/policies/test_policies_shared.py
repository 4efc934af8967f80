"""Replacement policies over slots in arrays (sim/policies): private lists and NumPy storage agree
op for op, processes attached to one SharedRegion keep the structure consistent, and the
array layer's own contracts (specs, attach, capacity, fingerprints, bounds) hold."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import traceback
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.sim.machine.shm import SharedRegion, new_token, segment_name
from memsim.sim.policies import POLICIES, Keyed, Policy
from memsim.sim.policies.clock import Clock
from memsim.sim.policies.s3fifo import S3FIFO
from memsim.sim.policies.twolist import TwoList

ALL = sorted(POLICIES)
CTX = mp.get_context("fork")


def numpy_arrays(cls: type[Policy], slots: int) -> dict[str, np.ndarray]:
    """Fresh arrays as a SharedRegion would lay them out, but in private memory, filled with junk:
    init=True must not rely on the zero fill of a new segment."""
    rng = np.random.default_rng(slots)
    return {
        s.name: rng.integers(-50, 50, size=s.shape).astype(s.dtype) for s in cls.array_specs(slots)
    }


def state(p: Policy) -> dict[str, list[Any]]:
    """Every array of p as plain lists, to compare two storages cell by cell."""
    return {name: (a if isinstance(a, list) else a.tolist()) for name, a in p.arrays.items()}


def apply(p: Policy, op: str, slot: int, arg: int) -> tuple[str, Any]:
    """Run one operation; its result or the name of the exception it raised."""
    try:
        if op == "insert":
            return "ok", p.insert(slot, arg)
        if op == "hit":
            return "ok", p.hit(slot)
        if op == "remove":
            return "ok", p.remove(slot)
        if op == "evict":
            victim = p.evict()
            assert type(victim) is int  # never a NumPy scalar, whatever the storage
            return "ok", victim
        if op == "capacity":
            return "ok", p.set_capacity(arg)
        raise AssertionError(op)
    except (KeyError, ValueError, IndexError) as e:
        return type(e).__name__, None


OPS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "insert", "hit", "hit", "remove", "evict", "capacity"]),
        st.integers(-1, 10),  # slot: -1 and 10 (with 10 slots) are out of range
        st.integers(0, 12),  # fingerprint (small, so that ghosts come back and collide) or capacity
    ),
    max_size=150,
)


# --------------------------------------------------------------------------------------------- private == NumPy


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=120, deadline=None)
@given(ops=OPS, slots=st.integers(1, 10), capacity=st.integers(1, 10))
def test_private_and_numpy_storage_agree_op_for_op(name, ops, slots, capacity):
    cls = POLICIES[name]
    capacity = min(capacity, slots)
    private = cls(capacity, slots=slots)
    arrays = numpy_arrays(cls, slots)
    creator = cls(capacity, slots=slots, arrays=arrays, init=True)
    attached = cls(capacity, slots=slots, arrays=arrays, init=False)  # another process's view, in effect
    assert private.private and not creator.private
    model: set[int] = set()
    for i, (op, slot, arg) in enumerate(ops):
        shared = (creator, attached)[i % 2]  # alternate views of the same arrays
        got = apply(private, op, slot, arg)
        assert apply(shared, op, slot, arg) == got, (i, op, slot, arg)
        # the outcome is the contract's, not just the same on both
        kind, value = got
        in_range = 0 <= slot < slots
        if op == "insert":
            assert kind == ("ok" if in_range and slot not in model else "ValueError" if in_range else "IndexError")
            if kind == "ok":
                model.add(slot)
        elif op in ("hit", "remove"):
            assert kind == ("ok" if slot in model else "KeyError" if in_range else "IndexError")
            if kind == "ok" and op == "remove":
                model.discard(slot)
        elif op == "evict":
            assert kind == ("ok" if model else "KeyError")
            if kind == "ok":
                assert value in model
                model.discard(value)
        else:
            assert kind == ("ok" if 1 <= arg <= slots else "ValueError")
        assert len(private) == len(creator) == len(attached) == len(model)
        assert state(private) == state(creator)
    assert private.check() == [] and creator.check() == [] and attached.check() == []
    assert {s for s in range(slots) if s in attached} == model
    assert attached.capacity == private.capacity
    victims = [apply(private, "evict", 0, 0)[1] for _ in model]
    assert [apply(attached, "evict", 0, 0)[1] for _ in model] == victims
    assert sorted(victims) == sorted(model)
    assert private.check() == [] == attached.check()
    assert apply(attached, "evict", 0, 0)[0] == "KeyError"


@pytest.mark.parametrize("name", ALL)
def test_keyed_over_numpy_storage_replays_like_private(name):
    from memsim.sim.policies.simulate import replay, zipf_trace

    trace = zipf_trace(3000, 80, 0.9, seed=5)
    cls = POLICIES[name]
    mine = replay(Keyed(cls(16)), trace, 16)
    theirs = replay(Keyed(cls(16, arrays=numpy_arrays(cls, 16))), trace, 16)
    assert mine == theirs


# --------------------------------------------------------------------------------------------- the array layer


@pytest.mark.parametrize("name", ALL)
def test_array_specs_are_named_sized_and_laid_out(name):
    cls = POLICIES[name]
    for slots in (1, 7, 1000):
        specs = cls.array_specs(slots)
        names = [s.name for s in specs]
        assert len(set(names)) == len(names) and "pol_meta" in names
        assert all(n.startswith("pol_") for n in names)
        assert all(len(s.shape) == 1 and np.dtype(s.dtype).kind in "if" for s in specs)
        assert SharedRegion.size_of(specs) >= sum(s.nbytes for s in specs)
    assert sum(s.nbytes for s in cls.array_specs(1000)) < 100 * 1000  # bytes per slot stay small


@pytest.mark.parametrize("name", ALL)
def test_attach_refuses_arrays_that_do_not_fit(name):
    cls = POLICIES[name]
    arrays = numpy_arrays(cls, 8)
    victim = next(iter(arrays))
    with pytest.raises(ValueError, match=victim):
        cls(8, slots=8, arrays={k: v for k, v in arrays.items() if k != victim})
    with pytest.raises(ValueError, match=victim):
        cls(8, slots=8, arrays={**arrays, victim: arrays[victim][:-1]})
    with pytest.raises(ValueError, match=victim):
        cls(8, slots=8, arrays={**arrays, victim: arrays[victim].astype(np.float32)})
    bigger = {**numpy_arrays(cls, 8), "other_array": np.zeros(3)}  # other arrays of a region are ignored
    cls(8, slots=8, arrays=bigger)


@pytest.mark.parametrize("name", ALL)
def test_slots_out_of_range_fail_loudly(name):
    p = POLICIES[name](3, slots=5)
    assert p.slots == 5 and p.capacity == 3
    for bad in (-1, 5, 6):
        for call in (lambda s: p.insert(s), p.hit, p.remove):
            with pytest.raises(IndexError, match="outside"):
                call(bad)
        assert bad not in p
    assert "x" not in p and None not in p
    p.insert(4)  # slots, not capacity, bound the slot numbers
    assert 4 in p and p.check() == []
    with pytest.raises(ValueError, match="capacity"):
        POLICIES[name](6, slots=5)
    with pytest.raises(ValueError, match="capacity"):
        p.set_capacity(0)
    with pytest.raises(ValueError, match="capacity"):
        p.set_capacity(6)
    with pytest.raises(ValueError, match="slot"):
        POLICIES[name](3, slots=0)


def test_capacity_is_shared_and_resizes_the_shares():
    arrays = numpy_arrays(S3FIFO, 100)
    a = S3FIFO(100, arrays=arrays)
    b = S3FIFO(1, slots=100, arrays=arrays, init=False)  # attaching does not overwrite the capacity
    assert b.capacity == 100 and (b.small_capacity, b.main_capacity, b.ghost_capacity) == (10, 90, 90)
    a.set_capacity(40)
    assert (b.capacity, b.small_capacity, b.main_capacity, b.ghost_capacity) == (40, 4, 36, 36)
    tl = TwoList(10, slots=20)
    assert tl.max_active == 5
    tl.set_capacity(20)
    assert tl.max_active == 10


def test_twolist_shrunk_active_share_demotes_on_the_next_promotion():
    tl = TwoList(8)
    for s in range(8):
        tl.insert(s)
    for s in range(4):
        tl.hit(s)
    assert tl.lists()[0] == [3, 2, 1, 0]
    tl.set_capacity(2)  # max_active 1
    tl.hit(4)
    assert tl.lists()[0] == [4] and tl.check() == []


def test_s3fifo_ghost_shrinks_with_the_capacity():
    s3 = S3FIFO(10)
    for s in range(10):
        s3.insert(s, fingerprint=1000 + s)
    for _ in range(9):
        s3.evict()  # nothing was hit: S's entries go, oldest first, and their fingerprints to G
    assert len(s3.ghost()) == 9 and s3.ghost_capacity == 9
    assert s3.ghost() == list(range(1008, 999, -1))  # newest first
    s3.set_capacity(4)  # G's share is now 3: trimmed at the next ghost insertion
    assert len(s3.ghost()) == 9 and s3.check() == []
    s3.insert(0, fingerprint=2000)
    assert s3.evict() == 9  # S's oldest; its fingerprint joins G, which keeps its 3 newest
    assert s3.ghost() == [1009, 1008, 1007] and s3.check() == []


def test_options_are_stored_and_checked_on_attach():
    arrays = numpy_arrays(Clock, 4)
    Clock(4, arrays=arrays, referenced_on_insert=True)
    assert Clock(4, arrays=arrays, init=False).referenced_on_insert
    with pytest.raises(ValueError, match="referenced_on_insert"):
        Clock(4, arrays=arrays, init=False, referenced_on_insert=False)
    arrays = numpy_arrays(TwoList, 10)
    TwoList(10, arrays=arrays, active_ratio=0.3)
    assert TwoList(10, arrays=arrays, init=False).max_active == 3
    with pytest.raises(ValueError, match="active_ratio"):
        TwoList(10, arrays=arrays, init=False, active_ratio=0.5)
    arrays = numpy_arrays(S3FIFO, 10)
    S3FIFO(10, arrays=arrays, small_ratio=0.2)
    assert S3FIFO(10, arrays=arrays, init=False).small_capacity == 2
    with pytest.raises(ValueError, match="small_ratio"):
        S3FIFO(10, arrays=arrays, init=False, small_ratio=0.1)


def test_s3fifo_ghost_remembers_fingerprints_not_slots():
    s3 = S3FIFO(10)
    s3.insert(0, fingerprint=77)
    assert s3.evict() == 0 and s3.in_ghost(77)
    s3.insert(0, fingerprint=78)  # the slot is reused by another key: not a ghost hit
    assert s3.queue_of(0) == "small" and s3.in_ghost(77)
    s3.insert(5, fingerprint=77)  # the evicted key comes back in another slot: straight to M
    assert s3.queue_of(5) == "main" and not s3.in_ghost(77)
    s3.insert(6)  # no fingerprint (0): never a ghost, never looked up
    s3.hit(6)
    assert s3.queue_of(6) == "small" and s3.check() == []
    for bad in (-1, 1 << 63):
        with pytest.raises(ValueError, match="fingerprint"):
            s3.insert(7, fingerprint=bad)
    assert 7 not in s3 and s3.check() == []


def test_s3fifo_ghost_hash_set_survives_churn_and_collisions():
    # many fingerprints through a small G: backward-shift deletion must keep every survivor findable
    s3 = S3FIFO(16)
    rng = random.Random(3)
    live: dict[int, int] = {}
    for _ in range(20_000):
        if len(live) == 16:
            victim = s3.evict()
            del live[victim]
        slot = next(s for s in range(16) if s not in live)
        fp = rng.choice([rng.randrange(1, 64), rng.randrange(1, 1 << 63)])
        s3.insert(slot, fingerprint=fp)
        live[slot] = fp
        if rng.random() < 0.5:
            s3.hit(rng.choice(list(live)))
    assert s3.check() == []
    assert len(s3.ghost()) == len(set(s3.ghost())) <= s3.ghost_capacity
    assert all(s3.in_ghost(fp) for fp in s3.ghost())


def test_lfu_reuses_buckets_and_never_runs_out():
    from memsim.sim.policies.lfu import LFU

    lfu = LFU(4)
    for s in range(4):
        lfu.insert(s)
    for s in range(4):
        for _ in range(s):
            lfu.hit(s)  # counts 1, 2, 3, 4: four buckets, the whole pool
    assert [c for c, _ in lfu.buckets()] == [1, 2, 3, 4] and lfu.check() == []
    for _ in range(10):
        lfu.hit(0)  # a lone slot whose next count is taken moves; else its bucket is bumped in place
        assert lfu.check() == []
    assert lfu.count(0) == 11 and [lfu.evict() for _ in range(4)] == [1, 2, 3, 0]


@pytest.mark.parametrize("name", ALL)
def test_check_notices_corruption(name):
    cls = POLICIES[name]
    arrays = numpy_arrays(cls, 8)
    p = cls(8, arrays=arrays)
    for s in range(6):
        p.insert(s, fingerprint=100 + s)
    for s in (1, 2, 2, 5):
        p.hit(s)
    p.evict()
    p.insert(7, fingerprint=107)
    assert p.check() == []
    present = [s for s in range(8) if s in p]
    corruptions = [("pol_meta", 1, len(p) + 1), ("pol_next", present[1], present[1]), ("pol_prev", present[0], -1)]
    for array, index, value in corruptions:
        if array not in arrays:  # a policy without doubly linked lists (not every one has them)
            continue
        saved = arrays[array][index]
        arrays[array][index] = value
        assert p.check() != [], (array, index, value)
        arrays[array][index] = saved
        assert p.check() == []


def test_keyed_runs_out_of_slots_loudly_and_maps_keys_back():
    k = Keyed(POLICIES["lru"](2))
    k.insert("a")
    k.insert("b")
    with pytest.raises(ValueError, match="slots"):
        k.insert("c")
    assert k.key_of(k.slot_of("a")) == "a" and sorted(k.keys()) == ["a", "b"]
    assert k.evict() == "a" and "a" not in k
    k.insert("c")
    assert k.name == "lru" and k.capacity == 2 and "lru" in repr(k)
    with pytest.raises(ValueError, match="empty"):
        Keyed(k.policy)


def test_initialising_a_big_shared_policy_is_fast():
    # the keyspace may have millions of entries: init must not loop in Python over the slots
    import time

    for name in ALL:
        cls = POLICIES[name]
        arrays = {s.name: np.empty(s.shape, s.dtype) for s in cls.array_specs(1 << 20)}
        t = time.perf_counter()
        p = cls(1 << 20, arrays=arrays)
        assert time.perf_counter() - t < 1.0, name
        p.insert(12345, 99)
        assert p.evict() == 12345


# --------------------------------------------------------------------------------------------- several processes

SLOTS = 48
OPS_PER_CHILD = 1500


def worker(name: str, region: SharedRegion, lock: Any, q: Any, seed: int) -> None:
    """A forked child: attach to the shared policy and drive it under the lock; report what it did."""
    code = 0
    try:
        try:
            p = POLICIES[name](1, slots=SLOTS, arrays=region.arrays, init=False)
            live = region.arrays["t_live"]  # the owner's view: which slots hold an entry
            rng = random.Random(seed)
            inserted = removed = evicted = 0
            problems: list[str] = []
            for i in range(OPS_PER_CHILD):
                slot = rng.randrange(SLOTS)
                r = rng.random()
                with lock:
                    if r < 0.4:
                        if live[slot]:
                            p.hit(slot)
                        else:
                            p.insert(slot, rng.randrange(1, 3 * SLOTS))  # small key space: ghosts come back
                            live[slot] = 1
                            inserted += 1
                    elif r < 0.75:
                        if live[slot]:
                            p.hit(slot)
                    elif r < 0.85:
                        if live[slot]:
                            p.remove(slot)
                            live[slot] = 0
                            removed += 1
                    elif r < 0.99:
                        if len(p):
                            victim = p.evict()
                            if not live[victim]:
                                problems.append(f"evicted {victim}, which held no entry")
                            live[victim] = 0
                            evicted += 1
                    else:
                        p.set_capacity(rng.randint(1, SLOTS))
                    if len(p) != int(live.sum()):
                        problems.append(f"op {i}: the policy holds {len(p)}, the owner {int(live.sum())}")
                    if i % 100 == 0:
                        problems += p.check()
            q.put(("ok", seed, (inserted, removed, evicted, problems)))
        except BaseException:  # noqa: BLE001 - a child reports every failure, then os._exit
            code = 1
            q.put(("error", seed, traceback.format_exc()))
        q.close()
        q.join_thread()  # flush the queue's feeder thread before os._exit
    finally:
        os._exit(code)


@pytest.mark.parametrize("name", ALL)
def test_processes_share_one_policy_under_a_lock(name):
    cls = POLICIES[name]
    from memsim.sim.machine.shm import ArraySpec

    specs = [*cls.array_specs(SLOTS), ArraySpec("t_live", "int8", (SLOTS,))]
    region = SharedRegion.create(segment_name(new_token(), "poltest"), specs)
    shm_path = f"/dev/shm/{region.name.lstrip('/')}"
    try:
        p = cls(SLOTS // 2, slots=SLOTS, arrays=region.arrays, init=True)
        lock, q = CTX.Lock(), CTX.Queue()
        procs = [CTX.Process(target=worker, args=(name, region, lock, q, seed)) for seed in (1, 2, 3)]
        for proc in procs:
            proc.start()
        try:
            results = [q.get(timeout=120) for _ in procs]
        finally:
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()
        errors = [r[2] for r in results if r[0] != "ok"]
        assert errors == []
        assert [proc.exitcode for proc in procs] == [0, 0, 0]
        counts = [r[2] for r in results]
        assert [x for c in counts for x in c[3]] == []
        inserted, removed, evicted = (sum(c[k] for c in counts) for k in range(3))
        assert inserted > 100 and evicted > 10 and removed > 10
        assert len(p) == inserted - removed - evicted
        live = {s for s in range(SLOTS) if region.arrays["t_live"][s]}
        assert {s for s in range(SLOTS) if s in p} == live
        assert p.check() == []
        victims = [p.evict() for _ in range(len(p))]
        assert len(victims) == len(set(victims)) and set(victims) == live  # every slot reported once
        assert len(p) == 0 and p.check() == []
        with pytest.raises(KeyError):
            p.evict()
        del p
    finally:
        region.close()
        region.unlink()
    assert not os.path.exists(shm_path)
