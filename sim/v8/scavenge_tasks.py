"""A scavenge's tasks as Python sees them: V8's Scavenger (one per task, `src/heap/scavenger.cc`),
the part of it that is not the kernel: claiming root items, refilling the promotion LAB, moving
segments between the task and the global pool, logging LABs.

A task's kernel state is its row of `gc_task` (scavenge_kernels.py's ctr, lab, st), so that a task
is the same whether it runs on the main thread or on a helper core (scavenge_job.py), and a dead
helper's progress can be read by the main. Root work is split into items (gc_job.py's gc_item,
V8's PageScavengingItem and the root-set items): a run of local handles, a run of global handles,
or a run of page slots whose OLD_TO_NEW slots are visited; a task claims one (TryAcquire), runs the
kernel over it to the end of its phase, and claims the next; the drain follows.

`Shared` holds what the tasks of one process share (the kernel's constants and array arguments);
`Task.step` runs the task until its roots are done (stop PH_DRAIN) or its work is (PH_DONE);
`run_tasks` lets several tasks take turns in one process (the parallel kernel's test, and the
serial scavenge with one task). The promotion LAB is refilled under the isolate's `gcalloc` lock,
through iso_top's old-space LAB as scratch (old_space.refill works there), since tasks on other
cores refill at the same time; each LAB taken is logged in gc_lablog (gc_job.log_lab).

Owns nothing shared but what its task row and its log hold; touches old space's free list and
pages (under gcalloc), the worklists' pool (under its lock), the root arrays (through the kernel).
"""

from __future__ import annotations

import time

import numpy as np

from memsim.sim.errors import ResourceExhausted
from memsim.sim.v8 import gc_job, old_space
from memsim.sim.v8 import scavenge_kernels as k
from memsim.sim.v8 import worklist as wl
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import CHUNK_HEADER, NITEM, OLD_TO_NEW, T_OLD_LIMIT, T_OLD_TOP

IT_LOCALS, IT_GLOBALS, IT_PAGES = range(3)  # gc_item kinds: a run of hs_slot, of gh_slot, of page slots
HANDLES_PER_ITEM = 1024
_PHASE = {IT_LOCALS: k.PH_LOCALS, IT_GLOBALS: k.PH_GLOBALS, IT_PAGES: k.PH_REMEMBERED}


def root_items(h: HeapContext) -> list[tuple[int, int, int]]:
    """The scavenge's root items (kind, lo, hi): handles in runs of HANDLES_PER_ITEM (more if the table is
    large), then the page slots with OLD_TO_NEW slots, one page per item while they fit."""
    a, i = h.a, h.iso
    items: list[tuple[int, int, int]] = []
    for kind, n in ((IT_LOCALS, int(a.hs_top[i])), (IT_GLOBALS, int(np.flatnonzero(a.gh_used[i]).max(initial=-1)) + 1)):
        step = max(HANDLES_PER_ITEM, -(-n // (NITEM // 4)))
        items += [(kind, lo, min(n, lo + step)) for lo in range(0, n, step)]
    pages = np.flatnonzero(a.pg_slots[i, :, OLD_TO_NEW] > 0)
    per = max(1, -(-len(pages) // max(1, NITEM - len(items))))
    items += [(IT_PAGES, int(pages[j]), int(pages[min(len(pages), j + per) - 1]) + 1)
              for j in range(0, len(pages), per)]
    return items


class Shared:
    """What a process's tasks of one scavenge share: the constants, the kernel's heap arguments, and
    whether the pool ever dropped a segment (worklist.py's overflow)."""

    def __init__(self, h: HeapContext, p: np.ndarray, every_item: bool = False):
        a, i = h.a, h.iso
        self.h, self.p = h, p
        self.heap_args = (h.dmap.words, a.v8_dm[i], a.v8_slots[OLD_TO_NEW], a.pg_slots[i].reshape(-1),
                          a.pg_allocated[i], a.ext_mark[i])
        self.no_rs = np.zeros(0, dtype=np.int64)
        self.overflowed = False
        self.every_item = every_item  # the race hook: every task takes every item (legal: updates are idempotent)


class Task:
    """One task of a scavenge, its kernel state in its gc_task row."""

    def __init__(self, shared: Shared, task: int, fresh: bool = True):
        h = shared.h
        self.sh, self.h, self.task = shared, h, task
        self.wl = h.worklist
        self.ctr, self.lab, self.st = k.task_row(h.a.gc_task, h.iso, task)
        if fresh:
            self.ctr[:] = self.lab[:] = self.st[:] = 0
        self.lists = (h.top, self.lab, self.wl.seg, self.wl.meta, self.wl.local(task))
        self.labs: list[tuple[int, int]] = []  # the task's promotion LABs, closed: (start, end)
        self.lab_start = 0
        self.item = -1
        self.gen = -1  # a helper's: the job's generation it joined (gc_job.join_gen)
        self.next_item = 0  # with every_item: this task's own cursor
        a, i = h.a, h.iso
        self.roots = (a.hs_slot[i, :0], a.gh_slot[i, :0], a.gh_used[i, :0], shared.no_rs)  # hs, gh, used, rs

    def _claim(self) -> bool:
        """Claim the next root item and aim the kernel at it; False when none is left."""
        h, a, i = self.h, self.h.a, self.h.iso
        if self.sh.every_item:
            n = int(a.gc_job[i, gc_job.J_ITEMS])
            self.item = self.next_item if self.next_item < n else -1
            self.next_item += 1
        else:
            self.item = gc_job.claim(h, self.task)
        if self.item < 0:
            return False
        kind, lo, hi = gc_job.item(h, self.item)
        hs, gh, used = a.hs_slot[i, :0], a.gh_slot[i, :0], a.gh_used[i, :0]
        rs = self.sh.no_rs
        if kind == IT_LOCALS:
            hs = a.hs_slot[i, lo:hi]
        elif kind == IT_GLOBALS:
            gh, used = a.gh_slot[i, lo:hi], a.gh_used[i, lo:hi]
        else:
            ps = h.g.page_size
            pages = lo + np.flatnonzero(a.pg_slots[i, lo:hi, OLD_TO_NEW] > 0)
            parts = [h.rset.slots(OLD_TO_NEW, h.bounds.page(int(s)), ps) for s in pages]
            rs = np.concatenate(parts).astype(np.int64) if parts else self.sh.no_rs
        self.roots = (hs, gh, used, rs)
        self.st[k.S_PHASE], self.st[k.S_I] = _PHASE[kind], 0
        return True

    def step(self, stop: int) -> int:
        """Run the task to phase `stop` (PH_DRAIN: its share of the roots; PH_DONE: all its work):
        PAUSED or DONE there, LOCAL_EMPTY when its segments are empty and there is nothing to steal,
        YIELD after a slice (P_SLICE), RACE_PAUSE or PARKED for the test hooks."""
        sh = self.sh
        while True:
            if self.st[k.S_PHASE] < k.PH_DRAIN:
                if self.item < 0 and not self._claim():
                    self.st[k.S_PHASE], self.st[k.S_I] = k.PH_DRAIN, 0
                    continue
                code = k.run(*sh.heap_args, *self.roots, *self.lists, sh.p, self.st, self.ctr,
                             int(self.st[k.S_PHASE]) + 1)
                if code == k.PAUSED:  # the item is done; the roots stage goes on until no item is left
                    if not sh.every_item:
                        gc_job.finish(self.h, self.item)
                    self.item = -1
                    self.st[k.S_PHASE] = k.PH_LOCALS
                    continue
            elif stop <= k.PH_DRAIN:
                return k.PAUSED
            else:
                code = k.run(*sh.heap_args, *self.roots, *self.lists, sh.p, self.st, self.ctr, stop)
            if code in (k.DONE, k.RACE_PAUSE, k.YIELD, k.PARKED):
                return code
            if code == k.LOCAL_EMPTY:
                if not (self.wl.steal(self.task, wl.WL_COPIED) or self.wl.steal(self.task, wl.WL_PROMOTED)):
                    return code
                self.ctr[k.K_STEALS] += 1
                continue
            self.unblock(code)

    def rescan(self, ranges: np.ndarray) -> None:
        """The rescan of `ranges` (scavenge_kernels.rescan), run by this task alone."""
        st = np.zeros(k.NST, dtype=np.int64)
        while (code := k.rescan(*self.sh.heap_args, *self.lists, self.sh.p, ranges, st, self.ctr)) != k.DONE:
            if code == k.RACE_PAUSE:
                continue
            self.st[k.S_NEED], self.st[k.S_FULL] = st[k.S_NEED], st[k.S_FULL]
            st[k.S_NEED] = st[k.S_FULL] = 0
            st[k.S_OLD_FULL] = self.st[k.S_OLD_FULL]
            self.unblock(code)
            st[k.S_OLD_FULL] = self.st[k.S_OLD_FULL]

    def promotion_labs(self) -> list[tuple[int, int]]:
        """Every promotion LAB of this scavenge, the open one up to its top."""
        return self.labs + ([(self.lab_start, int(self.lab[k.L_OLD_TOP]))] if self.lab_start else [])

    def push(self, obj: int) -> None:
        """Push `obj` on the task's own list for its space (publishing a full segment first)."""
        lst = wl.WL_COPIED if self.sh.p[k.P_TO_LO] <= obj < self.sh.p[k.P_TO_HI] else wl.WL_PROMOTED
        if not wl.room(self.wl.meta, self.wl.local(self.task), lst) and not self.wl.publish(self.task, lst):
            self.sh.overflowed = True
        wl.push(self.wl.seg, self.wl.meta, self.wl.local(self.task), lst, obj)

    def publish_for_idle(self) -> None:
        """Share both lists' push segments, full or not (another task waits with nothing to do)."""
        for lst in range(wl.NLIST):
            if not self.wl.publish(self.task, lst):
                self.sh.overflowed = True

    def unblock(self, code: int) -> None:
        """Do what the kernel stopped for, so that it can retry the same slot."""
        if code == k.TO_SPACE_FULL:
            # V8 dies here too (FatalProcessOutOfMemory "Scavenger: semi-space copy"): the heap
            # is half copied, so the isolate is not trusted again (isolate_table's recovery)
            raise ResourceExhausted("Scavenger: semi-space copy failed: to-space and old space are both "
                                    "full - JavaScript heap out of memory")
        if code == k.LOCAL_FULL:
            lst = int(self.st[k.S_FULL]) - 1
            self.st[k.S_FULL] = 0
            if not self.wl.publish(self.task, lst):
                self.sh.overflowed = True
            return
        size = int(self.st[k.S_NEED])
        self.st[k.S_NEED] = 0
        self.labs = self.promotion_labs()
        closed_top = int(self.lab[k.L_OLD_TOP])
        h, lab = self.h, self.lab
        assert h.jobs.gcalloc is not None
        with h.jobs.gcalloc:  # tasks on other cores refill too: old space's free list and pages are shared
            h.top[T_OLD_TOP], h.top[T_OLD_LIMIT] = lab[k.L_OLD_TOP], lab[k.L_OLD_LIMIT]  # old_space works there
            try:
                ok = old_space.refill(h, size)  # gives the task's LAB back, takes a new one
            except ResourceExhausted:  # the machine's frame pool cannot give a page
                ok = False
            lab[k.L_OLD_TOP], lab[k.L_OLD_LIMIT] = h.top[T_OLD_TOP], h.top[T_OLD_LIMIT]
            h.top[T_OLD_TOP] = h.top[T_OLD_LIMIT] = 0
        self.lab_start = int(lab[k.L_OLD_TOP]) if ok else 0
        if ok:
            gc_job.log_lab(h, self.task, self.lab_start, closed_top)
        else:
            self.st[k.S_OLD_FULL] = 1  # promotion fails from now on: copy within new space

    def park(self, seconds: float) -> None:
        """The P_PARK hook stopped after a won CAS: wait (to be killed) up to `seconds`, then push what
        was undone. A main that dies meanwhile ends the wait (the helper then leaves, as from any slice)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and gc_job.main_alive(self.h, self.task, self.gen):
            time.sleep(0.01)
        parked, self.st[k.S_PARKED] = int(self.st[k.S_PARKED]), 0
        self.push(parked)
        self.sh.p[k.P_PARK] = 0


def run_tasks(sh: Shared, tasks: list[Task], stop: int) -> None:
    """Take turns until every task reached phase `stop`; for PH_DONE, until no task has work, the
    pool is empty, and any overflow has been rescanned. One task is V8's --no-parallel-scavenge;
    several in one process, each running until its next stop, are the parallel kernel's test (the
    race hook stops every copy before its CAS, so the next task races it; the order of turns flips
    every round, so that each task wins some races). With a slice (P_SLICE) a task yields between
    slices, and one that yields while another found nothing publishes its segments for it."""
    turn = 0
    w = tasks[0].wl
    while True:
        turn += 1
        order = tasks if turn % 2 else tasks[::-1]
        codes = [t.step(stop) for t in order]
        if k.RACE_PAUSE in codes:
            continue
        if stop < k.PH_DONE:
            return
        if k.YIELD in codes:  # a slice (P_SLICE) ended with work left: share it if a task found none
            if k.LOCAL_EMPTY in codes and not (w.global_size(wl.WL_COPIED) or w.global_size(wl.WL_PROMOTED)):
                for t, code in zip(order, codes, strict=True):
                    if code == k.YIELD:
                        t.publish_for_idle()  # as scavenge_job.run_main does for an idle helper
            continue
        if w.global_size(wl.WL_COPIED) or w.global_size(wl.WL_PROMOTED):
            continue  # published after its finder went idle
        if not sh.overflowed:
            break
        sh.overflowed = False
        close_new_labs(sh, tasks)  # to-space walkable: every LAB's tail a filler or given back
        tasks[0].rescan(np.array([(sh.p[k.P_TO_LO] + CHUNK_HEADER, -1)]
                                 + [r for t in tasks for r in t.promotion_labs()], dtype=np.int64).reshape(-1, 2))
    for t in tasks:
        t.st[k.S_PHASE] = k.PH_DONE


def close_new_labs(sh: Shared, tasks: list[Task]) -> None:
    for t in tasks:
        k.close_new_lab(sh.heap_args[0], sh.heap_args[1], sh.h.top, t.lab, sh.p)
