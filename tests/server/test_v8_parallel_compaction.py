"""Mark-compact's parallel evacuation and pointer updating across a real server's cores
(sim/v8/compaction_job.py, server/gc_helper.py): an isolate created with gc_helpers=1 on core 0, every
Mark-Compact a forced compaction (MEMSIM_TEST_V8_FORCE_COMPACTION: every old page with live objects a
candidate), core 1's helper joining the evacuation and update jobs.

Each round makes forests of stamped trees (tests/server/test_v8_parallel.py's Forest), collects, then
drops half of the new forests' trees, so that the next forced compaction has several half-empty
candidate pages to share out. Every collection is verified on the server (MEMSIM_TEST_V8_VERIFY: a
failure fails the call) and the kept trees read back their stamps. The helper's figures are asserted over several
collections, not each one: on a loaded 2-CPU host a helper may wake after the main has taken every
page, and that is no failure; zero objects moved by helpers over all of them is (a dead doorbell or a
job kind the helper does not dispatch).

A helper killed mid-page (PARK_HOOK parks it on its first candidate with 5 objects moved): the main
redoes the page and the collection verifies; the control, with the main's redo hooked off
(MEMSIM_TEST_V8_NO_PAGE_REDO), makes the verifier fail, so that test can fail.
"""

from __future__ import annotations

import os
import random
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from memsim.client import FailedPrecondition, V8Client
from memsim.sim.v8.compaction_job import NO_REDO_ENV, PARK_HOOK
from memsim.sim.v8.gc_job import HELPER_PAUSE_ENV
from memsim.sim.v8.isolate_table import FORCE_COMPACTION_ENV
from tests.server.test_sessions import wait_until
from tests.server.test_v8_parallel import SERVER, TREES, Forest, MiB, _env, stamp
from tests.servers import running_server

pytestmark = pytest.mark.integration

# Mark-Compacts at most, and at least before the helper's count is read; forests made a round
ROUNDS, AT_LEAST, FORESTS = 8, 3, 3
KEPT = range(0, TREES, 2)  # after its first Mark-Compact a forest keeps these trees: its old pages become half empty


def _check(forest: Forest) -> None:
    """The kept trees' stamps along their leftmost and rightmost paths and a sample of inner nodes."""
    b = forest.iso.batch()
    b.open_scope()
    reads = [((t, i), b.read_payload(forest._walk(b, t, i))) for t in KEPT for i in (0, 1, 2, 200, 510)]
    b.close_scope()
    res = b.execute().raise_first()
    for (t, i), ref in reads:
        assert res[ref] == stamp(t, i, 0), (t, i)


def _round(iso, rng: random.Random, forests: list[Forest]):
    """FORESTS new forests, a Mark-Compact (verified on the server), then half of the new trees
    dropped; the collection's event."""
    new = [Forest(iso, rng) for _ in range(FORESTS)]
    event = iso.gc()
    for forest in new:
        for t in range(TREES):
            if t not in KEPT:
                iso.drop(forest.roots[t])
    forests += new
    return event


def test_a_helper_core_evacuates_candidates_and_the_heap_verifies(monkeypatch):
    _env(monkeypatch, **{FORCE_COMPACTION_ENV: "1"})
    with running_server(**SERVER) as srv, V8Client(srv.target, core=0, timeout=120) as v8:
        iso = v8.create_isolate(semi_space_size=1 * MiB, max_old_space_size=16 * MiB, gc_helpers=1)
        rng, forests, events = random.Random(7), [], []
        for rnd in range(1, ROUNDS + 1):
            events.append(_round(iso, rng, forests))
            for forest in forests:
                _check(forest)
            if rnd >= AT_LEAST and sum(e.helper_objects for e in events) > 0:
                break
        assert sum(e.compacted for e in events) > 0, events
        assert sum(e.helpers for e in events) > 0, events
        assert sum(e.helper_objects for e in events) > 0, events  # objects a helper evacuated
        assert all(e.total_cpu_ms >= e.main_cpu_ms > 0 for e in events)


def _parked(srv) -> bool:
    return any("parked mid-page on core 1" in ln for ln in srv.output)


def _kill_when_parked(srv, iso, rng: random.Random, forests: list[Forest]) -> None:
    """Collect (rounds) until core 1's helper parks mid-page, kill core 1's worker; what the
    collection raised is raised here."""
    with ThreadPoolExecutor(1) as pool:  # the collections run while this thread waits to kill
        done = pool.submit(lambda: [_round(iso, rng, forests) for _ in range(ROUNDS) if not _parked(srv)])
        wait_until(lambda: _parked(srv), 90, "core 1's helper to park mid-page")
        os.kill(srv.worker_pids[1], signal.SIGKILL)
        done.result(120)


def test_a_helper_killed_mid_page_leaves_the_heap_whole(monkeypatch, tmp_path):
    """Core 1's helper parks on its first candidate page with 5 objects moved (PARK_HOOK) and its
    worker is killed: the main takes the page back, skips the moved objects (their copies kept
    live), moves the rest; that collection verifies on the server and the kept trees read back."""
    _env(monkeypatch, tmp_path / "parked", **{FORCE_COMPACTION_ENV: "1", HELPER_PAUSE_ENV: PARK_HOOK})
    with running_server(**SERVER) as srv, V8Client(srv.target, core=0, timeout=120) as v8:
        iso = v8.create_isolate(semi_space_size=1 * MiB, max_old_space_size=16 * MiB, gc_helpers=1)
        forests: list[Forest] = []
        _kill_when_parked(srv, iso, random.Random(9), forests)
        assert any("compaction task 1" in ln and "died; the main does its 1 claimed items again" in ln
                   for ln in srv.output)
        assert [i.state for i in v8.isolates() if i.isolate == iso.id] == ["live"]
        for forest in forests:  # no further collection: core 1, restarted, would park again
            _check(forest)


def test_control_without_the_mains_redo_the_verifier_fails(monkeypatch, tmp_path):
    _env(monkeypatch, tmp_path / "parked", **{FORCE_COMPACTION_ENV: "1", HELPER_PAUSE_ENV: PARK_HOOK, NO_REDO_ENV: "1"})
    with running_server(**SERVER) as srv, V8Client(srv.target, core=0, timeout=120) as v8:
        iso = v8.create_isolate(semi_space_size=1 * MiB, max_old_space_size=16 * MiB, gc_helpers=1)
        with pytest.raises(FailedPrecondition, match="does not verify"):
            _kill_when_parked(srv, iso, random.Random(9), [])
