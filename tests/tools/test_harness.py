"""tools/harness.py with real spawned processes and no server: the snapshot is taken exactly around
the timed window, the processes' histograms merge into one, and a failure is reported by its own
cause, not by the broken barrier a peer then sees."""

from __future__ import annotations

import itertools
import time

import pytest

from memsim.tools import harness
from memsim.tools.harness import Lane


def _load(lane: Lane, samples: int) -> bytes:
    lane.meet()
    for i in range(samples):
        lane.record((i + 1) / 1e6)
    lane.count(samples)
    lane.meet()
    return bytes(lane.hist.encode())


def _fails_before_meeting(lane: Lane, fail: bool) -> int:
    if fail:
        time.sleep(0.3)  # let the healthy peer reach the barrier first
        raise ValueError("the real cause: cannot connect")
    lane.meet()
    lane.meet()
    return 1


def test_a_window_is_measured_between_two_snapshots_and_histograms_merge():
    ticks = itertools.count()
    w = harness.run(_load, [(10,), (30,)], lambda: next(ticks), seconds=0.1, timeout=30)
    assert (w.before, w.after) == (0, 1)
    merged = harness.merge(w.results)
    assert merged.get_total_count() == 40 and merged.get_max_value() == pytest.approx(30, rel=0.01)


def test_a_failed_process_is_reported_by_its_own_error():
    with pytest.raises(RuntimeError, match="the real cause: cannot connect"):
        harness.run(_fails_before_meeting, [(False,), (True,)], lambda: None, seconds=0.1, timeout=30)
