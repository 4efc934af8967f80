"""Concurrency for real: several client processes hammer the same size classes on every core.

Every object is stamped, at allocation, with bytes derived from (process, sequence number);
every object is read back and compared with its stamp immediately before it is freed. If the
allocator ever handed one object to two owners, or a write landed in the wrong object, one
of the owners would read the other's stamp. A fraction of objects is freed by a different
process than the one that allocated it (cross-core frees). At the end the heap must be back
where it started and pass the server's own invariant check.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import queue
import random

import pytest

from memsim.client import Client
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

SIZES = [5, 12, 48, 64, 64, 200, 1000, 40_000]
PROCS = 4
ROUNDS = 150


def stamp(proc: int, seq: int, size: int) -> bytes:
    seed = hashlib.blake2b(f"{proc}:{seq}".encode(), digest_size=32).digest()
    return (seed * (size // 32 + 1))[:size]


def hammer(i: int, target: str, inbox, outbox, results) -> None:
    inbox.cancel_join_thread()
    outbox.cancel_join_thread()
    rng = random.Random(i)
    held: dict[int, tuple[int, int]] = {}  # address -> (seq, size)
    problems: list[str] = []
    handed = received = 0
    seq = 0
    upstream_done = False

    def verify_and_free(c: Client, items: list[tuple[int, int, int, int]]) -> None:
        """items: (address, owner proc, seq, size). Read all, compare, then free all."""
        b = c.batch()
        for addr, _, _, size in items:
            b.read(addr, size)
        for addr, *_ in items:
            b.free(addr)
        res = b.execute()
        for k, (addr, proc, s, size) in enumerate(items):
            if res[k].error is not None or res[k].data != stamp(proc, s, size):
                problems.append(f"object {addr:#x} of proc {proc} seq {s}: stamp lost or overwritten")
            if res[len(items) + k].error is not None:
                problems.append(f"free of {addr:#x} failed: {res[len(items) + k].error}")

    with Client(target, core=i % 4, timeout=30) as c:
        for _ in range(ROUNDS):
            b = c.batch()
            new = []
            for _ in range(20):
                size = rng.choice(SIZES)
                seq += 1
                r = b.alloc(size)
                b.write(r, stamp(i, seq, size))
                new.append((r, seq, size))
            res = b.execute()
            for r, s, size in new:
                if res[r.index].error is not None:
                    problems.append(f"alloc failed: {res[r.index].error}")
                    continue
                addr = res[r.index].address
                if addr in held:
                    problems.append(f"{addr:#x} handed out while still held")
                held[addr] = (s, size)
            victims = rng.sample(sorted(held), k=min(len(held), 15))
            mine, theirs = victims[:10], victims[10:]
            verify_and_free(c, [(a, i, *held.pop(a)) for a in mine])
            outbox.put([(a, i, *held.pop(a)) for a in theirs])
            handed += len(theirs)
            try:
                while not upstream_done:
                    items = inbox.get_nowait()
                    if items is None:
                        upstream_done = True
                    else:
                        received += len(items)
                        verify_and_free(c, items)
            except queue.Empty:
                pass
        outbox.put(None)
        done = upstream_done
        while not done:
            items = inbox.get(timeout=60)
            if items is None:
                done = True
            else:
                received += len(items)
                verify_and_free(c, items)
        verify_and_free(c, [(a, i, s, size) for a, (s, size) in held.items()])
    results.put((i, problems, handed, received, seq))


def test_processes_hammering_shared_classes_never_share_an_object():
    with running_server(cores=4, memory="32MiB") as srv:
        with Client(srv.target) as c:
            base = c.stats().memstats
        ctx = mp.get_context("spawn")
        queues = [ctx.Queue() for _ in range(PROCS)]
        results = ctx.Queue()
        procs = [ctx.Process(target=hammer, args=(i, srv.target, queues[i], queues[(i + 1) % PROCS], results))
                 for i in range(PROCS)]
        for p in procs:
            p.start()
        try:
            outs = []
            while len(outs) < PROCS:
                try:
                    outs.append(results.get(timeout=5))
                except queue.Empty:
                    dead = [p.exitcode for p in procs if not p.is_alive() and p.exitcode != 0]
                    assert not dead, f"a hammering process crashed: exit codes {dead}"
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
        problems = [x for _, probs, *_ in outs for x in probs]
        assert problems == []
        assert sum(o[2] for o in outs) == sum(o[3] for o in outs) > 0  # every handed object was freed elsewhere
        with Client(srv.target) as c:
            st = c.stats(check_heap=True)
        assert st.heap_problems == []
        assert st.memstats.Mallocs - base.Mallocs == sum(o[4] for o in outs)
        assert st.memstats.HeapObjects == base.HeapObjects  # nothing leaked, nothing freed twice
        assert sum(x.hits for x in st.caches) > 0
