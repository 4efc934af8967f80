"""Several cores (forked processes) on one machine: shared size classes, cross-core frees,
racing double frees, and a core killed with SIGKILL mid-work. No gRPC.

The machine is created in the test process; children are forked from it (start method
pinned to 'fork'), build their own core's view with `machine.heap(core)`, report through a
Queue and leave with os._exit so that pytest's teardown never runs in a child.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import multiprocessing as mp
import os
import queue
import random
import signal
import sys
import threading
import time
import traceback

import pytest

from memsim.sim.alloc import layout as L
from memsim.sim.alloc.memstats import read_cache_stats, read_memstats
from memsim.sim.alloc.recovery import check, recover
from memsim.sim.errors import FailedPrecondition

CTX = mp.get_context("fork")
MiB = 1 << 20
RESULT_TIMEOUT = 60.0

# A few shared classes: tiny sizes, 16/24/48 B, 1 KiB, 4 KiB, and one large size.
SIZES = [1, 3, 8, 12, 15, 16, 20, 48, 1000, 4000, 40000]


# -- helpers --------------------------------------------------------------------------------------


def stamp(core: int, seq: int, size: int) -> bytes:
    """(core, seq, checksum) spread over the whole object; never all zeros."""
    d = hashlib.blake2b(f"{core}:{seq}:{size}".encode(), digest_size=32).digest()
    return (d * (size // 32 + 1))[:size]


def child_main(q, core: int, fn, *args) -> None:
    """Run fn in a forked child; put ('ok'|'error', core, payload) and leave with os._exit."""
    code = 0
    try:
        try:
            payload = fn(core, *args)
            q.put(("ok", core, payload))
        except BaseException:  # noqa: BLE001 - a child reports every failure, then os._exit
            code = 1
            q.put(("error", core, traceback.format_exc()))
        q.close()
        q.join_thread()  # flush the queue's feeder thread before os._exit
    finally:
        os._exit(code)


def start(q, core: int, fn, *args):
    p = CTX.Process(target=child_main, args=(q, core, fn, *args), daemon=True)
    p.start()
    return p


def collect(q, procs: dict[int, mp.Process], want: set[int]) -> dict[int, object]:
    """Results of the cores in `want`; fails fast on a child's error or silent death."""
    results: dict[int, object] = {}
    deadline = time.monotonic() + RESULT_TIMEOUT
    while want - results.keys():
        try:
            kind, core, payload = q.get(timeout=0.2)
        except queue.Empty:
            for c in want - results.keys():
                p = procs[c]
                if not p.is_alive() and p.exitcode is not None:
                    # it may have put its result just before exiting
                    try:
                        kind, core, payload = q.get(timeout=1.0)
                    except queue.Empty:
                        pytest.fail(f"core {c} died with exit code {p.exitcode} without reporting")
                    break
            else:
                if time.monotonic() > deadline:
                    pytest.fail(f"no result from cores {sorted(want - results.keys())}")
                continue
        if kind == "error":
            pytest.fail(f"core {core} failed:\n{payload}")
        results[core] = payload
    return results


@contextlib.contextmanager
def supervised(procs):
    """Kill every child at once if the body fails; in any case join them all."""
    try:
        yield
    except BaseException:
        for p in list(procs):
            if p.is_alive():
                p.kill()
        raise
    finally:
        reap(procs)


def reap(procs) -> None:
    """Join every child; kill any that is still running. Never leaves a child behind."""
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
    assert not any(p.is_alive() for p in procs)


def assert_disjoint_holds(holds) -> None:
    """holds: (addr, size, t_alloc, t_free, core). While one object is held, no other may share a
    byte with it. t_alloc is read after malloc returned and t_free before free was called, on the
    system-wide monotonic clock, so two holds of the same bytes must be disjoint in time."""
    events = []
    for i, (_a, _s, t0, t1, _c) in enumerate(holds):
        events.append((t0, 1, i))
        events.append((t1, 0, i))  # at equal times, a free comes before an alloc
    events.sort()
    starts: list[int] = []  # sorted start addresses of held ranges
    by_start: dict[int, int] = {}
    for _t, kind, i in events:
        a, s, _t0, _t1, c = holds[i]
        if kind == 0:
            starts.pop(bisect.bisect_left(starts, a))
            del by_start[a]
            continue
        k = bisect.bisect_left(starts, a)
        if k < len(starts):
            assert starts[k] >= a + s, f"core {c} got {a:#x}+{s} while {holds[by_start[starts[k]]]} was held"
        if k > 0:
            j = by_start[starts[k - 1]]
            assert holds[j][0] + holds[j][1] <= a, f"core {c} got {a:#x}+{s} while {holds[j]} was held"
        starts.insert(k, a)
        by_start[a] = i


def lock_count(m) -> int:
    return len(m.locks(0).snapshot())


def assert_quiet(m, h) -> None:
    """Every core has released its caches: the heap must be consistent and empty."""
    h.release_caches()
    assert check(h, quiescent=True) == []
    s = read_memstats(m.arrays)
    assert s.HeapAlloc == 0 and s.HeapObjects == 0
    assert s.HeapIdle + s.HeapInuse == s.HeapSys
    assert all(m.locks(0).probe_free(i) for i in range(lock_count(m)))


# -- (a) many cores hammering the same size classes ----------------------------------------------


def hammer(core: int, machine, nops: int, seed: int, go) -> dict:
    h = machine.heap(core)
    rng = random.Random(seed * 1000 + core)
    go.wait(timeout=30)
    live: dict[int, tuple[int, int, int]] = {}  # addr -> (size, seq, t_alloc)
    holds = []
    seq = 0

    def release(addr: int) -> None:
        size, s, t0 = live.pop(addr)
        got = h.read(addr, 0, size)
        assert got == stamp(core, s, size), f"core {core}: object {addr:#x} ({size} B) changed under us"
        t1 = time.monotonic_ns()
        h.free(addr)
        holds.append((addr, size, t0, t1, core))

    for i in range(nops):
        # bursts: grow the live set, then shrink it, so batches move to and from mcentral
        p_free = 0.2 if (i // 250) % 2 == 0 else 0.8
        if live and (len(live) >= 300 or rng.random() < p_free):
            release(rng.choice(list(live)))
            continue
        size = rng.choice(SIZES)
        r = h.malloc(size)
        t0 = time.monotonic_ns()
        assert r.address not in live
        assert h.read(r.address, 0, size) == bytes(size), f"core {core}: {r.address:#x} not zeroed"
        seq += 1
        h.write(r.address, 0, stamp(core, seq, size))
        live[r.address] = (size, seq, t0)
        if rng.random() < 0.1:  # re-verify a random live object now and then
            a = rng.choice(list(live))
            sz, s, _ = live[a]
            assert h.read(a, 0, sz) == stamp(core, s, sz), f"core {core}: object {a:#x} changed under us"
    for a in list(live):
        release(a)
    h.release_caches()
    return {"holds": holds, "allocs": seq}


@pytest.mark.parametrize(
    "machine",
    [{"memory_bytes": 16 * MiB}, {"memory_bytes": 16 * MiB, "per_core_caches": False},
     {"memory_bytes": 16 * MiB, "global_lock": True}],
    indirect=True, ids=["caches", "no-caches", "global-lock"])
def test_hammer_same_size_classes(machine):
    ncores, nops = 4, 5000
    q, go = CTX.Queue(), CTX.Event()
    procs = {c: start(q, c, hammer, machine, nops, 1, go) for c in range(ncores)}
    with supervised(procs.values()):
        go.set()
        results = collect(q, procs, set(procs))
    assert all(p.exitcode == 0 for p in procs.values())
    holds = [x for r in results.values() for x in r["holds"]]
    assert len(holds) == sum(r["allocs"] for r in results.values()) > ncores * nops // 3
    assert len({h[4] for h in holds}) == ncores
    assert_disjoint_holds(holds)
    # some memory really was shared between cores over time (else the test proves little)
    owners: dict[int, set[int]] = {}
    for a, _s, _t0, _t1, c in holds:
        owners.setdefault(a, set()).add(c)
    assert any(len(cs) > 1 for cs in owners.values())
    assert_quiet(machine, machine.heap(0))
    s = read_memstats(machine.arrays)
    assert s.Mallocs == s.Frees == len(holds)
    assert sum(st.acquisitions for st in machine.locks(0).snapshot()) > 0
    cs = read_cache_stats(machine.arrays)
    assert all(c.flushes + c.central_direct > 0 for c in cs)  # every core gave objects back centrally


def test_disjoint_holds_checker_catches_overlap():
    ok = [(100, 16, 1, 5, 1), (100, 16, 6, 9, 2), (116, 8, 2, 8, 2)]
    assert_disjoint_holds(ok)
    with pytest.raises(AssertionError):
        assert_disjoint_holds([*ok, (110, 8, 3, 4, 3)])  # overlaps bytes of the first hold
    with pytest.raises(AssertionError):
        assert_disjoint_holds([(200, 8, 1, 10, 1), (200, 8, 5, 12, 2)])


# -- (b) cross-core frees -----------------------------------------------------------------------


def producer(core: int, machine, n: int, chan, credits, sizes) -> dict:
    """Allocate, stamp and hand over; at most `credits` objects are in flight at once."""
    h = machine.heap(core)
    rng = random.Random(core)
    for seq in range(n):
        assert credits.acquire(timeout=RESULT_TIMEOUT), "consumer stalled"
        size = rng.choice(sizes)
        r = h.malloc(size)
        h.write(r.address, 0, stamp(core, seq, size))
        chan.put((r.address, size, seq))
    chan.put(None)
    h.release_caches()
    chan.close()
    chan.join_thread()
    return {"sent": n}


def consumer(core: int, machine, producer_core: int, chan, credits, sizes) -> dict:
    """Verify and free the producer's objects; reuse what that puts in our cache."""
    h = machine.heap(core)
    rng = random.Random(core)
    freed = 0
    mine: list[tuple[int, int, int]] = []
    while True:
        item = chan.get(timeout=RESULT_TIMEOUT)
        if item is None:
            break
        addr, size, seq = item
        assert h.read(addr, 0, size) == stamp(producer_core, seq, size), f"{addr:#x} changed in flight"
        h.free(addr)
        credits.release()
        freed += 1
        if rng.random() < 0.5:  # objects migrate: what we just freed sits in our cache
            sz = rng.choice(sizes)
            r = h.malloc(sz)
            assert h.read(r.address, 0, sz) == bytes(sz)
            h.write(r.address, 0, stamp(core, freed, sz))
            mine.append((r.address, sz, freed))
        if len(mine) > 100:
            a, sz, s = mine.pop(rng.randrange(len(mine)))
            assert h.read(a, 0, sz) == stamp(core, s, sz)
            h.free(a)
    for a, sz, s in mine:
        assert h.read(a, 0, sz) == stamp(core, s, sz)
        h.free(a)
    h.release_caches()
    return {"freed": freed}


def run_pairs(machine, n: int, in_flight: int, sizes) -> dict:
    """Cores 0 -> 1 and 2 -> 3: each producer's objects are freed by its consumer."""
    q = CTX.Queue()
    chans = [CTX.Queue(), CTX.Queue()]
    credits = [CTX.Semaphore(in_flight), CTX.Semaphore(in_flight)]
    procs = {
        0: start(q, 0, producer, machine, n, chans[0], credits[0], sizes),
        1: start(q, 1, consumer, machine, 0, chans[0], credits[0], sizes),
        2: start(q, 2, producer, machine, n, chans[1], credits[1], sizes),
        3: start(q, 3, consumer, machine, 2, chans[1], credits[1], sizes),
    }
    with supervised(procs.values()):
        return collect(q, procs, set(procs))


@pytest.mark.parametrize("machine", [{"memory_bytes": 16 * MiB}, {"memory_bytes": 16 * MiB,
                                                                  "per_core_caches": False}],
                         indirect=True, ids=["caches", "no-caches"])
def test_cross_core_frees(machine):
    """Producers' objects freed on their consumers' cores. It failed about once in 15 runs of the
    suite under `-n 2` with "read: no object is allocated" for an object in flight: not the test
    but the tiny allocator, whose retired block could be freed by a stale remote free after its
    owner had reused the slot (tiny.py header; forced in test_tiny_block_not_freed_by_a_stale_last_free)."""
    n = 3000
    results = run_pairs(machine, n, in_flight=64, sizes=SIZES)
    assert results[1]["freed"] == results[3]["freed"] == n
    s = read_memstats(machine.arrays)
    assert s.Mallocs == s.Frees and s.TinyAllocs > 0 and s.LargeAllocs > 0
    assert_quiet(machine, machine.heap(0))
    # the frees of the producers' objects happened on the consumers' cores
    frees_by_core = machine.arrays.core_frees.sum(axis=1) + machine.arrays.core_stats[:, L.S_TINY_FREES]
    mallocs_by_core = machine.arrays.core_mallocs.sum(axis=1) + machine.arrays.core_stats[:, L.S_TINY_ALLOCS]
    assert frees_by_core[1] >= n and frees_by_core[3] >= n
    assert frees_by_core[0] == frees_by_core[2] == 0
    assert mallocs_by_core.sum() == frees_by_core.sum()


def test_remote_tiny_frees_race_the_owner_packing_its_block(machine):
    """The consumer frees objects of the block the producer is still packing (a CAS on both
    sides of the block's marks); a lost update would lose an object or free the block early."""
    n = 3000
    results = run_pairs(machine, n, in_flight=4, sizes=[1, 1, 2, 3, 4, 5, 8])
    assert results[1]["freed"] == results[3]["freed"] == n
    st = machine.arrays.core_stats
    assert st[[1, 3], L.S_TINY_BLOCK_FREES].sum() > 0  # the consumers freed blocks the producers retired
    assert_quiet(machine, machine.heap(0))


def block_producer(core: int, machine, rounds: int, chan, freeing) -> dict:
    """Per round, four 8-byte tiny objects: two fill a block that the third retires at once, the
    third and fourth fill the next block, which stays this core's current block. The next round
    starts the moment the consumer is about to free that block's last object, so that this core
    retires the block while the consumer frees it (the race tiny.py's header describes)."""
    h = machine.heap(core)
    for r in range(rounds):
        spins = 0
        while freeing.value < r:  # the consumer is at the last object of the previous round
            spins += 1
            if spins % 100 == 0:
                os.sched_yield()
        objs = [h.malloc(8).address for _ in range(4)]
        for i, a in enumerate(objs):
            h.write(a, 0, stamp(core, 4 * r + i, 8))
        chan.put((r, objs))
    chan.put(None)
    h.release_caches()
    chan.close()
    chan.join_thread()
    return {"rounds": rounds}


def block_consumer(core: int, machine, producer_core: int, chan, freeing) -> dict:
    h = machine.heap(core)
    rounds = 0
    while (item := chan.get(timeout=RESULT_TIMEOUT)) is not None:
        r, objs = item
        for i, a in enumerate(objs):
            got = h.read(a, 0, 8)
            assert got == stamp(producer_core, 4 * r + i, 8), f"round {r}: object {a:#x} changed in flight"
            if i == 3:
                freeing.value = r + 1  # the producer now retires this block as we free its last object
            h.free(a)
        rounds += 1
    h.release_caches()
    return {"rounds": rounds}


def preempt_at_random(pids: list[int], done: threading.Event) -> None:
    """Stop each process for about a millisecond at a random instruction, again and again, as a
    scheduler does to a process that has used its time slice (SIGSTOP, then SIGCONT)."""
    rng = random.Random(7)
    try:
        while not done.is_set():
            pid = rng.choice(pids)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                time.sleep(rng.uniform(0.0002, 0.002))
                os.kill(pid, signal.SIGCONT)
            time.sleep(rng.uniform(0, 0.001))
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("machine", [{"memory_bytes": 16 * MiB, "cores": 8}], indirect=True)
def test_tiny_block_freed_once_when_its_last_free_is_preempted(machine):
    """Four producer/consumer pairs race, thousands of times, a producer retiring its current tiny
    block against its consumer freeing that block's last object, while the consumers are stopped
    for a millisecond at random instructions (preempt_at_random). When a consumer stops inside
    that free, after its CAS of the block's marks, the producer may free the block, take the same
    slot back as its next block, fill and retire it; before the fix the waking consumer's CAS of
    obj_size RETIRED -> 0 then freed that block with live objects in it (an ABA), and a
    consumer's read of an object in flight failed with "no object is allocated" or its stamp had
    changed."""
    rounds = 3000
    q = CTX.Queue()
    procs = {}
    for p in range(0, 8, 2):
        chan, freeing = CTX.Queue(), CTX.RawValue("q", 0)
        procs[p] = start(q, p, block_producer, machine, rounds, chan, freeing)
        procs[p + 1] = start(q, p + 1, block_consumer, machine, p, chan, freeing)
    done = threading.Event()
    stopper = threading.Thread(target=preempt_at_random, args=([procs[c].pid for c in (1, 3, 5, 7)], done))
    with supervised(procs.values()):
        stopper.start()
        try:
            results = collect(q, procs, set(procs))
        finally:
            done.set()
            stopper.join(10)
    assert all(results[c]["rounds"] == rounds for c in (1, 3, 5, 7))
    st = machine.arrays.core_stats
    assert st[[1, 3, 5, 7], L.S_TINY_BLOCK_FREES].sum() > 0  # consumers freed retired blocks
    assert st[[0, 2, 4, 6], L.S_TINY_BLOCK_FREES].sum() > 0  # and producers blocks emptied before retiring
    assert_quiet(machine, machine.heap(0))


def test_tiny_block_not_freed_by_a_stale_last_free(machine):
    """The interleaving the stress test above waits for, forced: core 1's free of the last object
    of core 0's current tiny block is held right after its CAS of the block's marks (as the
    scheduler may preempt it there), while core 0 retires that block, reuses the slot as its next
    block, places an object in it and retires it too. Core 1 then finishes its free, which must
    not free the new block under its live object. Threads in one process stand in for the two
    cores' processes; the pause is a trace hook on the CAS's return, not a change to the code."""
    owner, remote = machine.heap(0), machine.heap(1)
    x = owner.malloc(8).address  # core 0's new block: x at offset 0
    held, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def pause_after_marks_cas(frame, event, arg):
        if event == "return" and arg is True and frame.f_locals.get("self") is remote.mark_words \
                and not held.is_set():
            held.set()
            assert go.wait(10), "the owner's side never finished"
        return pause_after_marks_cas

    def tracer(frame, event, arg):
        return pause_after_marks_cas if frame.f_code.co_name == "cas" else None

    def remote_free() -> None:
        sys.settrace(tracer)
        try:
            remote.free(x)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            sys.settrace(None)

    t = threading.Thread(target=remote_free)
    t.start()
    try:
        assert held.wait(10), "core 1's free never reached the marks CAS"
        y = owner.malloc(12).address  # does not fit: retires the (now empty) block and starts one
        assert y == x, "the block's slot was not reused: the interleaving was not exercised"
        owner.write(y, 0, stamp(0, 1, 12))
        z = owner.malloc(8).address  # does not fit either: retires the block that holds y
    finally:
        go.set()
        t.join(10)
    assert not t.is_alive() and not errors, errors
    assert owner.read(y, 0, 12) == stamp(0, 1, 12), "the block holding y was freed under it"
    w = remote.malloc(16).address  # were the block freed, core 1's cache would hand it out now
    assert w != y
    for a in (y, z, w):
        owner.free(a)
    remote.release_caches()
    assert_quiet(machine, owner)


# -- (c) two cores free the same objects at once --------------------------------------------------


def double_freer(core: int, machine, addrs, lockstep, barrier) -> dict:
    """Free every address. With `lockstep` (a shared array of per-core progress), meet the other
    core before each free by spinning, so both try the same object within a microsecond."""
    h = machine.heap(core)
    order = list(addrs)
    if lockstep is None:
        random.Random(core).shuffle(order)
    other = 3 - core
    barrier.wait(timeout=30)
    won, lost = [], 0
    for i, a in enumerate(order, start=1):
        if lockstep is not None:
            lockstep[core] = i
            spins = 0
            while lockstep[other] < i:
                spins += 1
                if spins % 1000 == 0:
                    os.sched_yield()  # the other core may not be running
        try:
            h.free(a)
            won.append(a)
        except FailedPrecondition:
            lost += 1
    h.release_caches()
    return {"won": won, "lost": lost}


@pytest.mark.parametrize("machine", [{"memory_bytes": 16 * MiB}, {"memory_bytes": 16 * MiB, "per_core_caches": False}],
                         indirect=True, ids=["caches", "no-caches"])
def test_concurrent_double_free(machine):
    parent = machine.heap(0)
    rng = random.Random(5)
    q = CTX.Queue()
    total = 0
    for _round in range(3):
        addrs = [parent.malloc(rng.choice(SIZES)).address for _ in range(2400)]
        total += len(addrs)
        parent.release_caches()
        # each core in its own random order, then both in the same order in lockstep
        for chunk, lockstep in ((addrs[:600], None), (addrs[600:], CTX.RawArray("q", 3))):
            barrier = CTX.Barrier(2)
            procs = {c: start(q, c, double_freer, machine, chunk, lockstep, barrier) for c in (1, 2)}
            with supervised(procs.values()):
                results = collect(q, procs, {1, 2})
            won1, won2 = set(results[1]["won"]), set(results[2]["won"])
            assert not won1 & won2, f"{len(won1 & won2)} objects freed twice (lockstep={lockstep is not None})"
            assert won1 | won2 == set(chunk)  # and every object was freed once
            assert results[1]["lost"] + results[2]["lost"] == len(chunk)
        assert_quiet(machine, parent)
    bad = machine.arrays.core_stats[:, L.S_BAD_FREES].sum()
    assert bad == total  # every losing free was counted as a bad free


# -- (d) a core killed mid-work -----------------------------------------------------------------


def worker_until_stopped(core: int, machine, running, stop, sizes) -> dict:
    """Allocate and free in a loop until told to stop, then free everything and release."""
    h = machine.heap(core)
    rng = random.Random(core * 7919 + os.getpid())
    live: list[tuple[int, int, int]] = []
    seq = 0
    while not stop.is_set():
        for _ in range(50):
            if live and (len(live) > 64 or rng.random() < 0.4):
                a, sz, s = live.pop(rng.randrange(len(live)))
                assert h.read(a, 0, sz) == stamp(core, s, sz)
                h.free(a)
            else:
                sz = rng.choice(sizes)
                seq += 1
                a = h.malloc(sz).address
                h.write(a, 0, stamp(core, seq, sz))
                live.append((a, sz, seq))
        running.set()
    for a, sz, s in live:
        assert h.read(a, 0, sz) == stamp(core, s, sz)
        h.free(a)
    h.release_caches()
    return {"ops": seq}


KILL_ROUNDS = 6
KILL_SIZES = [1, 5, 8, 13, 16, 24, 64, 256, 1000, 2048, 4000, 9000, 32768, 40000, 100_000]


@pytest.mark.parametrize(
    "machine",
    [{"memory_bytes": 16 * MiB}, {"memory_bytes": 16 * MiB, "per_core_caches": False},
     {"memory_bytes": 16 * MiB, "global_lock": True}],
    indirect=True, ids=["caches", "no-caches", "global-lock"])
def test_sigkill_mid_work_then_recover(machine):
    parent = machine.heap(0)
    q = CTX.Queue()
    stop = CTX.Event()
    rng = random.Random(42)
    survivors: dict[int, mp.Process] = {}
    children: list[mp.Process] = []
    with supervised(children):
        for c in (2, 3):
            ev = CTX.Event()
            survivors[c] = start(q, c, worker_until_stopped, machine, ev, stop, KILL_SIZES)
            children.append(survivors[c])
            assert ev.wait(timeout=30)
        for _round in range(KILL_ROUNDS):  # kill core 1 again and again, each time mid-work
            running = CTX.Event()
            victim = start(q, 1, worker_until_stopped, machine, running, CTX.Event(), KILL_SIZES)
            children.append(victim)
            assert running.wait(timeout=30), "victim never got going"
            time.sleep(rng.uniform(0, 0.05))  # land on an arbitrary instruction
            os.kill(victim.pid, signal.SIGKILL)
            victim.join(timeout=10)
            assert victim.exitcode == -signal.SIGKILL
            # recover with the other cores still running
            stats = recover(parent, 1)
            assert set(stats) == {"torn_pages", "reclaimed_objects", "tiny_blocks_freed"}
            r = parent.malloc(100)
            parent.write(r.address, 0, b"z" * 100)
            assert parent.read(r.address, 0, 100) == b"z" * 100
            parent.free(r.address)
        stop.set()
        collect(q, survivors, {2, 3})
    parent.release_caches()
    problems = check(parent, quiescent=True)
    assert problems == []
    assert all(machine.locks(0).probe_free(i) for i in range(lock_count(machine)))
    # the heap still serves every kind of allocation, from the parent and from a new core 1
    for sz in KILL_SIZES:
        r = parent.malloc(sz)
        assert parent.read(r.address, 0, sz) == bytes(sz)
        parent.write(r.address, 0, stamp(0, sz, sz))
        assert parent.read(r.address, 0, sz) == stamp(0, sz, sz)
        parent.free(r.address)
    stop2, ev = CTX.Event(), CTX.Event()
    p = start(q, 1, worker_until_stopped, machine, ev, stop2, KILL_SIZES)
    with supervised([p]):
        assert ev.wait(timeout=30)
        stop2.set()
        collect(q, {1: p}, {1})
    parent.release_caches()
    assert check(parent, quiescent=True) == []
    s = read_memstats(machine.arrays)
    assert s.HeapIdle + s.HeapInuse == s.HeapSys
    assert int(machine.arrays.heap_gauges[L.G_RECOVERIES]) == KILL_ROUNDS


# -- (d') a core killed at a chosen instruction ------------------------------------------------------


def _block(reached) -> None:
    reached.set()
    time.sleep(600)  # until SIGKILL
    raise AssertionError("not killed")


def stop_inside(core: int, machine, where: str, reached) -> dict:
    """Run one operation that blocks (and is killed) at `where`."""
    h = machine.heap(core)
    c64 = h.centrals[h.t.class_of(64)]
    if where == "malloc before publish":  # slot ALLOCATED, size not yet written
        h._zero = lambda addr, n: _block(reached)
        h.malloc(64)
    elif where == "tiny block before adopt":
        h._zero = lambda addr, n: _block(reached)
        h.malloc(1)
    elif where == "large before zeroing":
        h._zero = lambda addr, n: _block(reached)
        h.malloc(40000)
    elif where == "free after winning the CAS":  # size 0, slot not yet cached
        a = h.malloc(64).address
        real = h.obj_words.cas

        def cas(i, expected, desired):
            ok = real(i, expected, desired)
            if ok and desired == 0:
                _block(reached)
            return ok

        h.obj_words.cas = cas
        h.free(a)
    elif where == "tiny free after emptying a retired block":  # won the block, not yet claimed
        x = h.malloc(8).address
        h.malloc(12)  # does not fit: x's block is retired with x in it
        real = h.mark_words.cas

        def cas(i, expected, desired):
            ok = real(i, expected, desired)
            if ok and desired & 0xFFFF == 0:  # no object starts in the block any more
                _block(reached)
            return ok

        h.mark_words.cas = cas
        h.free(x)
    elif where == "refill holding the class lock":
        real = c64.remove_range
        c64.remove_range = lambda n, state: (real(n, state), _block(reached))[0]
        h.malloc(64)
    elif where == "span grow holding class and heap locks":
        real = h.mheap.alloc_pages
        h.mheap.alloc_pages = lambda *args, **kw: (real(*args, **kw), _block(reached))[0]
        h.malloc(64)
    elif where == "flush holding the class lock":
        addrs = [h.malloc(64).address for _ in range(100)]
        real = c64.insert_range
        c64.insert_range = lambda slots: (real(slots), _block(reached))[0]
        for a in addrs:
            h.free(a)
    raise AssertionError(f"never stopped at {where!r}")


LEAKED_AT = {
    "large before zeroing": 5 * 8192,  # a large object its client never saw (recovery cannot tell)
    "flush holding the class lock": 8192,  # the objects it had not freed yet are its clients'
    "tiny free after emptying a retired block": 8192,  # the span of its live 12-byte object's block
}
LIVE_AT = {  # (HeapObjects, HeapAlloc) left at the end: objects the dead core's client still owns
    # 100 allocated through refills of 32 (28 left cached); the flush fires at the 37th free
    "flush holding the class lock": (63, 63 * 64),
    # the block of its 12-byte object, not the won block; and the freed 8-byte object still counts,
    # as the core died inside its free before counting it (recovery cannot tell which tiny free it was)
    "tiny free after emptying a retired block": (2, 16),
}
HELD_AT = {
    "refill holding the class lock": {"mcentral/64B"},
    "span grow holding class and heap locks": {"mcentral/64B", "mheap"},
    "flush holding the class lock": {"mcentral/64B"},
}


@pytest.mark.parametrize("where", [
    "malloc before publish", "tiny block before adopt", "large before zeroing", "free after winning the CAS",
    "tiny free after emptying a retired block",
    "refill holding the class lock", "span grow holding class and heap locks", "flush holding the class lock",
])
def test_sigkill_at_a_chosen_instruction(machine, where):
    parent = machine.heap(0)
    keep = [parent.malloc(s).address for s in (3, 100, 1000, 40000)]  # other cores' objects survive
    for i, a in enumerate(keep):
        parent.write(a, 0, stamp(0, i, 3))
    parent.release_caches()
    q, reached = CTX.Queue(), CTX.Event()
    p = start(q, 1, stop_inside, machine, where, reached)
    with supervised([p]):
        if not reached.wait(timeout=30):
            collect(q, {1: p}, {1})  # reports the child's error
            pytest.fail("child never reached the kill point")
        names = [s.name for s in machine.locks(0).snapshot()]
        held = {n for i, n in enumerate(names) if not machine.locks(0).probe_free(i)}
        assert held == HELD_AT.get(where, set())
        os.kill(p.pid, signal.SIGKILL)
        p.join(timeout=10)
        assert p.exitcode == -signal.SIGKILL
    assert all(machine.locks(0).probe_free(i) for i in range(lock_count(machine)))  # the kernel let go
    recover(parent, 1)
    assert check(parent, quiescent=True) == []
    for i, a in enumerate(keep):
        assert parent.read(a, 0, 3) == stamp(0, i, 3)
        parent.free(a)
    # the heap serves every path again, and a restarted core 1 works
    for sz in (1, 8, 64, 1000, 40000):
        rs = [parent.malloc(sz) for _ in range(200 if sz < 40000 else 3)]
        for r in rs:
            assert parent.read(r.address, 0, sz) == bytes(sz)
            parent.free(r.address)
    stop, ev = CTX.Event(), CTX.Event()
    p = start(q, 1, worker_until_stopped, machine, ev, stop, KILL_SIZES)
    with supervised([p]):
        assert ev.wait(timeout=30)
        stop.set()
        collect(q, {1: p}, {1})
    parent.release_caches()
    assert check(parent, quiescent=True) == []
    # nothing is left in use but what the dead core had handed out or half built for itself
    s = read_memstats(machine.arrays)
    assert s.HeapInuse == LEAKED_AT.get(where, 0)
    # and the books balance exactly: every in-flight malloc or free was counted once or undone
    assert (s.HeapObjects, s.HeapAlloc) == LIVE_AT.get(where, (0, 0))
