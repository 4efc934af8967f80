"""Doorbells (sim/machine/doorbell.py): a ring wakes the core's waiter in another process, rings
merge, a ring never blocks even when nobody reads, and a wait without a ring times out."""

from __future__ import annotations

import os
import time

from memsim.sim.machine.doorbell import HELPER, MAIN, Doorbells


def test_a_ring_wakes_a_waiter_in_another_process():
    bells = Doorbells(2)
    try:
        pid = os.fork()
        if pid == 0:  # the child waits on core 1's bell and exits 0 if it rang
            os._exit(0 if bells.wait(1, 10.0) else 1)
        time.sleep(0.05)
        bells.ring(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        bells.close()


def test_rings_merge_never_block_and_an_unrung_wait_times_out():
    bells = Doorbells(1)
    try:
        for _ in range(100_000):  # more than a pipe holds: the writes that do not fit are dropped
            bells.ring(0)
        assert bells.wait(0, 0.0)
        assert not bells.wait(0, 0.01)  # every pending ring was drained by the first wait
    finally:
        bells.close()


def test_a_cores_main_and_helper_bells_are_separate():
    """A main waiting for its helpers and the same core's GC helper thread do not drain each other's
    rings (before, both waited on the core's one pipe and the main woke on its timeout)."""
    bells = Doorbells(2)
    try:
        bells.ring(1, MAIN)
        assert not bells.wait(1, 0.0, HELPER)  # the helper thread's wait leaves the main's ring
        assert bells.wait(1, 0.0, MAIN)
        bells.ring(1)  # a posted job: the helper's bell
        assert not bells.wait(1, 0.0, MAIN) and bells.wait(1, 0.0, HELPER)
        assert bells.cores == 2
    finally:
        bells.close()
