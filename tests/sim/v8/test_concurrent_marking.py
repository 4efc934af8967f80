"""Concurrent marking (sim/v8/concurrent_marking.py) with a helper core in another process: the test
forks a child that plays core 1's GC helper (concurrent_marking.help on its own view of the
machine, as server/gc_helper.py runs it) while the parent, core 0, holds the isolate and mutates.

- the marking barrier across processes: the helper (MEMSIM_TEST_V8_HELPER_STEP=1) blackens A and
  parks; the mutator stores X, reachable only from grey B, into black A and clears B's field; the
  finalising Mark-Compact keeps X. With `testing(marking_barrier_off=True)` X is reclaimed while A
  still points at it and the verifier says so: the test can fail;
- churn: the mutator keeps moving and dropping references while the helper marks (waited for:
  the job's helpers_seen), cycle after cycle; the oracle (tests/sim/v8/mirror.py) and the verifier
  hold after every Mark-Compact, and the helper's CPU and objects land in the event;
- a helper killed while joined (parked holding its segments): the main adopts them at the pause,
  the cycle completes, the isolate is verified.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import traceback

import pytest

from memsim.sim.machine import atomics
from memsim.sim.v8 import concurrent_marking, gc_job, incremental_marking, marking, verifier
from memsim.sim.v8.heap import now_ms
from tests.sim.v8.mirror import PAGE, mirrored_isolate, small_machine, v8_of

pytestmark = pytest.mark.skipif(atomics.backend() != "libatomic", reason="helpers need libatomic")

MiB = 1 << 20


def _fork_helper(m, iso_id: int, steps: int = 0, loop: bool = False) -> int:
    """A child process that is core 1's GC helper: one visit (retried until it joins), or visits
    until it is killed."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        if steps:
            os.environ[concurrent_marking.STEP_ENV] = str(steps)
        h = m.v8(1, m.heap(1)).context(iso_id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if concurrent_marking.help(h) == concurrent_marking.NOT_JOINED or loop:
                m.doorbells.wait(1, 0.001)  # a post rings core 1, as server/gc_helper.py waits
            else:
                break
    except BaseException:  # noqa: BLE001  (the child reports and exits; the parent checks its status)
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _wait(cond, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def _reap(pid: int, kill: bool = False) -> int:
    if kill:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return status


def _barrier_across_processes(barrier_off: bool) -> bool:
    """The S8 barrier scenario with core 1's helper as the marker; whether the heap verified after."""
    with small_machine(cores=2) as m:
        v8 = v8_of(m, 0)
        iso_id = v8.create_isolate(semi_space_size=PAGE, max_old_space_size=16 * PAGE, gc_helpers=1,
                                   concurrent_marking=True)
        with v8.enter(iso_id) as iso:
            h = iso.h
            iso.open_scope()
            x = iso.new_string(b"only in B.f", pretenure=True)
            gb = iso.make_persistent(iso.new_object([x], pretenure=True))
            ga = iso.make_persistent(iso.new_object([0], pretenure=True))  # pushed last: popped first
            iso.close_scope()
            iso.testing(marking_barrier_off=barrier_off)
            pid = _fork_helper(m, iso_id, steps=1)
            try:
                incremental_marking.start(h, now_ms(h))  # posts the job: the child joins, blackens A, parks
                a, b = iso.address_of(ga), iso.address_of(gb)
                _wait(lambda: marking.is_black(h, a), "the helper to blacken A")
                iso.open_scope()
                xh = iso.get_field(gb, 0)
                assert marking.is_marked(h, b) and not marking.is_black(h, b), "B is grey"
                assert not marking.is_marked(h, iso.address_of(xh)), "X is white"
                iso.set_field(ga, 0, xh)  # into black A, in this process, while core 1's helper is in the job
                iso.set_field(gb, 0, 0)
                iso.close_scope()
                ev = iso.gc()  # pauses the job: the helper leaves, publishing B; then finalises
                assert ev.incremental_walltime_ms > 0 and ev.helpers == 1 and ev.helper_objects == 1
                assert ev.total_cpu_ms >= ev.main_cpu_ms
            finally:
                assert _reap(pid) == 0
            ok = not verifier.problems(h)
            if ok:
                iso.open_scope()
                assert iso.read_payload(iso.get_field(ga, 0)) == b"only in B.f"
                iso.close_scope()
        v8.destroy_isolate(iso_id)
    return ok


def test_the_barrier_keeps_an_object_a_helper_core_would_miss():
    assert _barrier_across_processes(barrier_off=False)
    assert not _barrier_across_processes(barrier_off=True), "without the barrier X is lost across processes"


def test_churn_while_a_helper_core_marks_loses_nothing():
    rng = random.Random(11)
    with small_machine(cores=2) as m, mirrored_isolate(m, max_old_space_size=2 * MiB, gc_helpers=1,
                                                      concurrent_marking=True) as mi:
        h = mi.iso.h
        pid = _fork_helper(m, h.iso, loop=True)
        try:
            mi.open_scope()
            nodes = [mi.new_object([0, 0, 0], payload=b"n%d" % i, pretenure=i % 2 == 0) for i in range(300)]
            holders = [mi.make_persistent(mi.new_object([0] * 4, pretenure=True)) for _ in range(8)]
            for k, n in enumerate(nodes):
                mi.set_field(holders[k % 8], k % 4, n) if k < 32 else mi.set_field(nodes[k // 2], k % 3, n)
            mi.close_scope()
            helper_objects = 0
            for _ in range(4):
                incremental_marking.start(h, now_ms(h))
                _wait(lambda: int(h.a.gc_job[h.iso, gc_job.J_HELPERS_SEEN]) > 0, "core 1's helper to join")
                for _ in range(300):  # move references between objects the helper may have visited
                    mi.open_scope()
                    src, dst = rng.choice(holders), rng.choice(holders)
                    v = mi.get_field(src, rng.randrange(4))
                    mi.set_field(dst, rng.randrange(4), v)
                    mi.set_field(src, rng.randrange(4), mi.new_object([v, 0], payload=b"fresh"))
                    mi.close_scope()
                    if rng.random() < 0.05:
                        mi.gc(minor=True)  # pauses and resumes the job
                ev = mi.iso.gc()
                mi.sync()
                mi.check_graph()
                helper_objects += ev.helper_objects
            assert helper_objects > 0, "the helper core marked nothing"
        finally:
            _reap(pid, kill=True)


def test_a_helper_killed_in_the_job_leaves_a_cycle_that_completes(capfd):
    with small_machine(cores=2) as m, mirrored_isolate(m, max_old_space_size=2 * MiB, gc_helpers=1,
                                                      concurrent_marking=True) as mi:
        h = mi.iso.h
        mi.open_scope()
        leaf = mi.new_string(b"leaf", pretenure=True)
        for i in range(40):
            mi.make_persistent(mi.new_object([leaf, i, 0], pretenure=True))
        mi.close_scope()
        pid = _fork_helper(m, h.iso, steps=5)  # visits five objects, parks holding its segments
        incremental_marking.start(h, now_ms(h))
        _wait(lambda: "parked" in capfd.readouterr().err, "the helper to park")
        assert gc_job.active(h) == 1
        _reap(pid, kill=True)
        ev = mi.iso.gc()  # the pause finds task 1 dead: adopts its segments, rescans grey objects
        assert "died; its segments are adopted" in capfd.readouterr().err
        assert ev.incremental_walltime_ms > 0 and not marking.active(h)
        mi.sync()
        mi.check_graph()
        mi.check_after_full_gc()


def test_a_helper_core_joins_the_pauses_marking():
    """S7's marking: with gc_helpers=1 (no incremental or concurrent marking) the Mark-Compact's pause
    posts the marking job; core 1's helper joins it, and after every one heapUsed is exactly the
    model's reachable bytes (the verifier runs too) — an object the helpers failed to mark would be
    swept and missing from it."""
    with small_machine(cores=2) as m, mirrored_isolate(m, max_old_space_size=4 * MiB, gc_helpers=1) as mi:
        h = mi.iso.h
        for _ in range(8):  # trees of 2047 nodes, one global each
            mi.open_scope()
            level = [mi.new_object([0, 0], payload=b"leaf", pretenure=True) for _ in range(1024)]
            while len(level) > 1:
                level = [mi.new_object([level[i], level[i + 1]], pretenure=True) for i in range(0, len(level), 2)]
            mi.make_persistent(level[0])
            mi.close_scope()
        pid = _fork_helper(m, h.iso, loop=True)
        try:
            joined = []
            for _ in range(30):
                ev = mi.iso.gc()
                mi.sync()
                mi.check_after_full_gc()
                joined.append(ev.helper_objects)
                if ev.helper_objects:
                    assert ev.helpers == 1 and ev.total_cpu_ms >= ev.main_cpu_ms
                    break
            assert any(joined), "core 1's helper never joined a pause's marking"
        finally:
            _reap(pid, kill=True)
