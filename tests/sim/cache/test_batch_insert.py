"""The compiled SET of a new key (db_kernels.py's dbAdd over malloc_kernels.mcache_alloc).

- The same commands through the compiled path (with the Python path for what it leaves) and through
  the Python path alone leave two machines the same, array for array and byte for byte: entries,
  chains, used_memory, key counts, the allocator's slot states, owners, sizes, counters, the stocks
  (the mcache's stacks, the free-entry stack) and physical memory. Only the locks' own counters may
  differ (the kernel does not time a hold). A kernel that forgot one effect of the Python path (the
  key count, the class's zeroed tail, a counter) fails this.
- Processes inserting new keys and overwriting shared ones at once through both paths hand no entry
  or object out twice and tear no value: every key's value carries its key's stamp, every live
  entry's key and value objects are distinct allocated slots, the key count is the number of keys.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np

from memsim.sim.alloc import layout as L
from memsim.sim.alloc.sizeclasses import MAX_OBJECTS_PER_SPAN, PAGE_SIZE
from memsim.sim.cache.batch import PlainBatch
from memsim.sim.cache.commands import Commands
from memsim.sim.cache.db import key_hash
from memsim.sim.cache.layout import K_KEYS
from memsim.sim.machine.locks import WordLock
from memsim.sim.system import Machine, MachineConfig
from tests.sim.cache.test_batch import CTX, report, resp
from tests.sim.cache.test_keyspace import run_children

MiB = 1 << 20
NOW_MS = 1_700_000_000_000
# what two runs of the same commands may leave different: the locks' hold times (the kernel times no hold)
# and the wall-clock time a span's pages were freed at (the scavenger's age)
UNEQUAL = {"lock_stats", "page_freed_at"}


def drive(pb: PlainBatch, cmds: Commands, command: list[bytes]) -> tuple[bytes, bool]:
    """One command as the RESP server runs it: the kernel first, the Python path for what it declines.
    Returns (the reply, whether the kernel ran it)."""
    data = resp(*command)
    _, replies, done, _ = pb.run(data, 0, 1 << 20, False)
    if done:
        return replies, True
    r = cmds.execute(command)
    return (b"+OK\r\n" if r == "OK" else b"$-1\r\n" if r is None else b"$%d\r\n%s\r\n" % (len(r), r)), False


def program(seed: int, n: int) -> list[list[bytes]]:
    """New keys of every size around the tiny and small classes' edges, overwrites of the same and of
    another length, GETs: what a cache's fill and steady state send."""
    rng = random.Random(seed)
    keys: list[bytes] = []
    lens: dict[bytes, int] = {}
    out: list[list[bytes]] = []
    for i in range(n):
        r = rng.random()
        if r < 0.5 or not keys:
            key = b"k%d:" % i + b"x" * rng.choice((0, 3, 12, 13, 20, 40, 100))
            vlen = rng.choice((1, 15, 16, 17, 32, 33, 100, 1000, 5000, 32768, 40000))
            keys.append(key)
        else:
            key = rng.choice(keys)
            vlen = lens[key] if r < 0.8 else rng.choice((16, 32, 64))
        lens[key] = vlen
        out.append([b"SET", key, bytes([i % 251]) * vlen])
        if rng.random() < 0.3:
            out.append([b"GET", rng.choice(keys)])
    return out


def test_both_paths_leave_the_machine_byte_for_byte_the_same():
    config = MachineConfig(memory_bytes=32 * MiB, cores=2, max_keys=1 << 12)
    cmds_list = program(7, 1500)
    with Machine.create(config) as fast, Machine.create(config) as slow:
        ks_f, ks_s = fast.keyspace(fast.heap(0)), slow.keyspace(slow.heap(0))
        ks_f.clock = ks_s.clock = lambda: NOW_MS
        pb, cf, cs = PlainBatch(ks_f), Commands(ks_f), Commands(ks_s)
        assert pb.enabled and pb.usable()
        inserted, seen = 0, set()
        for c in cmds_list:
            new = c[0] == b"SET" and c[1] not in seen
            seen.add(c[1])
            got, ran = drive(pb, cf, c)
            r = cs.execute(c)
            assert got == (b"+OK\r\n" if r == "OK" else b"$-1\r\n" if r is None else b"$%d\r\n%s\r\n" % (len(r), r))
            inserted += ran and new
        assert inserted > 200  # the compiled insert ran, not only its fallbacks
        differ = [name for name, arr in fast.meta.arrays.items()
                  if name not in UNEQUAL and not np.array_equal(arr, slow.meta.arrays[name])]
        assert differ == []
        assert bytes(fast.phys.data) == bytes(slow.phys.data)
        hf, hs = ks_f.heap.mcache, ks_s.heap.mcache
        assert np.array_equal(hf.count, hs.count)
        for cls in np.flatnonzero(hf.count):
            assert np.array_equal(hf.slots[cls, :hf.count[cls]], hs.slots[cls, :hs.count[cls]])
        top = int(ks_f.entries_top[0])
        assert top == int(ks_s.entries_top[0]) and np.array_equal(ks_f.entries[:top], ks_s.entries[:top])
        ks_f.heap.release_caches()
        ks_s.heap.release_caches()


HOT_BUCKETS = 4  # every key of the concurrent test falls in one of these: inserts race for the same chain heads
VALUE_BYTES = 32


def hot_keys(prefix: bytes, n: int, mask: int) -> list[bytes]:
    """n keys of at least 16 bytes (the small classes' path, not the tiny allocator's) in HOT_BUCKETS buckets."""
    out, i = [], 0
    while len(out) < n:
        k = prefix + b":%010d" % i
        if key_hash(k) & mask < HOT_BUCKETS:
            out.append(k)
        i += 1
    return out


def stamp(key: bytes, writer: int) -> bytes:
    unit = hashlib.blake2b(key, digest_size=8).digest() + writer.to_bytes(8, "little")
    return unit * (VALUE_BYTES // len(unit))


def inserter(machine: Machine, core: int, own: list[bytes], shared: list[bytes], locked: bool, start, q) -> None:
    problems: list[str] = []
    try:
        ks = machine.keyspace(machine.heap(core))
        pb, cmds = PlainBatch(ks), Commands(ks)
        if not locked:  # the control: every stripe lock a no-op, in this process only
            WordLock._take = lambda self: True  # type: ignore[method-assign]
            WordLock._give = lambda self: None  # type: ignore[method-assign]
            words = next(i for i, x in enumerate(pb.arrays) if x is pb.words)
            pb.arrays = (*pb.arrays[:words], pb.words.copy(), *pb.arrays[words + 1:])  # the kernel's: private
        start.wait(60)
        for i, key in enumerate(own):
            for k in (key, shared[i]):  # a key of its own, then the one every core makes at about the same time
                command = [b"SET", k, stamp(k, core)]
                if i % (4 if locked else 2) == 0:  # the control widens the race: Python's lookup is slower
                    cmds.execute(command)
                else:
                    drive(pb, cmds, command)
        ks.heap.release_caches()
        ks.release()
    except Exception as e:  # noqa: BLE001 - reported to the parent
        problems.append(repr(e))
    finally:
        report(q, core, problems)


def chains(m: Machine) -> list[int]:
    """Every entry on a chain, walked from the buckets (an entry twice: a cycle or a shared tail)."""
    a = m.ks_arrays
    out: list[int] = []
    for b in range(a.ks_bucket.shape[0]):
        e = int(a.ks_bucket[b])
        while e >= 0 and len(out) <= a.e_next.shape[0]:
            out.append(e)
            e = int(a.e_next[e])
    return out


def insert_race(locked: bool) -> tuple[int, int, int, list[str]]:
    """Three cores insert 300 keys each and the same 300 others in the same order, all in HOT_BUCKETS
    buckets: (keys meant, keys counted, entries on the chains, problems), after checking every reachable
    value's stamp and that no two entries share an object."""
    with Machine.create(MachineConfig(memory_bytes=16 * MiB, cores=4, max_keys=1 << 12)) as m:
        mask = m.ks_arrays.ks_bucket.shape[0] - 1
        shared = hot_keys(b"shared", 300, mask)
        own = {c: hot_keys(b"own%d" % c, 300, mask) for c in (1, 2, 3)}
        start = CTX.Barrier(len(own))
        out = run_children([(inserter, (m, c, own[c], shared, locked, start)) for c in own])
        problems = [x for _, ps in out for x in ps]
        ks = m.keyspace(m.heap(0))
        meant = set(shared).union(*own.values())
        for k in meant:
            try:
                v = ks.get(k)
            except RuntimeError as e:  # a chain with a cycle (the unlocked control)
                problems.append(repr(e))
                continue
            if v is None or v[:8] != stamp(k, 0)[:8]:
                problems.append(f"{k!r} is missing or holds another key's value")
        reachable = chains(m)
        a = m.ks_arrays
        objects = [int(a.e_key[e]) for e in reachable] + [int(a.e_val[e]) for e in reachable]
        if len(set(objects)) != len(objects):
            problems.append("an object is held by two entries")
        heap = m.arrays
        for addr in objects:
            span = (addr - ks.heap.base) // PAGE_SIZE
            size = ks.heap.sizes[int(heap.span_class[span])]
            slot = span * MAX_OBJECTS_PER_SPAN + (addr - ks.heap.base - span * PAGE_SIZE) // size
            if int(heap.slot_state[slot]) != L.ALLOCATED:
                problems.append(f"a live entry's object at {addr:#x} is not allocated")
        return len(meant), int(a.ks_core[:, K_KEYS].sum()), len(reachable), problems


def test_cores_inserting_at_once_hand_out_nothing_twice_and_lose_no_key():
    meant, counted, reachable, problems = insert_race(locked=True)
    assert problems == []
    assert meant == counted == reachable


def test_the_same_race_without_the_locks_loses_keys():
    def broken() -> bool:
        meant, counted, reachable, problems = insert_race(locked=False)
        return bool(problems) or reachable != meant or counted != meant
    assert any(broken() for _ in range(3))  # the control: the checks above can fail (a race: up to 3 tries)
