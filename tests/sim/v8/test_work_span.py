"""Work and span in words (sim/v8/work_span.py), in one process: the scavenger's and mark-compact's
tasks take turns here (layout.py's C_TEST_TASKS; test_scavenger_parallel.py's hooks), each with its
own counter row, so the per-task split is deterministic.

- one task (the serial collector): span == work, and the event's work is its task row's words;
- two tasks draining a wide tree in slices: both take part, span < work, work = the sum of the two
  rows and within a few % of the serial collector's on the same heap (the same objects copied and
  scanned once each: no race hook);
- the race hook (every copy raced): work counts the lost copies and the doubled roots, span <= work;
- a mark-compact: work >= span, with the serial parts (roots, young promotion, sweeping) and the
  per-task phases (evacuation and pointer updating split across two tasks) adding up.

Each can fail: `phase` taking the sum instead of the max gives span == work with two tasks; a kernel
whose counter is not in `task_words` (or is counted twice) breaks the equality with the rows.
"""

from __future__ import annotations

import random

import numpy as np

from memsim.sim.v8 import scavenge_kernels as k
from memsim.sim.v8 import work_span
from memsim.sim.v8.gc_work import GcWork
from memsim.sim.v8.tracer import GcEvent
from tests.sim.v8.mirror import PAGE, MiB, Mirror, mirrored_isolate, small_machine
from tests.sim.v8.test_scavenger_parallel import _graph


def _tree(m: Mirror, leaves: int, globals_: int = 1) -> None:
    """`globals_` complete binary trees of `leaves` leaves each, one global per root: wide, so that the
    drain has many objects at every level for two tasks to share."""
    for _ in range(globals_):
        m.open_scope()
        level = [m.new_object([], payload=b"leaf0000") for _ in range(leaves)]
        while len(level) > 1:
            level = [m.new_object(level[i:i + 2]) for i in range(0, len(level), 2)]
        m.make_persistent(level[0])
        m.close_scope()


def _rows(m: Mirror, tasks: int) -> list[int]:
    h = m.iso.h
    return [int(work_span.task_words(k.task_row(h.a.gc_task, h.iso, t)[0])) for t in range(tasks)]


def _scavenge(tasks: int, race: bool = False) -> tuple[GcEvent, list[int], int]:
    """A scavenge of a wide tree (or, with the race hook, of test_scavenger_parallel's random DAG,
    whose several globals give the racing tasks objects to fight over): its event, each task's words,
    the words the CAS losers copied in vain."""
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=8 * PAGE,
                                                      max_old_space_size=4 * MiB) as m:
        m.iso.testing(scavenge_tasks=tasks, race_hook=race)
        if race:
            _graph(m, random.Random(11), 400)
        else:
            _tree(m, 2048)
        ev = m.iso.gc(minor=True)
        m.sync()
        m.check_graph()
        h = m.iso.h
        lost = sum(int(k.task_row(h.a.gc_task, h.iso, t)[0][k.K_WORDS_LOST]) for t in range(tasks))
        return ev, _rows(m, tasks), lost


def test_phase_adds_work_and_takes_the_busiest_core():
    w = GcWork()
    work_span.serial(w, 10)
    work_span.phase(w, np.array([30, 50, 20]), np.array([1, 2, 1]))  # core 1 ran two tasks: 50 each
    assert (w.work_words, w.span_words, w.serial_words) == (110, 60, 10)
    work_span.phase(w, np.array([7]), np.array([0]))  # one task: its whole work is on the path
    assert (w.work_words, w.span_words) == (117, 67)


def test_one_task_span_is_work_and_two_tasks_share_a_wide_tree():
    serial, rows1, _ = _scavenge(1)
    assert serial.work_words == serial.span_words == rows1[0] > 0
    assert f"work={serial.work_words} span={serial.span_words} serial=0" in serial.nvp  # a scavenge: one job
    two, rows2, _ = _scavenge(2)
    assert two.work_words == sum(rows2) and min(rows2) > 0, rows2  # both tasks drained part of the tree
    assert two.span_words == max(rows2) < two.work_words
    assert abs(two.work_words - serial.work_words) <= 0.03 * serial.work_words, (two.work_words, serial.work_words)
    assert two.work_words / two.span_words > 1.5  # about 2: the drain split in slices


def test_raced_copies_count_as_work_and_span_stays_below_it():
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=8 * PAGE,
                                                      max_old_space_size=4 * MiB) as m:
        _graph(m, random.Random(11), 400)
        serial = m.iso.gc(minor=True)  # the same graph, one task: no race
    raced, rows, lost = _scavenge(2, race=True)
    assert raced.cas_failures > 0 and lost > 0
    assert raced.work_words == sum(rows)
    assert raced.work_words - serial.work_words >= lost  # the losers' copies (and the roots both tasks took)
    assert raced.span_words == max(rows) <= raced.work_words


def _mark_compact(tasks: int) -> GcEvent:
    with small_machine() as machine, mirrored_isolate(machine, semi_space_size=4 * PAGE,
                                                      max_old_space_size=4 * MiB) as m:
        _tree(m, 512, globals_=6)
        m.gc()  # promoted: the trees fill several old pages
        m.iso.testing(scavenge_tasks=tasks, force_compaction=True)
        ev = m.iso.gc()  # every old page a candidate: evacuation and pointer updating have work for two
        m.sync()
        m.check_graph()
        assert ev.compacted > 0
        return ev


def test_mark_compact_adds_serial_parts_and_parallel_phases():
    serial = _mark_compact(1)
    assert serial.work_words == serial.span_words > serial.serial_words > 0  # roots, young promotion, sweeping
    two = _mark_compact(2)
    assert two.span_words < two.work_words
    assert abs(two.work_words - serial.work_words) <= 0.03 * serial.work_words, (two.work_words, serial.work_words)
    # marking (one task in one process: its job needs helper cores), its roots, the young promotion
    # and sweeping stay the main's: far from 2
    assert two.work_words / two.span_words < 1.9
