"""The compiled GET/SET path (sim/cache/batch.py, db_kernels.py) and the stripes' futex words (sim/machine/futex.py).

- The kernel's hash is db.key_hash's (BLAKE2b, 8 bytes): otherwise neither path finds the other's keys.
- A read runs its leading plain GETs and SETs and stops, untouched, at the first command it does not
  take (a new key, a SET with options, an expired key, another command, a cut frame); the replies and
  counters are the Python path's.
- Processes writing and reading the same keys through both paths tear no value and lose no INCR;
  the same run with the word locks made no-ops loses INCRs, so the check can fail.
- A holder killed while holding a stripe's word: probe_free reports it free, the next acquirer takes
  it over, and the compiled path leaves that stripe to Python while a live holder has it.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import random
import signal

import pytest

from memsim.sim.cache import batch as batch_mod
from memsim.sim.cache import db_kernels as K
from memsim.sim.cache.batch import PlainBatch
from memsim.sim.cache.commands import Commands
from memsim.sim.cache.db import key_hash
from memsim.sim.cache.layout import K_COMMANDS, K_HITS, K_MISSES, STRIPES
from memsim.sim.machine import futex
from memsim.sim.machine.locks import WordLock
from memsim.sim.system import Machine
from tests.sim.cache.test_keyspace import run_children

CTX = mp.get_context("fork")


@pytest.fixture
def m(machine):
    """conftest's machine (8 MiB, 4 cores)."""
    return machine


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def test_the_kernel_hash_is_blake2b():
    rng = random.Random(5)
    work = K.np.zeros(40, K.np.uint64)
    for n in (1, 7, 8, 16, 127, 128, 129, 255, 256, 257, 1000):
        key = bytes(rng.randrange(256) for _ in range(n))
        buf = b"xx" + key
        assert int(K.key_hash(buf, 2, n, work)) == key_hash(key)
        assert key_hash(key) == int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def test_a_read_runs_its_plain_commands_and_leaves_the_rest_untouched(m):
    ks = m.keyspace(m.heap(0))
    cmds = Commands(ks)
    cmds.execute([b"SET", b"a", b"x" * 10])
    cmds.execute([b"SET", b"old", b"y" * 5, b"PX", b"1"])
    pb = PlainBatch(ks)
    assert pb.enabled and pb.usable()
    before = [int(ks.stats[c]) for c in (K_COMMANDS, K_HITS, K_MISSES)]
    data = resp(b"GET", b"a") + resp(b"get", b"nope") + resp(b"SET", b"a", b"z" * 10) + resp(b"GET", b"a")
    used, replies, done, last = pb.run(data, 0, 1 << 20, False)
    assert (used, done, last) == (len(data), 4, K.LAST_GET)
    assert replies == b"$10\r\n" + b"x" * 10 + b"\r\n$-1\r\n+OK\r\n$10\r\n" + b"z" * 10 + b"\r\n"
    after = [int(ks.stats[c]) for c in (K_COMMANDS, K_HITS, K_MISSES)]
    assert [y - x for x, y in zip(before, after, strict=True)] == [4, 2, 1]
    assert pb.run(resp(b"GET", b"nope"), 0, 1 << 20, True)[1] == b"_\r\n"  # RESP3's null
    # each of these stops the read at its start, having run (and counted) nothing of it
    rest = resp(b"GET", b"a")
    for first in (resp(b"SET", b"new", b"v"), resp(b"SET", b"a", b"short"), resp(b"SET", b"a", b"z" * 10, b"NX"),
                  resp(b"INCR", b"a"), b"PING\r\n", resp(b"GET", b"old"), resp(b"GET", b"a")[:-3],
                  b"*2\r\n$3\r\nGET\r\n$01\r\na\r\n", resp(b"GET", b"")):
        ks.clock = lambda: 10**13  # "old" has expired
        n0 = int(ks.stats[K_COMMANDS])
        used, replies, done, _ = pb.run(first + rest, 0, 1 << 20, False)
        assert (used, replies, done) == (0, b"", 0), first
        assert int(ks.stats[K_COMMANDS]) == n0
    assert cmds.execute([b"GET", b"old"]) is None  # the Python path deletes it, as it always did
    # a plain command it stops at is handed back parsed, to be run the ordinary way before going on
    data = resp(b"GET", b"a") + resp(b"SET", b"fresh", b"new value") + resp(b"GET", b"fresh")
    used, _, done, _ = pb.run(data, 0, 1 << 20, False)
    assert (done, pb.declined(data)) == (1, (len(data) - len(resp(b"GET", b"fresh")), [b"set", b"fresh", b"new value"]))
    assert pb.run(data, pb.declined(data)[0], 1 << 20, False)[1] == b"$-1\r\n"  # not run: still missing
    pb.run(resp(b"INCR", b"a"), 0, 1 << 20, False)
    assert pb.declined(resp(b"INCR", b"a")) is None
    # a reply that would not fit the room left stops before its command
    used, replies, done, _ = pb.run(resp(b"GET", b"nope") + rest, 0, 8, False)
    assert (used, replies, done) == (len(resp(b"GET", b"nope")), b"$-1\r\n", 1)


def test_a_registered_policy_or_lfu_sends_reads_the_python_way(m):
    ks = m.keyspace(m.heap(0))
    pb = PlainBatch(ks)
    Commands(ks).execute([b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lfu"])
    assert not pb.usable()
    Commands(ks).execute([b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lru"])
    assert pb.usable()


KEYS = [b"stamp:%d" % i for i in range(6)]
VALUE_BYTES = 64


def stamped(key: bytes, stamp: int) -> bytes:
    """A value that says what it is all through: its key's digest and the writer's stamp, repeated."""
    unit = hashlib.blake2b(key, digest_size=8).digest() + stamp.to_bytes(8, "little")
    return unit * (VALUE_BYTES // len(unit))


def whole(key: bytes, value: bytes) -> bool:
    return value == stamped(key, int.from_bytes(value[8:16], "little"))


def hammer(machine: Machine, core: int, n: int, locked: bool, q) -> None:
    problems: list[str] = []
    try:
        if not locked:  # the control: every word lock a no-op, in this process only
            WordLock._take = lambda self: True  # type: ignore[method-assign]
            WordLock._give = lambda self: None  # type: ignore[method-assign]
        ks = machine.keyspace(machine.heap(core))
        cmds = Commands(ks)
        pb = PlainBatch(ks)
        rng = random.Random(core)
        for i in range(n):
            key = rng.choice(KEYS)
            value = stamped(key, core * 1_000_000 + i)
            if i % 3 == 0:
                cmds.execute([b"INCR", b"counter"])
            elif i % 3 == 1:
                sent = [[b"SET", key, value], [b"GET", rng.choice(KEYS)]]
                _, replies, done, _ = pb.run(b"".join(resp(*c) for c in sent), 0, 1 << 20, False)
                for c in sent[done:]:  # what the kernel left (a stripe busy past its spin): the Python path
                    r = cmds.execute(c)
                    replies += b"+OK\r\n" if r == "OK" else b"$%d\r\n%s\r\n" % (len(r), r)
                got = replies[10:10 + VALUE_BYTES]  # after "+OK\r\n$64\r\n"
                if not whole(_key_of(got), got):
                    problems.append(f"torn value through the kernel: {got[:24]!r}")
            else:
                cmds.execute([b"SET", key, value])
                got = cmds.execute([b"GET", rng.choice(KEYS)])
                if not isinstance(got, bytes) or not whole(_key_of(got), got):
                    problems.append(f"torn value through Python: {got!r:.40}")
    except Exception as e:  # noqa: BLE001 - reported to the parent
        problems.append(repr(e))
    finally:
        report(q, core, problems)


def report(q, core: int, problems: list[str]) -> None:
    """A child's result to the parent, flushed before os._exit (or it is lost with the process)."""
    q.put((core, problems))
    q.close()
    q.join_thread()
    os._exit(0)


def _key_of(value: bytes) -> bytes:
    """Which of KEYS a stamped value names (b"" if none: torn)."""
    for k in KEYS:
        if value[:8] == hashlib.blake2b(k, digest_size=8).digest():
            return k
    return b""


def run(machine: Machine, locked: bool, n: int) -> tuple[list[str], int]:
    ks = machine.keyspace(machine.heap(0))
    for k in KEYS:
        Commands(ks).execute([b"SET", k, stamped(k, 0)])
    out = run_children([(hammer, (machine, c, n, locked)) for c in (1, 2, 3)])  # test_keyspace.py's
    problems = [x for _, ps in out for x in ps]
    try:
        counter = int(Commands(ks).execute([b"GET", b"counter"]) or 0)
    except Exception:  # noqa: BLE001 - the unlocked control may leave garbage there: lost all the same
        counter = -1
    return problems, counter


def test_both_paths_from_several_processes_tear_nothing_and_lose_no_incr(m):
    n = 3000
    problems, counter = run(m, True, n)
    assert problems == []
    assert counter == 3 * len(range(0, n, 3))


def test_the_same_run_without_the_locks_loses_incrs(m):
    n = 6000
    _, counter = run(m, False, n)
    assert counter < 3 * len(range(0, n, 3))  # the control: the check above can fail


def hold_and_die(machine: Machine, name: str, held) -> None:
    lock = machine.locks(2)[name]
    lock.acquire()
    held.set()
    signal.pause()


def test_a_dead_holders_word_is_taken_over(m, caplog):
    locks = m.locks(1)
    stripe = 5
    name = f"keyspace/{stripe}"
    index = m._lock_names.index(name)
    ks = m.keyspace(m.heap(0))
    key = next(k for k in (b"k%d" % i for i in range(10_000)) if (key_hash(k) & ks.mask) % STRIPES == stripe)
    Commands(ks).execute([b"SET", key, b"v"])
    pb = PlainBatch(ks)
    held = CTX.Event()
    p = CTX.Process(target=hold_and_die, args=(m, name, held))
    p.start()
    try:
        assert held.wait(30)
        assert not locks.probe_free(index)
        assert pb.run(resp(b"GET", key), 0, 1 << 20, False)[:3] == (0, b"", 0)  # left to Python, which would wait
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        assert locks.probe_free(index)  # as the kernel frees a dead holder's fcntl lock
        locks[name].acquire()  # takes the word over from the dead pid
        assert int(locks[name].words[locks[name].pos]) & futex.PID_MASK == os.getpid()
        locks[name].release()
        assert int(locks[name].words[locks[name].pos]) == 0
    finally:
        if p.is_alive():
            p.kill()
    assert "taken over from a dead holder" in caplog.text
    lock = locks[name]
    lock.words[lock.pos + 1] = 12345  # a starving waiter's heir word on the free lock: the kernel leaves it alone
    assert pb.run(resp(b"GET", key), 0, 1 << 20, False)[:3] == (0, b"", 0)
    assert not lock.try_acquire()  # and so does everyone else
    lock.words[lock.pos + 1] = 0
    assert pb.run(resp(b"GET", key), 0, 1 << 20, False)[1] == b"$1\r\nv\r\n"


def test_warm_compiles_what_a_core_calls(m):
    batch_mod.warm()
    assert PlainBatch(m.keyspace(m.heap(0))).enabled
