"""The segmented worklists (sim/v8/worklist.py, V8's heap/base/worklist.h) on a real machine's
shared arrays and its `v8/isolate/0/worklist` lock:

- one task: LIFO within its segments, a published segment comes back by stealing, the pool's
  free list gives every segment back at the end;
- overflow: with every segment taken, `publish` drops the entries and says so;
- two forked processes each push 5 x 10^4 tagged items, publishing every full segment and
  stealing from the pool between pushes; every item is popped exactly once (a shared count per
  item, fetch-added). The control runs the same with a pool whose edits take no lock and are
  stretched as a preempted process would stretch them: items are lost or popped twice, so the
  first test can fail.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import time

import numpy as np

from memsim.sim.system import Machine
from memsim.sim.v8 import worklist as wl
from memsim.sim.v8.jit import atomic_add, njit_kernel
from memsim.sim.v8.worklist import Worklist

ITEMS = 50_000  # per process


def _worklist(machine: Machine) -> Worklist:
    return Worklist(machine.v8(0, machine.heap(0)).a.worklists, 0, machine.locks(1)["v8/isolate/0/worklist"])


def test_one_task_pushes_publishes_steals_and_frees(machine):
    w = _worklist(machine)
    w.reset(tasks=1)
    local = w.local(0)
    items = list(range(8, 8 * (wl.SEG + 10), 8))
    for v in items:
        if not wl.room(w.meta, local, wl.WL_COPIED):
            assert w.publish(0, wl.WL_COPIED)
        wl.push(w.seg, w.meta, local, wl.WL_COPIED, v)
    assert w.global_size(wl.WL_COPIED) == 1
    got = []
    while True:
        v = wl.pop(w.seg, w.meta, local, wl.WL_COPIED)
        if v == 0 and not w.steal(0, wl.WL_COPIED):
            break
        if v:
            got.append(v)
    assert got[:9] == items[-1:-10:-1]  # the unpublished tail first, newest first
    assert sorted(got) == items and w.local_empty(0) and w.global_size(wl.WL_COPIED) == 0
    assert w.head[wl.FREE_LIST, wl.H_SIZE] == wl.NSEG - 2 * wl.NLIST  # the task keeps its own segments


def test_publish_without_a_free_segment_drops_and_says_so(machine):
    w = _worklist(machine)
    w.reset(tasks=1)
    local = w.local(0)
    published = 0
    while True:
        while wl.room(w.meta, local, wl.WL_COPIED):
            wl.push(w.seg, w.meta, local, wl.WL_COPIED, 8)
        if not w.publish(0, wl.WL_COPIED):
            break
        published += 1
    assert published == wl.NSEG - 2 * wl.NLIST  # every segment but the task's own
    assert wl.room(w.meta, local, wl.WL_COPIED)  # emptied: the caller goes on pushing


@njit_kernel
def _push_some(w_seg, w_meta, local, v: int, n: int) -> int:
    """Push v, v+8, ... until n pushed or the push segment is full; how many were pushed."""
    k = 0
    while k < n and wl.room(w_meta, local, wl.WL_COPIED):
        wl.push(w_seg, w_meta, local, wl.WL_COPIED, v + 8 * k)
        k += 1
    return k


@njit_kernel
def _drain(w_seg, w_meta, local, seen: np.ndarray) -> None:
    while True:
        v = wl.pop(w_seg, w_meta, local, wl.WL_COPIED)
        if v == 0:
            return
        atomic_add(seen, (v >> 3) - 1, 1)


def _worker(w: Worklist, task: int, seen: np.ndarray, first: int) -> None:
    local = w.local(task)
    v, left = first, ITEMS
    while left:
        k = _push_some(w.seg, w.meta, local, v, left)
        v, left = v + 8 * k, left - k
        if left:
            assert w.publish(task, wl.WL_COPIED)
            if w.steal(task, wl.WL_COPIED):  # work on someone's segment: both pool edits race
                _drain(w.seg, w.meta, local, seen)
    for _ in range(4 * wl.NSEG):  # bounded: a pool corrupted by the control may hold a cycle
        _drain(w.seg, w.meta, local, seen)
        if not w.steal(task, wl.WL_COPIED):
            return


class _Unlocked(Worklist):
    """The can-fail double: pool edits with no lock, each stretched between its read and its write
    as a process preempted there would stretch it."""

    def _take(self, lst: int) -> int:
        s = int(self.head[lst, wl.H_TOP])
        time.sleep(20e-6)
        if s >= 0:
            self.head[lst, wl.H_TOP] = self.meta[s, wl.M_NEXT]
            self.head[lst, wl.H_SIZE] -= 1
        return s

    def _give(self, lst: int, s: int) -> None:
        self.meta[s, wl.M_NEXT] = self.head[lst, wl.H_TOP]
        time.sleep(20e-6)
        self.head[lst, wl.H_TOP] = s
        self.head[lst, wl.H_SIZE] += 1


def _two_processes(machine: Machine, w: Worklist) -> np.ndarray:
    shared = np.frombuffer(mmap.mmap(-1, (2 * ITEMS + 1) * 8), dtype=np.int64)  # shared with the children
    seen, start = shared[:-1], shared[-1:]
    w.reset(tasks=2)
    _drain(w.seg, w.meta, w.local(0), seen)  # compiled before the fork
    pids = []
    for task in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                while start[0] == 0:  # the start line: both processes run at once
                    pass
                _worker(w, task, seen, 8 * (1 + task * ITEMS))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    start[0] = 1
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    return seen.copy()


def test_two_processes_see_every_item_exactly_once(machine):
    seen = _two_processes(machine, _worklist(machine))
    assert (seen == 1).all(), (int((seen == 0).sum()), int((seen > 1).sum()))


def test_control_without_the_pool_lock_loses_or_repeats_items(machine):
    unlocked = _Unlocked(machine.v8(0, machine.heap(0)).a.worklists, 0, contextlib.nullcontext())
    for _ in range(3):
        try:
            seen = _two_processes(machine, unlocked)
        except AssertionError:  # a child tripped over the corrupted pool: also a failure of the pool
            return
        if not (seen == 1).all():
            return
    raise AssertionError("the unlocked pool never lost or repeated an item")
