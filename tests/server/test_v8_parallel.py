"""Parallel scavenging across a real server's cores (sim/v8/gc_job.py, scavenge_job.py,
server/gc_helper.py): an isolate created with gc_helpers=1 on core 0 scavenges with core 1's helper.

- The main waits for its helper to join before draining (MEMSIM_TEST_V8_MAIN_AWAITS_HELPER, bounded),
  so that the helper has work however the host schedules it.
- With a helper, every scavenge is verified on the server (MEMSIM_TEST_V8_VERIFY: the heap verifier
  after every collection, a failure fails the call), the graph reads back (the oracle: every node's
  stamp and shape), the trace's per-helper counters are positive (helpers joined, objects the helper
  copied: zero if the doorbell never woke core 1), total CPU >= the main's, and the work and span in
  words arrive (span <= work, below it when main and helper both copied).
- Content stamps across processes: every shared node is written through one parent and read through
  another; an object copied twice would leave the parents on different copies.
- A helper killed while parked after a won forwarding CAS (MEMSIM_TEST_V8_HELPER_PAUSE=after-cas: a
  forwarded object in no worklist, one with a field still naming from-space, so that leaving it unscanned
  shows), by its worker's PID: the main repairs its work, the isolate stays LIVE, verifies and keeps its
  stamps. Only the first helper parks (MEMSIM_TEST_V8_PARK_ONCE), not the core forked after the kill.
  The control: with the rescan of the dead helper's LABs hooked off (MEMSIM_TEST_V8_NO_LABLOG_RESCAN)
  the same kill makes the verifier fail, so the test can fail.
- The main killed while its helper is parked in the job: the helper leaves, the isolate is LOST
  (a collection cut short), and the machine serves on.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path

import pytest

from memsim.client import FailedPrecondition, V8Client
from memsim.sim.v8.gc_job import HELPER_PAUSE_ENV, MAIN_AWAITS_HELPER_ENV, NO_LABLOG_RESCAN_ENV, PARK_ONCE_ENV
from memsim.sim.v8.isolate_table import VERIFY_ENV
from tests.server.test_sessions import wait_until
from tests.servers import running_server

pytestmark = pytest.mark.integration

MiB = 1 << 20
SERVER = {"cores": 2, "memory": "96MiB", "extra": ["--vm-memory", "64MiB"]}
TREES, LEAVES = 8, 256  # binary trees of 511 nodes, one global each
SHARED = 40  # extra edges: a node of one tree also hung from another tree's leaf


def stamp(tree: int, i: int, gen: int) -> bytes:
    return f"{tree:03d}/{i:05d}/{gen:05d}".encode().ljust(16, b".")


class Forest:
    """TREES binary trees (heap-ordered: node i's children are 2i+1, 2i+2), each node stamped, plus
    SHARED leaves that also point at another tree's inner node (so that node has two parents)."""

    def __init__(self, iso, rng: random.Random):
        self.iso, self.roots, self.gen = iso, [], {}
        n = 2 * LEAVES - 1
        for t in range(TREES):
            b = iso.batch()
            b.open_scope()
            refs: list = [None] * n
            for i in reversed(range(n)):
                kids = [refs[2 * i + 1], refs[2 * i + 2], 0] if 2 * i + 2 < n else [0, 0, 0]
                refs[i] = b.new_object(kids, payload=stamp(t, i, 0))
            glob = b.make_persistent(refs[0])
            b.close_scope()
            self.roots.append(b.execute().raise_first()[glob])
        # a leaf's third field points at another tree's inner node: (tree, leaf, other tree, inner node)
        leaves = rng.sample([(t, i) for t in range(TREES) for i in range(LEAVES - 1, n)], SHARED)  # one edge each
        self.edges = [(t, leaf, rng.randrange(TREES), rng.randrange(1, 64)) for t, leaf in leaves]
        b = iso.batch()
        b.open_scope()
        for t, leaf, u, inner in self.edges:
            b.set_field(self._walk(b, t, leaf), 2, self._walk(b, u, inner))
        b.close_scope()
        b.execute().raise_first()

    def _walk(self, b, tree: int, i: int):
        """A batch ref to node i of a tree, through its ancestors."""
        path = []
        while i:
            path.append(0 if i % 2 else 1)  # a left child (field 0) has an odd index
            i = (i - 1) // 2
        ref = self.roots[tree]
        for f in reversed(path):
            ref = b.get_field(ref, f)
        return ref

    def check(self) -> None:
        """Every tree's stamps along its leftmost and rightmost paths and a sample of inner nodes."""
        b = self.iso.batch()
        b.open_scope()
        reads = [((t, i), b.read_payload(self._walk(b, t, i))) for t in range(TREES) for i in (0, 1, 2, 200, 510)]
        b.close_scope()
        res = b.execute().raise_first()
        for (t, i), ref in reads:
            assert res[ref] == stamp(t, i, self.gen.get((t, i), 0)), (t, i)

    def check_shared(self, rnd: int) -> None:
        """Write each shared node's stamp through its second parent (the leaf), read it through its tree."""
        b = self.iso.batch()
        b.open_scope()
        reads = []
        for t, leaf, u, inner in self.edges:
            self.gen[(u, inner)] = rnd
            b.write_payload(b.get_field(self._walk(b, t, leaf), 2), 0, stamp(u, inner, rnd))
        for _, _, u, inner in self.edges:
            reads.append(((u, inner), b.read_payload(self._walk(b, u, inner))))
        b.close_scope()
        res = b.execute().raise_first()
        for (u, inner), ref in reads:
            assert res[ref] == stamp(u, inner, self.gen[(u, inner)]), (u, inner)


def _env(monkeypatch, park_once: Path | None = None, **hooks: str) -> None:
    """The verifier after every collection, and the main waiting (a few seconds at most) for core 1's
    helper to join before it drains, so that on a loaded host the helper still finds work. With
    `park_once` (a path) only the first helper to reach the park hook parks: the core forked again
    after the kill inherits the hook and would otherwise park its next collection with no one to kill it."""
    monkeypatch.setenv(VERIFY_ENV, "1")
    monkeypatch.setenv(MAIN_AWAITS_HELPER_ENV, "1")
    if park_once is not None:
        monkeypatch.setenv(PARK_ONCE_ENV, str(park_once))
    for name, value in hooks.items():
        monkeypatch.setenv(name, value)


def test_a_helper_core_joins_scavenges_and_the_heap_verifies(monkeypatch):
    _env(monkeypatch)
    with running_server(**SERVER) as srv, V8Client(srv.target, core=0, timeout=120) as v8:
        iso = v8.create_isolate(semi_space_size=1 * MiB, max_old_space_size=16 * MiB, gc_helpers=1)
        assert [i.gc_helpers for i in v8.isolates() if i.isolate == iso.id] == [1]
        rng, forests, events = random.Random(1), [], []
        # At least 4 scavenges, and more (at most 12) until a helper has copied something: on a loaded
        # 2-CPU host a helper can join after the main has taken the last item (joined late, no work).
        for rnd in range(1, 13):
            forests.append(Forest(iso, rng))  # young work for every scavenge
            events.append(iso.gc(minor=True))  # verified on the server
            for forest in forests:
                forest.check()
                forest.check_shared(rnd)
            if rnd >= 4 and any(e.helper_objects for e in events):
                break
        assert sum(e.helpers for e in events) > 0, events
        assert sum(e.helper_objects for e in events) > 0, events
        assert all(e.total_cpu_ms >= e.main_cpu_ms > 0 for e in events)
        assert all("scavenge.parallel=" in e.nvp for e in events)
        # work and span in words (GcEvent 57, 58; sim/v8/work_span.py) reach the client and the nvp line (a
        # scavenge is all one job: no serial part); one whose copies helper and main shared has span < work
        assert all(0 < e.span_words <= e.work_words and f" work={e.work_words} span={e.span_words}" in e.nvp
                   and e.serial_words == 0
                   for e in events), events
        shared = [e for e in events if 0 < e.helper_objects < e.nodes_copied_in_new + e.nodes_promoted]
        assert all(e.span_words < e.work_words for e in shared), shared


def _parked(srv) -> bool:
    return any("parked after a won CAS on core 1" in ln for ln in srv.output)


def _kill_when_parked(srv, iso, rng: random.Random, victim: int = 1) -> tuple[list[Forest], list[Exception]]:
    """Scavenge young forests in a thread until core 1's helper parks after a won CAS (a helper
    that joins after the work is gone parks nowhere: the next scavenge tries again); kill core
    `victim`'s worker by its PID; the forests made and what the scavenges raised."""
    outcome: list[Exception] = []
    forests: list[Forest] = []

    def collect() -> None:
        try:
            for _ in range(6):
                forests.append(Forest(iso, rng))
                iso.gc(minor=True)
                if _parked(srv):
                    return
        except Exception as e:  # noqa: BLE001  (reported to the test's thread)
            outcome.append(e)

    t = threading.Thread(target=collect)
    t.start()
    wait_until(lambda: _parked(srv), 90, "core 1's helper to park after a won CAS")
    os.kill(srv.worker_pids[victim], signal.SIGKILL)
    t.join(120)
    assert not t.is_alive()
    return forests, outcome


def test_a_helper_killed_after_a_won_cas_leaves_the_heap_whole(monkeypatch, tmp_path):
    _env(monkeypatch, tmp_path / "parked", **{HELPER_PAUSE_ENV: "after-cas"})
    with running_server(**SERVER) as srv, V8Client(srv.target, core=0, timeout=120) as v8:
        iso = v8.create_isolate(semi_space_size=1 * MiB, max_old_space_size=16 * MiB, gc_helpers=1)
        forests, outcome = _kill_when_parked(srv, iso, random.Random(2))
        assert outcome == []
        assert any("died; the main takes over" in ln for ln in srv.output)
        assert [i.state for i in v8.isolates() if i.isolate == iso.id] == ["live"]
        for forest in forests:
            forest.check()
            forest.check_shared(1)
        iso.gc(minor=True)  # verified again (core 1 may be back and help, or not)
        for forest in forests:
            forest.check()


def test_control_without_the_lablog_rescan_the_verifier_fails(monkeypatch, tmp_path):
    _env(monkeypatch, tmp_path / "parked", **{HELPER_PAUSE_ENV: "after-cas", NO_LABLOG_RESCAN_ENV: "1"})
    with running_server(**SERVER) as srv, V8Client(srv.target, core=0, timeout=120) as v8:
        iso = v8.create_isolate(semi_space_size=1 * MiB, max_old_space_size=16 * MiB, gc_helpers=1)
        _, outcome = _kill_when_parked(srv, iso, random.Random(2))
        assert outcome and isinstance(outcome[0], FailedPrecondition), outcome
        assert "does not verify" in str(outcome[0])


def test_the_main_killed_with_a_helper_joined_loses_only_its_isolate(monkeypatch, tmp_path):
    """The main's core dies while its helper is parked in the job: the helper sees the main's
    `v8/gc/<core>` free and leaves; the next holder finds the collection cut short and reports the
    isolate LOST (after the helper has gone: isolate_table's recovery waits for it); core 1 serves on."""
    _env(monkeypatch, tmp_path / "parked", **{HELPER_PAUSE_ENV: "after-cas"})
    with running_server(**SERVER) as srv, V8Client(srv.target, core=1, timeout=120) as c1:
        with V8Client(srv.target, core=0, timeout=120) as c0:
            iso = c0.create_isolate(semi_space_size=1 * MiB, max_old_space_size=16 * MiB, gc_helpers=1)
            _, outcome = _kill_when_parked(srv, iso, random.Random(3), victim=0)
            assert outcome, "the scavenge's call outlived its core"
        with pytest.raises(FailedPrecondition, match=f"isolate {iso.id} was lost: core 0 died"):
            c1.isolate(iso.id).new_object([1])
        other = c1.create_isolate(semi_space_size=1 * MiB, max_old_space_size=16 * MiB)
        Forest(other, random.Random(4)).check()
