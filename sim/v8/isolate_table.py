"""The isolates of the machine: create, destroy, enter (V8's `v8::Isolate::New`, `Dispose` and
`v8::Locker`), leases, and what a core finds when its predecessor in an isolate died.

`V8` is one core's view (made by `Machine.v8(core, heap)`), like `VM` and `Keyspace`. An isolate is
single-threaded, as a JavaScript isolate is: `enter(iso)` takes its locker (`v8/isolate/<i>`, a
machine lock, so any core may run any isolate, one at a time) and yields an `Isolate` for the
call. Isolates on different cores run at once, sharing only the machine's frame pool and its
allocator.

Create (under `v8/isolates`): claim a FREE row (CREATING), make its VM address space
(SYSTEM_ISOLATE: clients may read it, not change it), map the three heap regions
(spaces.py), commit both semispaces, then mark the row LIVE. Destroy: free the backing stores,
destroy the space (which releases its pins and frames), clear the rows, FREE.

Recovery. The phase word (`iso_phase`) is IDLE whenever the locker is free: a holder sets
MUTATOR on entry, a GC phase while collecting, and IDLE before it lets go. A locker that finds
another phase knows its predecessor died holding it (the kernel released the dead process's
lock, as a robust mutex reports EOWNERDEAD). A mutator operation in flight leaves at most an
object allocated but not yet referenced, so the heap is verified (verifier.py) and, if whole,
used; an incremental marking step, or a mutator operation while a marking cycle runs, drops the
cycle (incremental_marking.abort: marks, worklist, flags) and is then verified the same way; a
collection in flight has objects half copied and forwarding words in from-space, and is
not redone: the isolate becomes LOST, its backing stores, pins and space are released, and its
row answers FAILED_PRECONDITION naming what happened until it is destroyed or its lease ends.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from memsim.sim.alloc.heap import Heap as AllocHeap
from memsim.sim.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from memsim.sim.machine.doorbell import Doorbells
from memsim.sim.machine.locks import LockTable
from memsim.sim.v8 import array_buffer_sweeper, concurrent_marking, gc_job, incremental_marking, new_space, verifier
from memsim.sim.v8.context import HeapContext, JobEnv
from memsim.sim.v8.direct_map import DirectMap
from memsim.sim.v8.handles import HandleTable
from memsim.sim.v8.isolate import Isolate
from memsim.sim.v8.layout import (
    C_CONCURRENT,
    C_CREATED_NS,
    C_FORCE_COMPACTION,
    C_GROWING,
    C_HELPERS,
    C_HOME,
    C_INCREMENTAL,
    C_LOST_CORE,
    C_LOST_PHASE,
    C_MARKING_BARRIER_OFF,
    C_MAX_OLD,
    C_OWNER,
    C_SEMI,
    C_SPACE,
    C_STEP_BYTES,
    C_VERIFY,
    CREATING,
    DESTROYING,
    FREE,
    IDLE,
    LIVE,
    LOST,
    M_STATE,
    MARKING_OFF,
    MC_MARK_STEP,
    MUTATOR,
    PHASE_NAMES,
    SPACE_BITS,
    STATE_NAMES,
    T_OLD_LIMIT_BYTES,
    V8Arrays,
    V8Geometry,
)
from memsim.sim.v8.remembered_set import RememberedSet
from memsim.sim.v8.spaces import SpaceBounds
from memsim.sim.v8.worklist import MAX_TASKS, Worklist
from memsim.sim.vm.layout import SYSTEM_ISOLATE
from memsim.sim.vm.vm import VM

MiB = 1 << 20
VERIFY_ENV = "MEMSIM_TEST_V8_VERIFY"  # test hook: every isolate verifies its heap after every collection
# test hook: every isolate makes every old page with live objects an evacuation candidate (C_FORCE_COMPACTION)
FORCE_COMPACTION_ENV = "MEMSIM_TEST_V8_FORCE_COMPACTION"
# test hooks for the wire's property runs (tests/server/test_v8_wire_properties.py): every isolate skips the
# marking barrier (C_MARKING_BARRIER_OFF, the control that must fail), or marks this many bytes a step
MARKING_BARRIER_OFF_ENV = "MEMSIM_TEST_V8_MARKING_BARRIER_OFF"
STEP_BYTES_ENV = "MEMSIM_TEST_V8_STEP_BYTES"
DEFAULT_SEMI_SPACE = 1 * MiB
DEFAULT_MAX_OLD_SPACE = 8 * MiB


@dataclass(frozen=True)
class IsolateInfo:
    id: int
    state: str
    space: int
    semi_space_size: int
    max_old_space_size: int
    owner: int
    holder: int  # the core inside its locker, -1 if none
    home: int  # the core that created it
    gc_helpers: int = 0  # scavenge helpers (layout.py's C_HELPERS)
    incremental_marking: bool = False  # major GCs mark incrementally (iso_cfg C_INCREMENTAL)
    concurrent_marking: bool = False  # helper cores mark while the mutator runs (iso_cfg C_CONCURRENT)


class V8:
    def __init__(self, a: V8Arrays, g: V8Geometry, words: np.ndarray, data: np.ndarray, vm: VM,
                 alloc: AllocHeap, locks: LockTable, core: int, doorbells: Doorbells | None = None):
        self.a, self.g, self.words, self.data = a, g, words, data
        self.vm, self.alloc, self.core = vm, alloc, core
        self.table_lock = locks["v8/isolates"]
        self.lockers = [locks[f"v8/isolate/{i}"] for i in range(g.isolates)]
        self.pool_locks = [locks[f"v8/isolate/{i}/worklist"] for i in range(g.isolates)]
        self.gcalloc = [locks[f"v8/isolate/{i}/gcalloc"] for i in range(g.isolates)]
        cores = doorbells.cores if doorbells is not None else 0
        self.gc_locks = [locks[f"v8/gc/{c}"] for c in range(cores)]
        self.locks, self.doorbells = locks, doorbells

    # -- views -------------------------------------------------------------------------------

    def context(self, iso: int, client: int = 0) -> HeapContext:
        a, g = self.a, self.g
        cfg = a.iso_cfg[iso]
        dmap = DirectMap(self.words, self.data, a.v8_dm[iso], g,
                         [a.v8_markbits, a.v8_blackbits, a.v8_slots[0], a.v8_slots[1]])
        return HeapContext(iso=iso, a=a, g=g, dmap=dmap,
                           bounds=SpaceBounds(int(cfg[C_SEMI]), int(cfg[C_MAX_OLD]), g.page_size),
                           vm=self.vm, alloc=self.alloc, handles=HandleTable(a, iso),
                           rset=RememberedSet(a, iso, g, dmap), core=self.core, client=client,
                           worklist=Worklist(a.worklists, iso, self.pool_locks[iso]),
                           jobs=JobEnv(max(1, len(self.gc_locks)), self.doorbells, self.gc_locks, self.gcalloc[iso],
                                       self.locks))

    def _check_id(self, iso: int) -> None:
        if isinstance(iso, bool) or not isinstance(iso, int) or not 0 <= iso < self.g.isolates:
            raise NotFound(f"isolate {iso!r} does not exist (the machine has {self.g.isolates} isolate rows)")

    # -- create and destroy ------------------------------------------------------------------

    def create_isolate(self, semi_space_size: int = DEFAULT_SEMI_SPACE, max_old_space_size: int = DEFAULT_MAX_OLD_SPACE,
                       growing_factor: float = 0.0, owner: int = 0, lease: float = 0.0, now: float = 0.0,
                       gc_helpers: int = 0, incremental_marking: bool = False,
                       concurrent_marking: bool = False) -> int:
        ps = self.g.page_size
        for name, v in (("semi_space_size", semi_space_size), ("max_old_space_size", max_old_space_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < ps or v % ps:
                raise InvalidArgument(f"{name} {v!r} must be whole heap pages of {ps} bytes (v8_page_size), "
                                      f"at least one")
        if not isinstance(growing_factor, (int, float)) or not (growing_factor == 0 or 1.0 <= growing_factor <= 8.0):
            raise InvalidArgument(f"growing_factor {growing_factor!r} must be 0 (V8's dynamic factor) or 1..8")
        if isinstance(gc_helpers, bool) or not isinstance(gc_helpers, int) or not -1 <= gc_helpers <= MAX_TASKS - 1:
            raise InvalidArgument(f"gc_helpers {gc_helpers!r} must be -1 (V8's rule), 0 (serial) or 1..{MAX_TASKS - 1}")
        if not 0 <= owner < 1 << 63 or (owner and not 0 < lease < float("inf")):
            raise InvalidArgument(f"owner {owner} needs a positive, finite lease (got {lease})")
        b = SpaceBounds(semi_space_size, max_old_space_size, ps)
        if b.reservation > self.g.max_heap:
            raise InvalidArgument(f"an isolate of semi_space_size {semi_space_size} and max_old_space_size "
                                  f"{max_old_space_size} reserves {b.reservation} bytes, above the machine's "
                                  f"v8_max_heap {self.g.max_heap}")
        a = self.a
        with self.table_lock:
            free = np.flatnonzero(a.iso_state == FREE)
            if not free.size:
                raise ResourceExhausted(f"all {self.g.isolates} isolates are in use (v8_isolates)")
            iso = int(free[0])
            with self.lockers[iso]:
                a.iso_state[iso] = CREATING
                cfg = a.iso_cfg[iso]
                cfg[:] = 0
                cfg[C_SEMI], cfg[C_MAX_OLD] = semi_space_size, max_old_space_size
                cfg[C_GROWING] = int(growing_factor * 1000)
                cfg[C_HELPERS] = gc_helpers
                cfg[C_VERIFY] = int(bool(os.environ.get(VERIFY_ENV)))  # test hook: verify after every GC
                cfg[C_FORCE_COMPACTION] = int(bool(os.environ.get(FORCE_COMPACTION_ENV)))
                cfg[C_MARKING_BARRIER_OFF] = int(bool(os.environ.get(MARKING_BARRIER_OFF_ENV)))
                cfg[C_STEP_BYTES] = max(0, int(os.environ.get(STEP_BYTES_ENV) or 0))
                cfg[C_INCREMENTAL] = int(bool(incremental_marking))
                cfg[C_CONCURRENT] = int(bool(concurrent_marking))
                cfg[C_OWNER], cfg[C_HOME], cfg[C_CREATED_NS] = owner, self.core, time.monotonic_ns()
                cfg[C_SPACE] = -1  # no space yet: a failed create must not destroy space 0
                gc_job.reset(a.gc_job, iso)  # no job of the row's previous isolate is joined in this one
                a.gc_item[iso], a.gc_task[iso], a.gc_lablog[iso] = 0, 0, 0
                a.iso_lease[iso] = (lease, now + lease)
                try:
                    self._lay_out(iso, b)
                except BaseException:
                    try:
                        self._tear_down(iso)
                    finally:  # the row is free again whatever the teardown met
                        self._free_row(iso)
                    raise
                a.iso_phase[iso], a.iso_holder[iso] = IDLE, -1
                a.iso_state[iso] = LIVE
        return iso

    def _lay_out(self, iso: int, b: SpaceBounds) -> None:
        a, vm = self.a, self.vm
        a.v8_dm[iso] = -1
        for row in (a.pg_space, a.pg_allocated, a.pg_live, a.pg_lo_size, a.pg_slots, a.iso_top, a.iso_free,
                    a.ext_state, a.ext_mark, a.ext_addr, a.ext_len, a.iso_marking, a.tr_inc, a.tr_steps):
            row[iso] = 0
        HandleTable(a, iso).reset()
        sp = vm.create_space("multilevel", bits=SPACE_BITS, name=f"isolate-{iso}", system=SYSTEM_ISOLATE)
        a.iso_cfg[iso, C_SPACE] = sp
        vm.mmap(sp, 2 * b.semi, kind="heap", name="v8 new space", addr=b.new_base, guard=False)
        vm.mmap(sp, b.old_region, kind="heap", name="v8 old space", addr=b.old_base, guard=False)
        vm.mmap(sp, b.lo_region, kind="heap", name="v8 large object space", addr=b.lo_base, guard=False)
        h = self.context(iso)
        h.dmap.commit(vm, sp, b.new_base, 2 * b.semi)
        new_space.init_pages(h, b.semispace(0), to=True)
        new_space.init_pages(h, b.semispace(1), to=False)
        new_space.reset_to_space(h)
        # V8 starts the old generation's limit at half its maximum (Heap::ConfigureHeap,
        # initial_old_generation_size); the first mark-compact replaces it (heap_controller.py)
        h.top[T_OLD_LIMIT_BYTES] = b.max_old // 2
        h.tracer.reset(iso, heap_base=b.new_base)

    def _tear_down(self, iso: int) -> None:
        """Release everything an isolate holds (its row stays claimed; the caller says what it becomes)."""
        a = self.a
        concurrent_marking.pause(self.context(iso))  # no helper core marks frames about to be given back
        # a helper core still in the isolate's job writes its heap: it leaves before the heap's frames go
        # (whether the main died, or the isolate is destroyed, released or reaped with the job's row set)
        gc_job.wait_helpers_gone(self.context(iso))
        if a.ext_state[iso].any():
            array_buffer_sweeper.release_all(self.context(iso))
        committed = a.v8_dm[iso][a.v8_dm[iso] >= 0].astype(np.int64)
        if committed.size:
            self.context(iso).dmap.clear_bits(committed)
        a.v8_dm[iso] = -1
        sp = int(a.iso_cfg[iso, C_SPACE])
        if sp >= 0:
            with contextlib.suppress(NotFound, InvalidArgument, FailedPrecondition):
                self.vm.destroy_space(sp)  # may not exist yet (a create that failed early) or be gone
        a.iso_cfg[iso, C_SPACE] = -1
        a.pg_space[iso] = 0

    def _free_row(self, iso: int) -> None:
        a = self.a
        a.iso_cfg[iso, C_OWNER] = 0
        a.iso_phase[iso], a.iso_holder[iso] = IDLE, -1
        a.iso_state[iso] = FREE

    def destroy_isolate(self, iso: int) -> None:
        self.destroy_if_held(iso)

    def destroy_if_held(self, iso: int, owner: int | None = None, expired_at: float | None = None) -> bool:
        """Destroy the isolate; with `owner`, only if that owner still holds it, and with
        `expired_at`, only if its lease ran out before then, both checked under the locks (the
        VM's leases.destroy_if_held: a list made without them may name a row that has since been
        reaped and given to someone else). False if the checks fail; NotFound if it does not exist."""
        self._check_id(iso)
        a = self.a
        with self.table_lock, self.lockers[iso]:
            if a.iso_state[iso] not in (LIVE, LOST):
                raise NotFound(f"isolate {iso} does not exist")
            if owner is not None and int(a.iso_cfg[iso, C_OWNER]) != owner:
                return False
            if expired_at is not None and not a.iso_lease[iso, 1] < expired_at:
                return False
            try:
                if a.iso_state[iso] == LIVE:
                    a.iso_state[iso] = DESTROYING
                    self._tear_down(iso)
            finally:
                self._free_row(iso)
        return True

    # -- enter ---------------------------------------------------------------------------------

    @contextmanager
    def enter(self, iso: int, client: int = 0) -> Iterator[Isolate]:
        """Hold the isolate's locker for one call or batch; the Isolate is valid inside only."""
        self._check_id(iso)
        a = self.a
        with self.lockers[iso]:
            self._check_live(iso)
            if a.iso_phase[iso] != IDLE:
                self._recover(iso)
            a.iso_phase[iso], a.iso_holder[iso] = MUTATOR, self.core
            try:
                yield Isolate(self.context(iso, client))
            finally:
                if a.iso_phase[iso] not in (IDLE, MUTATOR):  # a collection failed part-way (and its error
                    with contextlib.suppress(FailedPrecondition):  # was reported, or caught by a batch)
                        self._recover(iso)
                if a.iso_state[iso] == LIVE:
                    a.iso_phase[iso] = IDLE
                a.iso_holder[iso] = -1

    def _check_live(self, iso: int) -> None:
        a = self.a
        state = int(a.iso_state[iso])
        if state == LIVE:
            return
        if state == LOST:
            raise FailedPrecondition(
                f"isolate {iso} was lost: core {int(a.iso_cfg[iso, C_LOST_CORE])} died (or failed) during "
                f"{PHASE_NAMES[int(a.iso_cfg[iso, C_LOST_PHASE])]} and the heap did not verify; it has been "
                f"released (destroy it to reuse the row)")
        raise FailedPrecondition(f"isolate {iso} does not exist ({STATE_NAMES[state]})")

    def _recover(self, iso: int) -> None:
        """The previous holder died (or a collection failed) in phase iso_phase: keep the heap if
        a mutator op was cut short and it verifies, else the isolate is LOST."""
        a = self.a
        phase = int(a.iso_phase[iso])
        if phase == MC_MARK_STEP or (phase == MUTATOR and a.iso_marking[iso, M_STATE] != MARKING_OFF):
            incremental_marking.abort(self.context(iso))  # a cycle cut short is dropped, not finished
            phase = MUTATOR
        if phase == MUTATOR:
            problem = verifier.problems(self.context(iso))
            if not problem:
                a.iso_phase[iso] = IDLE
                return
        a.iso_cfg[iso, C_LOST_PHASE] = phase
        a.iso_cfg[iso, C_LOST_CORE] = int(a.iso_holder[iso])
        self._tear_down(iso)  # after every helper of the dead main has left
        a.iso_state[iso] = LOST
        a.iso_phase[iso] = IDLE
        self._check_live(iso)

    # -- listing and leases --------------------------------------------------------------------

    def list_isolates(self) -> list[IsolateInfo]:
        a = self.a
        out = []
        for i in np.flatnonzero((a.iso_state == LIVE) | (a.iso_state == LOST)):
            cfg = a.iso_cfg[i]
            out.append(IsolateInfo(int(i), STATE_NAMES[int(a.iso_state[i])], int(cfg[C_SPACE]), int(cfg[C_SEMI]),
                                   int(cfg[C_MAX_OLD]), int(cfg[C_OWNER]), int(a.iso_holder[i]), int(cfg[C_HOME]),
                                   int(cfg[C_HELPERS]), bool(cfg[C_INCREMENTAL]),
                                   bool(cfg[C_CONCURRENT])))
        return out

    def owner(self, iso: int) -> int:
        self._check_id(iso)
        return int(self.a.iso_cfg[iso, C_OWNER])

    def release(self, owner: int) -> list[int]:
        """Destroy every isolate `owner` holds (its client closed or its lease was reaped)."""
        if not owner:
            return []
        gone = []
        for i in np.flatnonzero((self.a.iso_cfg[:, C_OWNER] == owner) & (self.a.iso_state != FREE)):
            with contextlib.suppress(NotFound):
                if self.destroy_if_held(int(i), owner):
                    gone.append(int(i))
        return gone

    def renew(self, owner: int, now: float) -> int:
        a = self.a
        rows = np.flatnonzero((a.iso_cfg[:, C_OWNER] == owner) & (a.iso_state != FREE)) if owner else np.zeros(0, int)
        for i in rows:
            a.iso_lease[i, 1] = now + a.iso_lease[i, 0]
        return len(rows)

    def expired(self, now: float) -> list[int]:
        """The isolates whose lease ran out before `now`: a lock-free test, so that each core's lease
        reaper looks every second and takes locks only when there is something to reap."""
        a = self.a
        return [int(i) for i in
                np.flatnonzero((a.iso_state != FREE) & (a.iso_cfg[:, C_OWNER] != 0) & (a.iso_lease[:, 1] < now))]

    def reap(self, now: float) -> list[int]:
        gone = []
        for i in self.expired(now):
            with contextlib.suppress(NotFound):
                if self.destroy_if_held(i, int(self.a.iso_cfg[i, C_OWNER]), expired_at=now):
                    gone.append(i)
        return gone
