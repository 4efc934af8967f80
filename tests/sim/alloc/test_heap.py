"""The heap as one core sees it: malloc/free/read/write, errors, tiny blocks, MemStats,
the lock-free mcache path, the scavenger, and a model-based random test. No gRPC."""

from __future__ import annotations

import itertools
import os
import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, multiple, rule

from memsim.sim.alloc import layout as L
from memsim.sim.alloc.memstats import read_cache_stats, read_memstats
from memsim.sim.alloc.recovery import check
from memsim.sim.alloc.scavenger import scavenge_once
from memsim.sim.alloc.sizeclasses import PAGE_SIZE, table
from memsim.sim.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange, ResourceExhausted
from memsim.sim.system import Machine, MachineConfig

MiB = 1 << 20
T = table()


def pattern(n: int, seed: int) -> bytes:
    return bytes((seed * 31 + i * 7 + 1) % 251 + 1 for i in range(n))  # never zero


def assert_identities(m: Machine) -> None:
    s = read_memstats(m.arrays)
    assert s.HeapIdle + s.HeapInuse == s.HeapSys
    assert 0 <= s.HeapAlloc <= s.HeapInuse
    assert s.HeapReleased <= s.HeapIdle
    assert s.Mallocs - s.Frees == s.HeapObjects


def assert_empty(m: Machine, h) -> None:
    h.release_caches()
    s = read_memstats(m.arrays)
    assert s.HeapAlloc == 0
    assert s.HeapObjects == 0
    assert s.HeapInuse == 0  # every span went back to the page heap
    assert check(h, quiescent=True) == []


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 15, 16, 17, 100, 1000, 4097, 32768, 32769, 40000, 200_000])
def test_round_trip(machine, size):
    h = machine.heap(0)
    r = h.malloc(size)
    assert r.size == size and r.usable >= size
    if size < 16:
        assert (r.layer, r.usable) in {("tiny", size), ("mheap", size)}
    elif size <= 32768:
        assert r.size_class == T.class_of(size) and r.usable == T.size_of(r.size_class)
    else:
        assert r.size_class == 0 and r.layer == "mheap" and r.usable == -(-size // PAGE_SIZE) * PAGE_SIZE
    data = pattern(size, size)
    assert h.read(r.address, 0, size) == bytes(size)
    h.write(r.address, 0, data)
    assert h.read(r.address, 0, size) == data
    assert h.read(r.address, size // 2, size - size // 2) == data[size // 2:]
    h.write(r.address, size - 1, b"\x00")
    assert h.read(r.address, size - 1, 1) == b"\x00"
    assert_identities(machine)
    h.free(r.address)
    with pytest.raises(NotFound):
        h.read(r.address, 0, 1)
    assert_empty(machine, h)


def test_distinct_live_objects_do_not_overlap(machine):
    h = machine.heap(0)
    rng = random.Random(1)
    live = []
    for i in range(400):
        size = rng.choice([1, 3, 8, 12, 16, 24, 100, 700, 5000, 33000])
        r = h.malloc(size)
        h.write(r.address, 0, pattern(size, i))
        live.append((r.address, size, i))
    spans = sorted((a, a + s) for a, s, _ in live)
    for (_, e1), (b2, _) in itertools.pairwise(spans):
        assert e1 <= b2
    for a, s, i in live:
        assert h.read(a, 0, s) == pattern(s, i)
        h.free(a)
    assert_empty(machine, h)


@pytest.mark.parametrize("size", [48, 5000, 40000])
def test_memory_is_zeroed_on_allocation(machine, size):
    h = machine.heap(0)
    first = h.malloc(size)
    h.write(first.address, 0, b"\xff" * size)
    h.free(first.address)
    for _ in range(5000):  # the same class until the same address comes back
        r = h.malloc(size)
        if r.address == first.address:
            break
    else:
        pytest.fail("the freed address never came back")
    assert h.read(r.address, 0, size) == bytes(size)


def test_tiny_memory_is_zeroed_on_allocation(machine):
    h = machine.heap(0)
    addrs = []
    for _ in range(64):
        r = h.malloc(8)
        h.write(r.address, 0, b"\xee" * 8)
        addrs.append(r.address)
    for a in addrs:
        h.free(a)
    h.release_caches()
    seen = set(addrs)
    for _ in range(2000):
        r = h.malloc(8)
        assert h.read(r.address, 0, 8) == bytes(8)
        if r.address in seen:
            return
    pytest.fail("no tiny address came back")


# -- bounds and bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 12, 16, 100, 32768, 40000])
def test_bounds_are_the_requested_size(machine, size):
    h = machine.heap(0)
    a = h.malloc(size).address
    assert h.read(a, size, 0) == b""
    h.write(a, size, b"")
    assert h.read(a, size - 1, 1) == b"\x00"
    h.write(a, size - 1, b"x")
    h.write(a, 0, bytes(size))
    with pytest.raises(OutOfRange, match="past its end"):
        h.read(a, size, 1)
    with pytest.raises(OutOfRange):
        h.read(a, 0, size + 1)
    with pytest.raises(OutOfRange):
        h.write(a, size, b"x")
    with pytest.raises(OutOfRange):
        h.write(a, 0, bytes(size + 1))
    with pytest.raises(InvalidArgument):
        h.read(a, -1, 1)
    assert h.read(a, size - 1, 1) == b"\x00"


def test_double_free(machine):
    h = machine.heap(0)
    for size in (5, 64, 40000):
        a = h.malloc(size).address
        h.free(a)
        with pytest.raises(FailedPrecondition):
            h.free(a)
    assert read_cache_stats(machine.arrays)[0].bad_frees == 3
    assert_empty(machine, h)


def test_free_of_interior_pointer(machine):
    h = machine.heap(0)
    small = h.malloc(64).address
    large = h.malloc(40000).address
    t1 = h.malloc(4).address
    with pytest.raises(FailedPrecondition, match="points"):
        h.free(small + 8)
    with pytest.raises(FailedPrecondition, match="points into the large object"):
        h.free(large + PAGE_SIZE)
    with pytest.raises(FailedPrecondition):
        h.free(large + 16)
    with pytest.raises(FailedPrecondition):
        h.free(t1 + 1)
    with pytest.raises(NotFound):
        h.read(small + 8, 0, 1)
    with pytest.raises(NotFound):
        h.read(large + 8, 0, 1)
    # the objects are untouched by the failed frees
    for a in (small, large, t1):
        h.free(a)
    assert_empty(machine, h)


def test_free_and_access_outside_the_heap(machine):
    h = machine.heap(0)
    a = h.malloc(64).address
    end = machine.config.memory_bytes
    for bad in (0, 0x1234, h.base - 8, h.base + end, h.base + end + 4096, 1 << 62):
        with pytest.raises(FailedPrecondition):
            h.free(bad)
        with pytest.raises(OutOfRange, match="segmentation fault"):
            h.read(bad, 0, 1)
        with pytest.raises(OutOfRange):
            h.write(bad, 0, b"x")
    # a page inside the reserved arena that no span owns
    used = int(machine.arrays.heap_gauges[L.G_ARENA_PAGES])
    free_page_addr = h.base + (used - 1) * PAGE_SIZE
    with pytest.raises(FailedPrecondition, match="page is free"):
        h.free(free_page_addr)
    with pytest.raises(NotFound):
        h.read(free_page_addr, 0, 1)
    h.free(a)
    assert_empty(machine, h)


@pytest.mark.parametrize("size", [5, 64, 40000])
def test_read_and_write_of_a_freed_object(machine, size):
    h = machine.heap(0)
    keep = h.malloc(size).address  # keeps the span (or tiny block) alive
    a = h.malloc(size).address
    h.free(a)
    with pytest.raises(NotFound):
        h.read(a, 0, 1)
    with pytest.raises(NotFound):
        h.write(a, 0, b"x")
    h.free(keep)


@pytest.mark.parametrize("bad", [0, -1, -4096, 1.5, "8", None])
def test_malloc_bad_size(machine, bad):
    h = machine.heap(0)
    with pytest.raises(InvalidArgument):
        h.malloc(bad)
    assert check(h, quiescent=True) == []


def test_malloc_larger_than_the_machine(machine):
    h = machine.heap(0)
    with pytest.raises(InvalidArgument, match=str(machine.config.memory_bytes)):
        h.malloc(machine.config.memory_bytes + 1)


def test_exhaustion_then_recovery(machine):
    h = machine.heap(0)
    total = machine.config.memory_bytes
    live = []
    errors = []
    counts = []
    for size in (3 * MiB, 100_000, 32768, 64, 8):  # fill with large, then small, then tiny objects
        n = 0
        while True:
            try:
                live.append(h.malloc(size).address)
                n += 1
            except ResourceExhausted as e:
                errors.append(str(e))
                counts.append(n)
                break
    assert counts[:4] == [2, 19, 2, 128]  # each size filled what the one before left
    assert "allocating 3145728 bytes" in errors[0] and "6291456 bytes in use" in errors[0]
    for msg in errors:
        assert f"machine's {total} bytes" in msg  # names the machine's size
    assert read_memstats(machine.arrays).HeapSys == total
    assert_identities(machine)
    assert check(h, quiescent=False) == []
    # free a third, the heap serves again
    rng = random.Random(3)
    rng.shuffle(live)
    for a in live[: len(live) // 3]:
        h.free(a)
    del live[: len(live) // 3]
    r = h.malloc(64)
    h.write(r.address, 0, b"y" * 64)
    live.append(r.address)
    for a in live:
        h.free(a)
    assert_empty(machine, h)
    # and the whole memory can be had as one object again
    big = h.malloc(total)
    assert h.read(big.address, total - 4, 4) == bytes(4)
    with pytest.raises(ResourceExhausted, match=str(total)):
        h.malloc(16)
    h.free(big.address)
    assert_empty(machine, h)


# -- tiny objects ------------------------------------------------------------------------------


@pytest.mark.parametrize(("sizes", "offsets"), [
    ((1, 1, 2, 4, 8), (0, 1, 2, 4, 8)),
    ((4, 8), (0, 8)),  # 8-byte sizes align to 8
    ((1, 12), (0, 4)),  # multiples of 4 align to 4
    ((3, 6), (0, 4)),  # even sizes align to 2
    ((5, 3, 7), (0, 5, 8)),  # odd sizes are not aligned
    ((2, 2, 1, 9), (0, 2, 4, 5)),
])
def test_tiny_offsets_follow_go_alignment(machine, sizes, offsets):
    h = machine.heap(0)
    h.malloc(15), h.malloc(1)  # fill a block: the sequence starts a fresh one
    addrs = [h.malloc(s).address for s in sizes]
    block = addrs[0] - addrs[0] % 16
    assert tuple(a - block for a in addrs) == offsets
    h.release_caches()
    assert check(h, quiescent=True) == []


def test_tiny_packing_and_alignment(machine):
    h = machine.heap(0)
    rs = [h.malloc(s) for s in (1, 1, 2, 4, 8)]
    block = rs[0].address - rs[0].address % 16
    assert [r.address - block for r in rs] == [0, 1, 2, 4, 8]
    assert all(r.layer == "tiny" for r in rs[1:])
    assert all(r.size_class == T.class_of(16) for r in rs)
    # 3 B aligns to 1, 6 B to 2, 12 B to 4 (Go's tiny alignment) in a fresh block
    h.release_caches()
    a3, a6 = h.malloc(3).address, h.malloc(6).address
    b2 = a3 - a3 % 16
    assert (a3 - b2, a6 - b2) == (0, 4)
    a12 = h.malloc(12).address  # does not fit after 10 bytes: a new block
    assert a12 % 16 == 0 and a12 != b2
    s = read_memstats(machine.arrays)
    assert s.TinyAllocs == 8
    assert s.HeapAlloc == 3 * 16  # three blocks live
    for a in [r.address for r in rs] + [a3, a6, a12]:
        h.free(a)
    assert_empty(machine, h)


def test_tiny_bounds_come_from_the_marks(machine):
    h = machine.heap(0)
    a, b = h.malloc(3).address, h.malloc(2).address  # offsets 0 and 4
    h.write(a, 0, b"abc")
    h.write(b, 0, b"de")
    with pytest.raises(OutOfRange):
        h.write(a, 0, b"abcd")
    with pytest.raises(NotFound):
        h.read(a + 3, 0, 1)  # the alignment gap is no object
    assert h.read(a, 0, 3) == b"abc" and h.read(b, 0, 2) == b"de"
    h.free(a)
    assert h.read(b, 0, 2) == b"de"
    with pytest.raises(FailedPrecondition):
        h.free(a)
    h.free(b)
    assert_empty(machine, h)


@pytest.mark.parametrize("sizes", [(1, 15), (1,) * 16, (3, 5, 8), (3, 13)])
def test_tiny_object_ending_at_the_blocks_last_byte(machine, sizes):
    """An object that ends at byte 15 has no end mark (bit 31 is the block's RETIRED_MARK,
    tiny.py): its bounds, its free and its double free still come out right."""
    h = machine.heap(0)
    h.malloc(15), h.malloc(1)  # fill a block: the sequence starts a fresh one
    addrs = [h.malloc(n).address for n in sizes]
    assert (addrs[-1] + sizes[-1]) % 16 == 0  # the last one ends the block
    for i, (a, n) in enumerate(zip(addrs, sizes, strict=True)):
        h.write(a, 0, bytes([i + 1]) * n)
        with pytest.raises(OutOfRange):
            h.write(a, 0, bytes(n + 1))
    for i, (a, n) in enumerate(zip(addrs, sizes, strict=True)):
        assert h.read(a, 0, n) == bytes([i + 1]) * n
    h.free(addrs[-1])
    with pytest.raises(FailedPrecondition):
        h.free(addrs[-1])
    for i, (a, n) in enumerate(zip(addrs[:-1], sizes, strict=False)):
        assert h.read(a, 0, n) == bytes([i + 1]) * n
        h.free(a)
    h.release_caches()
    assert check(h, quiescent=True) == []
    s = read_memstats(machine.arrays)
    assert (s.HeapObjects, s.HeapAlloc) == (2, 16)  # only the fillers and their block are left


def test_freeing_every_object_of_a_retired_block_frees_the_block(machine):
    h = machine.heap(0)
    first = [h.malloc(s).address for s in (1, 1, 2, 4, 8)]  # fills the block exactly
    nxt = h.malloc(1).address  # retires the first block, opens another
    assert nxt // 16 != first[0] // 16
    assert read_memstats(machine.arrays).HeapAlloc == 32
    for a in first[:-1]:
        h.free(a)
    assert read_memstats(machine.arrays).HeapAlloc == 32  # still one live object in it
    h.free(first[-1])
    assert read_memstats(machine.arrays).HeapAlloc == 16  # the retired block came back
    assert machine.arrays.core_stats[0, L.S_TINY_BLOCK_FREES] == 1
    h.free(nxt)
    assert read_memstats(machine.arrays).HeapAlloc == 16  # the current block is still held
    assert_empty(machine, h)


# -- MemStats ------------------------------------------------------------------------------------


def test_memstats_identities(machine):
    h = machine.heap(0)
    rng = random.Random(7)
    live = []
    sizes = [1, 2, 5, 8, 13, 16, 24, 33, 64, 100, 500, 1024, 3000, 9000, 32768, 40000, 100_000]
    for i in range(1500):
        if live and rng.random() < 0.45:
            h.free(live.pop(rng.randrange(len(live))))
        else:
            live.append(h.malloc(rng.choice(sizes)).address)
        if i % 50 == 0:
            assert_identities(machine)
            s = read_memstats(machine.arrays)
            assert s.HeapObjects == len(live)
    s = read_memstats(machine.arrays)
    assert s.Mallocs - s.Frees == len(live)
    assert s.TotalAlloc >= s.HeapAlloc
    by_size_mallocs = sum(b.Mallocs for b in s.BySize)
    assert by_size_mallocs + s.TinyAllocs + s.LargeAllocs == s.Mallocs
    for a in live:
        h.free(a)
    assert_empty(machine, h)
    s = read_memstats(machine.arrays)
    assert s.Mallocs == s.Frees and s.HeapIdle == s.HeapSys


def test_heap_alloc_counts_class_sizes(machine):
    h = machine.heap(0)
    a = h.malloc(17).address  # class 24
    b = h.malloc(33000).address  # 5 pages
    s = read_memstats(machine.arrays)
    assert s.HeapAlloc == 24 + 5 * PAGE_SIZE
    assert s.HeapInuse == 1 * PAGE_SIZE + 5 * PAGE_SIZE
    h.free(a)
    h.free(b)
    assert_empty(machine, h)


# -- locks and the per-core cache ----------------------------------------------------------------


def lock_acqs(m: Machine) -> dict[str, int]:
    return {s.name: s.acquisitions for s in m.locks(0).snapshot()}


def test_mcache_fast_path_takes_no_lock(machine):
    h = machine.heap(0)
    warm = h.malloc(64)  # refills a batch of 32 from mcentral
    h.free(warm.address)  # 32 objects cached
    before = lock_acqs(machine)
    hits0 = read_cache_stats(machine.arrays)[0].hits
    n = 20
    rs = [h.malloc(64) for _ in range(n)]
    assert all(r.layer == "mcache" and r.lock_waits == [] for r in rs)
    fs = [h.free(r.address) for r in rs]
    assert all(f.layer == "mcache" for f in fs)
    assert lock_acqs(machine) == before
    assert read_cache_stats(machine.arrays)[0].hits == hits0 + n
    # going past the cache's capacity does take the class lock
    more = [h.malloc(64) for _ in range(40)]
    assert lock_acqs(machine)["mcentral/64B"] > before["mcentral/64B"]
    for r in more:
        h.free(r.address)


def test_tiny_fast_path_takes_no_lock(machine):
    h = machine.heap(0)
    h.free(h.malloc(16).address)  # warm the 16 B class
    h.malloc(1)
    before = lock_acqs(machine)
    for _ in range(15):
        assert h.malloc(1).layer == "tiny"
    assert lock_acqs(machine) == before


@pytest.mark.parametrize("machine", [{"per_core_caches": False}], indirect=True)
def test_without_caches_every_alloc_and_free_takes_the_class_lock(machine):
    h = machine.heap(0)
    keep = h.malloc(64)  # the span exists and stays
    before = lock_acqs(machine)
    n = 25
    rs = [h.malloc(64) for _ in range(n)]
    assert all(r.layer == "mcentral" for r in rs)
    mid = lock_acqs(machine)
    assert mid["mcentral/64B"] - before["mcentral/64B"] == n
    assert mid["mheap"] == before["mheap"]
    for r in rs:
        assert h.free(r.address).layer == "mcentral"
    after = lock_acqs(machine)
    assert after["mcentral/64B"] - mid["mcentral/64B"] == n
    assert read_cache_stats(machine.arrays)[0].hits == 0
    assert h.mcache.cached() == 0
    h.free(keep.address)
    assert_empty(machine, h)


@pytest.mark.parametrize("machine", [{"global_lock": True}], indirect=True)
def test_global_lock_is_the_only_lock(machine):
    snap = machine.locks(0).snapshot()
    assert [s.name for s in snap if not s.name.startswith(("keyspace/", "vm/"))] == ["global"]  # the allocator's
    h = machine.heap(0)
    rs = [h.malloc(s) for s in (1, 64, 5000, 40000)]
    assert machine.locks(0).snapshot()[0].acquisitions > 0
    for r in rs:
        h.free(r.address)
    assert_empty(machine, h)
    assert machine.locks(0).probe_free(0)


def test_lock_table_names(machine):
    names = [s.name for s in machine.locks(0).snapshot()]
    assert names[0] == "mheap"
    assert names[1:len(T.classes) + 1] == [f"mcentral/{c.size}B" for c in T.classes]
    rest = names[len(T.classes) + 1:]
    assert rest[:66] == [f"keyspace/{s}" for s in range(64)] + ["keyspace/entries", "keyspace/policy"]
    assert rest[66:71] == ["vm/spaces", "vm/frames", "vm/lru", "vm/swap", "vm/ipt"]
    assert all(n.startswith("vm/space/") for n in rest[71:])
    assert all(machine.locks(0).probe_free(i) for i in range(len(names)))


# -- scavenger ----------------------------------------------------------------------------------


def test_scavenger_releases_and_recommits(machine):
    h = machine.heap(0)
    big = h.malloc(1 * MiB)
    smalls = [h.malloc(100) for _ in range(200)]
    h.write(big.address, 0, b"\xab" * MiB)
    for r in smalls:
        h.write(r.address, 0, b"\xcd" * 100)
    phys = h.source.physical(big.address)
    h.free(big.address)
    for r in smalls:
        h.free(r.address)
    h.release_caches()
    s0 = read_memstats(machine.arrays)
    frames0 = machine.memory.frames_by_owner()
    assert s0.HeapReleased == 0 and s0.HeapInuse == 0
    released = scavenge_once(h, idle_seconds=0)
    assert released > 0
    s1 = read_memstats(machine.arrays)
    assert s1.HeapReleased == released * PAGE_SIZE > 0
    assert s1.HeapSys == s0.HeapSys  # addresses stay reserved
    assert s1.HeapReleased <= s1.HeapIdle
    frames1 = machine.memory.frames_by_owner()
    assert frames1["free"] - frames0["free"] == released * PAGE_SIZE // machine.config.frame_size
    assert frames1["heap"] < frames0["heap"]
    assert not machine.phys.data[phys:phys + MiB].any()  # released frames are zeroed
    assert scavenge_once(h, idle_seconds=0) == 0  # nothing left to release
    again = h.malloc(1 * MiB)
    s2 = read_memstats(machine.arrays)
    assert s2.HeapReleased < s1.HeapReleased  # re-committed
    assert machine.memory.frames_by_owner()["heap"] > frames1["heap"]
    assert h.read(again.address, 0, MiB) == bytes(MiB)
    h.free(again.address)
    assert_empty(machine, h)


def test_scavenger_respects_idle_time(machine):
    h = machine.heap(0)
    h.free(h.malloc(1 * MiB).address)
    assert scavenge_once(h, idle_seconds=3600) == 0
    assert read_memstats(machine.arrays).HeapReleased == 0


# -- model-based random tests -------------------------------------------------------------------


def run_random_ops(h, m, seed: int, nops: int) -> None:
    rng = random.Random(seed)
    model: dict[int, bytearray] = {}
    freed: list[int] = []
    sizes = [1, 2, 3, 4, 7, 8, 9, 12, 15, 16, 17, 31, 48, 100, 255, 1000, 2049, 8192, 32768, 32769, 70000]
    for i in range(nops):
        op = rng.random()
        if not model or op < 0.35:
            size = rng.choice(sizes)
            r = h.malloc(size)
            assert r.address not in model
            for a, buf in model.items():
                assert r.address + size <= a or a + len(buf) <= r.address, "overlapping live objects"
            model[r.address] = bytearray(size)
            assert h.read(r.address, 0, size) == bytes(size)
        elif op < 0.6:
            a = rng.choice(list(model))
            h.free(a)
            del model[a]
            freed.append(a)
        elif op < 0.8:
            a = rng.choice(list(model))
            buf = model[a]
            off = rng.randrange(len(buf))
            data = rng.randbytes(rng.randint(0, len(buf) - off))
            h.write(a, off, data)
            buf[off:off + len(data)] = data
        elif op < 0.95:
            a = rng.choice(list(model))
            buf = model[a]
            off = rng.randrange(len(buf) + 1)
            n = rng.randint(0, len(buf) - off)
            assert h.read(a, off, n) == bytes(buf[off:off + n])
            with pytest.raises(OutOfRange):
                h.read(a, off, len(buf) - off + 1)
        elif freed:
            a = rng.choice(freed)
            if a not in model:
                with pytest.raises(FailedPrecondition):
                    h.free(a)
                with pytest.raises(NotFound):
                    h.read(a, 0, 1)
        if i % 250 == 0:
            assert_identities(m)
            assert read_memstats(m.arrays).HeapObjects == len(model)
            assert check(h, quiescent=False) == []
    for a, buf in model.items():
        assert h.read(a, 0, len(buf)) == bytes(buf)
    for a in list(model):
        h.free(a)
    assert_empty(m, h)


@pytest.mark.parametrize(
    "machine", [{}, {"per_core_caches": False}, {"global_lock": True}], indirect=True)
def test_random_ops_against_a_dict_model(machine):
    run_random_ops(machine.heap(0), machine, seed=11, nops=3000)


class HeapModel(RuleBasedStateMachine):
    """Hypothesis drives the heap; a dict of address -> bytearray is the model."""

    live = Bundle("live")

    def __init__(self):
        super().__init__()
        self.m = Machine.create(MachineConfig(memory_bytes=4 * MiB, cores=1))
        self.h = self.m.heap(0)
        self.model: dict[int, bytearray] = {}
        self.dead: set[int] = set()

    @rule(target=live, size=st.one_of(st.integers(1, 15), st.integers(16, 4096),
                                       st.sampled_from([32768, 32769, 100_000, 1 * MiB])))
    def malloc(self, size):
        try:
            r = self.h.malloc(size)
        except ResourceExhausted as e:
            assert str(self.m.config.memory_bytes) in str(e)
            return multiple()
        for a, buf in self.model.items():
            assert r.address + size <= a or a + len(buf) <= r.address
        self.model[r.address] = bytearray(size)
        self.dead.discard(r.address)
        assert self.h.read(r.address, 0, size) == bytes(size)
        return r.address

    @rule(a=consumes(live))
    def free(self, a):
        self.h.free(a)
        del self.model[a]
        self.dead.add(a)

    @rule(a=live, data=st.data())
    def write(self, a, data):
        buf = self.model[a]
        off = data.draw(st.integers(0, len(buf)))
        payload = data.draw(st.binary(max_size=min(64, len(buf) - off)))
        self.h.write(a, off, payload)
        buf[off:off + len(payload)] = payload

    @rule(a=live, data=st.data())
    def read(self, a, data):
        buf = self.model[a]
        off = data.draw(st.integers(0, len(buf)))
        n = data.draw(st.integers(0, len(buf) - off))
        assert self.h.read(a, off, n) == bytes(buf[off:off + n])
        with pytest.raises(OutOfRange):
            self.h.read(a, off, len(buf) - off + 1)

    @rule(data=st.data())
    def free_dead(self, data):
        dead = sorted(self.dead - set(self.model))
        if not dead:
            return
        a = data.draw(st.sampled_from(dead))
        with pytest.raises(FailedPrecondition):
            self.h.free(a)
        with pytest.raises(NotFound):
            self.h.read(a, 0, 1)

    @invariant()
    def stats_agree(self):
        s = read_memstats(self.m.arrays)
        assert s.HeapObjects == len(self.model)
        assert s.HeapIdle + s.HeapInuse == s.HeapSys
        assert s.HeapAlloc <= s.HeapInuse

    def teardown(self):
        try:
            for a, buf in self.model.items():
                assert self.h.read(a, 0, len(buf)) == bytes(buf)
            for a in list(self.model):
                self.h.free(a)
            self.h.release_caches()
            assert read_memstats(self.m.arrays).HeapAlloc == 0
            assert check(self.h, quiescent=True) == []
        finally:
            self.m.destroy()


TestHeapModel = HeapModel.TestCase
TestHeapModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow])


# -- segments -----------------------------------------------------------------------------------


def test_destroy_leaves_nothing_in_dev_shm():
    m = Machine.create(MachineConfig(memory_bytes=2 * MiB, cores=2))
    try:
        names = m.segment_names
        assert len(names) == 2
        assert all(os.path.exists(f"/dev/shm/{n}") for n in names)
        h = m.heap(1)
        h.free(h.malloc(100).address)
    finally:
        m.destroy()
    assert not any(os.path.exists(f"/dev/shm/{n}") for n in names)
    m.destroy()  # idempotent
    assert not any(os.path.exists(f"/dev/shm/{n}") for n in names)


def test_bad_configs_are_rejected():
    for cfg in (MachineConfig(memory_bytes=1000), MachineConfig(memory_bytes=MiB + 4096),
                MachineConfig(cores=0), MachineConfig(cores=300), MachineConfig(frame_size=3000)):
        with pytest.raises(InvalidArgument):
            Machine.create(cfg)


def test_heap_of_a_core_that_does_not_exist(machine):
    with pytest.raises(InvalidArgument):
        machine.heap(machine.config.cores)
