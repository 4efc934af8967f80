"""Concurrent marking across a real server's cores (sim/v8/concurrent_marking.py, server/gc_helper.py):
an isolate created on core 0 with concurrent_marking and gc_helpers=1 has its marking cycles marked
by core 1's helper while its mutator runs.

- With every collection verified on the server (MEMSIM_TEST_V8_VERIFY), a graph whose references
  keep moving reads back whole, the Mark-Compacts that ended a cycle report the helper (helpers,
  helper_objects: zero if core 1 never joined) and total CPU >= the main's.
- The main killed with a helper joined (the helper parked in the job by MEMSIM_TEST_V8_HELPER_STEP,
  the main parked in an incremental step by the heap's pause hook, then its worker SIGKILLed): the
  next holder drops the cycle, the helper leaves before anything is cleared, and the isolate is live
  and verified.
"""

from __future__ import annotations

import os
import random
import signal
import threading

import pytest

from memsim.client import Unavailable, V8Client
from memsim.sim.v8.concurrent_marking import STEP_ENV
from memsim.sim.v8.heap import PAUSE_ENV
from memsim.sim.v8.isolate_table import VERIFY_ENV
from tests.server.test_sessions import wait_until
from tests.server.test_v8_multicore import SIZES, Graph
from tests.servers import running_server

pytestmark = pytest.mark.integration

SERVER = {"cores": 2, "memory": "64MiB", "extra": ["--vm-memory", "32MiB"]}


def _old_garbage(iso, n: int = 64) -> None:
    """Pretenured garbage: the old generation grows to its limit, where a marking cycle starts."""
    b = iso.batch()
    b.open_scope()
    for _ in range(n):
        b.new_object([1], payload=b"o" * 400, pretenure=True)
    b.close_scope()
    b.execute().raise_first()


def test_a_helper_core_marks_while_the_mutator_moves_references(monkeypatch):
    monkeypatch.setenv(VERIFY_ENV, "1")
    with running_server(**SERVER) as srv, V8Client(srv.target, core=0, timeout=120) as v8:
        iso = v8.create_isolate(**SIZES, gc_helpers=1, concurrent_marking=True)
        assert [(i.concurrent_marking, i.gc_helpers) for i in v8.isolates() if i.isolate == iso.id] == [(True, 1)]
        g, rng = Graph(iso, 7), random.Random(7)
        cycles: list = []
        for _ in range(400):
            g.churn(rng, major=False)
            _old_garbage(iso)
            cycles = [e for e in iso.trace(after_seq=0) if e.kind == "Mark-Compact" and e.incremental_walltime_ms > 0]
            if sum(e.helpers for e in cycles) >= 2:
                break
        g.check()
        assert cycles, "no marking cycle ended in a Mark-Compact"
        assert sum(e.helper_objects for e in cycles) > 0, cycles
        assert all(e.total_cpu_ms >= e.main_cpu_ms for e in cycles)


def test_the_main_killed_with_a_helper_joined_drops_the_cycle_and_stays_live(monkeypatch):
    monkeypatch.setenv(VERIFY_ENV, "1")
    monkeypatch.setenv(PAUSE_ENV, "Marking step")
    monkeypatch.setenv(STEP_ENV, "1")
    with running_server(**SERVER) as srv, V8Client(srv.target, core=0, timeout=120) as c0:
        victim = c0.create_isolate(**SIZES, gc_helpers=1, incremental_marking=True, concurrent_marking=True)
        g = Graph(victim, 5)
        outcome: list[Exception] = []

        def allocate() -> None:
            try:
                for _ in range(4000):
                    _old_garbage(victim)
            except Exception as e:  # noqa: BLE001  (the failure the test expects, or any other)
                outcome.append(e)

        t = threading.Thread(target=allocate)
        t.start()
        wait_until(lambda: any(f"isolate {victim.id}: paused in Marking step on core 0" in ln for ln in srv.output)
                   and any("marking helper task 1 parked on core 1" in ln for ln in srv.output), 90,
                   "the main's step and core 1's helper to park")
        os.kill(srv.worker_pids[0], signal.SIGKILL)
        t.join(60)
        assert outcome and isinstance(outcome[0], Unavailable), outcome
        wait_until(lambda: any("restarted as pid" in ln for ln in srv.output), 60, "core 0's restart")
        with V8Client(srv.target, core=0, timeout=120) as again:
            iso = again.isolate(victim.id)  # recovery: the cycle dropped after the helper left, verified
            g.check(iso)
            g.churn(random.Random(6), iso, major=True)
            g.check(iso)
            assert [i.state for i in again.isolates() if i.isolate == victim.id] == ["live"]
