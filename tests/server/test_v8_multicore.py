"""The managed heap on a real server's cores at once, and a core killed in the middle of a collection.

- Two isolates, each driven from its own thread through its own core, build checksummed object
  graphs, churn them (replacing nodes, allocating garbage, minor and major GCs) at the same time,
  and read back exactly what they wrote; a third isolate is driven through both cores in turn.
- A core killed while an incremental marking step is parked (the same hook): the next core drops
  the cycle, verifies the heap, and the isolate stays live with its graph.
- A core killed while its collection is parked (the MEMSIM_TEST_V8_PAUSE_IN hook, sim/v8/heap.py):
  the core is restarted, the isolate it was collecting is reported lost with a clear error
  (a collection cut short is not trusted: sim/v8/isolate_table.py), every other isolate keeps its
  graph, and the machine keeps serving and creating isolates.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading

import pytest

from memsim.client import FailedPrecondition, Unavailable, V8Client
from memsim.sim.v8.heap import PAUSE_ENV
from tests.server.test_sessions import wait_until
from tests.servers import running_server

pytestmark = pytest.mark.integration

KiB, MiB = 1 << 10, 1 << 20
SIZES = {"semi_space_size": 256 * KiB, "max_old_space_size": 4 * MiB}
NODES = 150


def stamp(seed: int, i: int, gen: int) -> bytes:
    return hashlib.blake2b(f"{seed}/{i}/{gen}".encode(), digest_size=16).digest()


class Graph:
    """A root array (a global) of NODES nodes, each {key, gen} with a 16-byte stamp, and what it should hold."""

    def __init__(self, iso, seed: int):
        self.iso, self.seed, self.gen = iso, seed, [0] * NODES
        b = iso.batch()
        root = b.new_object(nfields=NODES)
        for i in range(NODES):
            b.set_field(root, i, b.new_object([i, 0], payload=stamp(seed, i, 0)))
        glob = b.make_persistent(root)
        self.root = b.execute().raise_first()[glob]

    def churn(self, rng: random.Random, iso=None, major: bool = True) -> None:
        iso = iso or self.iso
        b = iso.batch()
        b.open_scope()
        for i in rng.sample(range(NODES), 20):
            self.gen[i] += 1
            b.set_field(self.root, i, b.new_object([i, self.gen[i]], payload=stamp(self.seed, i, self.gen[i])))
        for _ in range(200):  # garbage
            b.new_object([1, 2, 3], payload=b"g" * 40)
        b.close_scope()
        if rng.random() < 0.3:
            b.gc(minor=not major or rng.random() < 0.7)
        b.execute().raise_first()

    def check(self, iso=None) -> None:
        iso = iso or self.iso
        b = iso.batch()
        b.open_scope()
        reads = []
        for i in range(NODES):
            node = b.get_field(self.root, i)
            reads.append((b.get_field(node, 0), b.get_field(node, 1), b.read_payload(node)))
        b.close_scope()
        res = b.execute().raise_first()
        for i, (key, gen, payload) in enumerate(reads):
            assert (res[key], res[gen], res[payload]) == (i, self.gen[i], stamp(self.seed, i, self.gen[i])), i


def drive(target: str, core: int, seed: int, rounds: int, errors: list[Exception]) -> None:
    try:
        with V8Client(target, core=core) as v8:
            iso = v8.create_isolate(**SIZES)
            g = Graph(iso, seed)
            rng = random.Random(seed)
            for _ in range(rounds):
                g.churn(rng)
            g.check()
            assert iso.counters()["gc_count.Scavenge"] > 0
    except Exception as e:  # noqa: BLE001  (any failure is reported to the test's thread)
        errors.append(e)


def test_two_isolates_on_two_cores_at_once_and_one_isolate_on_both():
    with running_server(cores=2, memory="64MiB", extra=["--vm-memory", "32MiB"]) as srv:
        errors: list[Exception] = []
        threads = [threading.Thread(target=drive, args=(srv.target, core, 100 + core, 25, errors)) for core in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        assert not errors, errors
        with V8Client(srv.target, core=0) as c0, V8Client(srv.target, core=1) as c1:
            on0 = c0.create_isolate(**SIZES)
            on1 = c1.isolate(on0.id)
            g = Graph(on0, 7)
            rng = random.Random(7)
            for k in range(12):
                g.churn(rng, on0 if k % 2 else on1)  # the same heap, one core's locker at a time
            g.check(on1)
            g.check(on0)


def test_a_core_killed_mid_collection_loses_only_that_isolate(monkeypatch):
    monkeypatch.setenv(PAUSE_ENV, "Mark-Compact")  # every core parks its Mark-Compacts: the test asks for one
    with running_server(cores=2, memory="64MiB", extra=["--vm-memory", "32MiB"]) as srv:
        with V8Client(srv.target, core=0) as c0, V8Client(srv.target, core=1, timeout=120) as c1:
            survivor = c0.create_isolate(**SIZES)
            kept = Graph(survivor, 1)
            victim = c1.create_isolate(**SIZES)
            Graph(victim, 2)
            outcome: list[Exception] = []

            def collect() -> None:
                try:
                    victim.gc()
                except Exception as e:  # noqa: BLE001  (the failure the test expects, or any other)
                    outcome.append(e)

            t = threading.Thread(target=collect)
            t.start()
            wait_until(lambda: any(f"isolate {victim.id}: paused in Mark-Compact on core 1" in ln for ln in srv.output),
                       30, "the victim's Mark-Compact to park")
            dead = srv.worker_pids[1]
            os.kill(dead, signal.SIGKILL)
            t.join(60)
            assert outcome and isinstance(outcome[0], Unavailable), outcome
            wait_until(lambda: any("restarted as pid" in ln for ln in srv.output), 60, "core 1's restart")
            with pytest.raises(FailedPrecondition, match=f"isolate {victim.id} was lost: core 1 died"):
                c0.isolate(victim.id).new_object([1])
            rng = random.Random(1)
            for _ in range(5):
                kept.churn(rng, major=False)  # this server parks every Mark-Compact
            kept.check()
            c0.isolate(victim.id).destroy()
        with V8Client(srv.target, core=1) as again:  # the restarted core serves isolates
            iso = again.create_isolate(**SIZES)
            g = Graph(iso, 3)
            g.churn(random.Random(3), major=False)
            g.check()


def test_a_core_killed_in_an_incremental_marking_step_leaves_the_isolate_live(monkeypatch):
    monkeypatch.setenv(PAUSE_ENV, "Marking step")  # every core parks its incremental marking steps
    with (running_server(cores=2, memory="64MiB", extra=["--vm-memory", "32MiB"]) as srv,
          V8Client(srv.target, core=0) as c0, V8Client(srv.target, core=1, timeout=120) as c1):
        victim = c1.create_isolate(**SIZES, incremental_marking=True)
        g = Graph(victim, 4)
        outcome: list[Exception] = []

        def allocate() -> None:  # old space passes its limit: a cycle starts, and its first step parks
            try:
                for _ in range(4000):
                    b = victim.batch()
                    b.open_scope()
                    for _ in range(64):
                        b.new_object([1], payload=b"o" * 400, pretenure=True)
                    b.close_scope()
                    b.execute().raise_first()
            except Exception as e:  # noqa: BLE001  (the failure the test expects, or any other)
                outcome.append(e)

        t = threading.Thread(target=allocate)
        t.start()
        wait_until(lambda: any(f"isolate {victim.id}: paused in Marking step on core 1" in ln
                               for ln in srv.output), 60, "the victim's marking step to park")
        os.kill(srv.worker_pids[1], signal.SIGKILL)
        t.join(60)
        assert outcome and isinstance(outcome[0], Unavailable), outcome
        wait_until(lambda: any("restarted as pid" in ln for ln in srv.output), 60, "core 1's restart")
        again = c0.isolate(victim.id)  # the cycle is dropped, the heap verified: the isolate is live
        g.check(again)
        g.churn(random.Random(4), again, major=True)
        g.check(again)
        assert [i.state for i in c0.isolates() if i.isolate == victim.id] == ["live"]
        assert [i.incremental_marking for i in c0.isolates() if i.isolate == victim.id] == [True]
