"""Segmented worklists shared by a collection's tasks: V8's `src/heap/base/worklist.h`
(`Worklist<EntryType, SegmentSize>` and its `Local`), laid out in shared memory so that tasks on
different cores (processes) exchange work.

Owns three arrays per isolate (`worklist_specs`):

    wl_seg    (I, NSEG, SEG) int64   segments of SEG entries (an entry is an object's address, never 0)
    wl_meta   (I, NSEG, 2) int64     per segment: M_NEXT (the next segment in its list, -1 none), M_FILL
    wl_head   (I, NLIST + 1, 2) i64  per list: H_TOP (its first global segment, -1 none), H_SIZE
                                     (segments in it); row FREE_LIST: the unused segments
    wl_local  (I, MAX_TASKS, NLIST, 2) per task and list: L_PUSH, L_POP (its private segments)

As in V8, a task pushes into and pops from its two private segments without any lock (the njit
functions `room`, `push`, `pop`, called inside the collectors' kernels); only a whole segment
moves between a task and the global pool (`Worklist.publish`, `steal`), and those edits take the
pool's mutex, here the machine lock `v8/isolate/<i>/worklist` (V8's `Worklist::Push(Segment*)`
and `Pop(Segment**)` take a `v8::base::MutexGuard`). It is a leaf: nothing is taken while it is
held. Each edit writes a segment's M_NEXT before the H_TOP that makes it reachable, so a process
killed mid-edit leaves the list it found (the kernel releases the lock).

Unlike V8's, which mallocs segments, the pool is fixed (NSEG per isolate). When no free segment is
left, `publish` drops the full segment's entries and says so; the collector then finds that work
again by walking what it copied (scavenger.py's overflow rescan, as V8's marker once refilled an
overflowed marking deque by walking the heap).

A second pool of the same shape, `wm_*` (`marking_specs`), holds the major GC's marking worklist
(V8's MarkingWorklists, a Worklist of their own beside the scavenger's): its one list is
WL_MARKING, and it outlives a call, since an incremental marking cycle spans many (a scavenge
resets only the `wl_*` pool). `Worklist` works on either pool; the lists, segments and tasks are
read from the arrays' shapes.

Entries are pushed by the task that owns the local segments; `pop` takes the newest first (see
there why not V8's order) and says "empty" only when both segments are, so that the caller steals
a global segment or, with none left, is done.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np

from memsim.sim.machine.shm import ArraySpec
from memsim.sim.v8.jit import njit_kernel

SEG = 256  # entries per segment (V8's kScavengerCopiedListSegmentSize ... are 256 or 64)
NSEG = 128  # segments per isolate
MAX_TASKS = 8  # V8's kMaxScavengerTasks
WL_COPIED, WL_PROMOTED = 0, 1  # the scavenger's copied list and promotion list (V8's CopiedList, PromotionList)
NLIST = 2
WL_MARKING = 0  # the marking pool's one list (V8's MarkingWorklists::shared_, main thread only here)
NSEG_MARKING = 64  # the marking pool's segments per isolate; an overflow is rescanned (marking.py)
FREE_LIST = NLIST  # wl_head's row of unused segments
M_NEXT, M_FILL = 0, 1
H_TOP, H_SIZE = 0, 1
L_PUSH, L_POP = 0, 1


def worklist_specs(isolates: int, prefix: str = "wl", nseg: int = NSEG, nlist: int = NLIST) -> list[ArraySpec]:
    return [ArraySpec(f"{prefix}_seg", "int64", (isolates, nseg, SEG)),
            ArraySpec(f"{prefix}_meta", "int64", (isolates, nseg, 2)),
            ArraySpec(f"{prefix}_head", "int64", (isolates, nlist + 1, 2)),
            ArraySpec(f"{prefix}_local", "int64", (isolates, MAX_TASKS, nlist, 2))]


def marking_specs(isolates: int) -> list[ArraySpec]:
    """The marking pool (`wm_*`): one list, WL_MARKING."""
    return worklist_specs(isolates, "wm", NSEG_MARKING, 1)


@dataclass
class WorklistArrays:
    wl_seg: np.ndarray
    wl_meta: np.ndarray
    wl_head: np.ndarray
    wl_local: np.ndarray

    @classmethod
    def from_region(cls, region: dict[str, np.ndarray], prefix: str = "wl") -> WorklistArrays:
        return cls(*(region[f"{prefix}_{n}"] for n in ("seg", "meta", "head", "local")))


@njit_kernel
def room(meta: np.ndarray, local: np.ndarray, lst: int) -> bool:
    """The task's push segment of list `lst` can take one more entry."""
    return meta[local[lst, L_PUSH], M_FILL] < SEG


@njit_kernel
def push(seg: np.ndarray, meta: np.ndarray, local: np.ndarray, lst: int, value: int) -> None:
    """Append to the task's push segment (the caller checked `room`)."""
    s = local[lst, L_PUSH]
    f = meta[s, M_FILL]
    seg[s, f] = value
    meta[s, M_FILL] = f + 1


@njit_kernel
def pop(seg: np.ndarray, meta: np.ndarray, local: np.ndarray, lst: int) -> int:
    """The task's next entry of list `lst`, or 0 if both its segments are empty: the newest entry
    of the push segment first, then the pop segment (a stolen one). V8's Local::Pop takes the pop
    segment first and swaps the push segment in when it is empty, which drains level by level: a
    tree's whole frontier waits at once (32,768 entries for the leaves of a 65,535-node tree), more
    than this fixed pool holds. Newest first keeps the wait to about depth x fan-out entries."""
    s = local[lst, L_PUSH]
    if meta[s, M_FILL] == 0:
        s = local[lst, L_POP]
        if meta[s, M_FILL] == 0:
            return 0
    f = meta[s, M_FILL] - 1
    meta[s, M_FILL] = f
    return seg[s, f]


class Worklist:
    """One isolate's worklists: the pool edits, each under the pool's lock."""

    def __init__(self, a: WorklistArrays, iso: int, lock: AbstractContextManager[object]):
        self.seg, self.meta, self.head = a.wl_seg[iso], a.wl_meta[iso], a.wl_head[iso]
        self.locals = a.wl_local[iso]
        self.lock = lock
        self.nlist = self.head.shape[0] - 1
        self.free_list = self.nlist  # the head row of unused segments (FREE_LIST in the scavenger's pool)

    def local(self, task: int) -> np.ndarray:
        """The task's (NLIST, 2) row of private segments, for the kernels."""
        return self.locals[task]

    def reset(self, tasks: int) -> None:
        """Every segment free, every list empty, and each of `tasks` tasks given its two segments per
        list (at the start of a collection, before any task runs). A task always holds both, as a
        V8 Local does, so that it can push even when the pool has no free segment left."""
        nseg, free = self.seg.shape[0], self.free_list
        with self.lock:
            self.meta[:, M_FILL] = 0
            self.meta[:, M_NEXT] = np.arange(1, nseg + 1)
            self.meta[nseg - 1, M_NEXT] = -1
            self.head[:, :] = (-1, 0)
            self.head[free] = (0, nseg)
            self.locals[:, :, :] = -1
            for t in range(tasks):
                for lst in range(self.nlist):
                    self.locals[t, lst, L_PUSH] = self._take(free)
                    self.locals[t, lst, L_POP] = self._take(free)

    def _take(self, lst: int) -> int:
        """Unlink the first segment of `lst` (-1 if none); the lock is held."""
        s = int(self.head[lst, H_TOP])
        if s >= 0:
            self.head[lst, H_TOP] = self.meta[s, M_NEXT]
            self.head[lst, H_SIZE] -= 1
        return s

    def _give(self, lst: int, s: int) -> None:
        """Link segment `s` first in `lst`: its M_NEXT before the H_TOP that makes it reachable."""
        self.meta[s, M_NEXT] = self.head[lst, H_TOP]
        self.head[lst, H_TOP] = s
        self.head[lst, H_SIZE] += 1

    def publish(self, task: int, lst: int) -> bool:
        """Move the task's push segment of `lst` to the global pool and give it an empty one
        (Local::PublishPushSegment). False if the pool has no free segment: the entries are then
        dropped, the segment emptied for reuse, and the caller must find that work another way."""
        local = self.locals[task, lst]
        with self.lock:
            s = int(local[L_PUSH])
            if self.meta[s, M_FILL] == 0:
                return True
            fresh = self._take(self.free_list)
            if fresh < 0:
                self.meta[s, M_FILL] = 0
                return False
            self.meta[fresh, M_FILL] = 0
            local[L_PUSH] = fresh
            self._give(lst, s)
            return True

    def steal(self, task: int, lst: int) -> bool:
        """Make a global segment of `lst` the task's pop segment, its empty one going back to the
        free list (Local::StealPopSegment); False if the global pool of `lst` is empty."""
        local = self.locals[task, lst]
        with self.lock:
            s = self._take(lst)
            if s < 0:
                return False
            old = int(local[L_POP])
            self.meta[old, M_FILL] = 0  # empty: the caller steals when `pop` found both segments so
            self._give(self.free_list, old)
            local[L_POP] = s
            return True

    def global_size(self, lst: int) -> int:
        """Segments of `lst` in the global pool (read without the lock: a hint, as V8's size_)."""
        return int(self.head[lst, H_SIZE])

    def local_empty(self, task: int) -> bool:
        """Both private segments of every list are empty."""
        return bool((self.meta[self.locals[task].ravel(), M_FILL] == 0).all())

    def adopt(self, task: int) -> None:
        """A dead task's private segments that hold entries go to the global pool (the task is gone,
        so it gets none back); the caller rescans whatever a death mid-edit may have dropped."""
        with self.lock:
            for lst in range(self.nlist):
                for which in (L_PUSH, L_POP):
                    s = int(self.locals[task, lst, which])
                    if s >= 0 and self.meta[s, M_FILL] > 0:
                        self.locals[task, lst, which] = -1
                        self._give(lst, s)

    def attach(self, task: int) -> bool:
        """Give a task that joins a running collection its two empty segments per list, from the free
        list (a concurrent marker joining a cycle: V8 makes a Local per job task); False, taking
        none, if the free list is short."""
        with self.lock:
            if self.head[self.free_list, H_SIZE] < 2 * self.nlist:
                return False
            for lst in range(self.nlist):
                for which in (L_PUSH, L_POP):
                    s = self._take(self.free_list)
                    self.meta[s, M_FILL] = 0
                    self.locals[task, lst, which] = s
            return True

    def detach(self, task: int) -> None:
        """A task leaving a collection that goes on without it (Local::Publish, then the Local's end):
        its segments that hold entries go to the global pool, its empty ones back to the free list."""
        with self.lock:
            for lst in range(self.nlist):
                for which in (L_PUSH, L_POP):
                    s = int(self.locals[task, lst, which])
                    if s < 0:
                        continue
                    self.locals[task, lst, which] = -1
                    self._give(lst if self.meta[s, M_FILL] > 0 else self.free_list, s)
