"""The parallel job protocol (sim/v8/gc_job.py) driven in one process: a machine of three cores, each
core's V8 view joining or posting on the same isolate's gc_job row, one step at a time, so that the
interleavings a loaded host makes rare are made here on purpose.

- a task number is handed out once per job: a helper that left does not give its number (and the
  LAB and counters in its task row) to the next helper;
- a job is posted only when no helper of the previous one is counted; a helper of an earlier
  generation that leaves uncounts itself and touches no bit of the new job;
- a helper stalled after setting its bit names its core (its row claimed first), so the main
  probes its lock rather than timing it out;
- no helper joins while the main repairs dead helpers' work (the REPAIR state);
- a destroyed isolate's RUNNING job (its main died) does not survive into the isolate that reuses
  the row; a job of an isolate that is not LIVE is not joined; a helper's main is the process that
  posted its generation;
- a helper whose visit raises gives its work back and the scavenge fails: the isolate is LOST, as a
  serial scavenge that raised leaves it (without the fix the scavenge ended with a root item that
  nobody had scanned).

In one process every core's fcntl lock is this process's, and a probe of a lock it holds would
release it: the contexts that would probe run without a lock table (JobEnv.locks None).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from memsim.sim.errors import FailedPrecondition, ResourceExhausted
from memsim.sim.v8 import gc_job, scavenge_job
from memsim.sim.v8 import scavenge_kernels as k
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.layout import LIVE, LOST
from memsim.sim.v8.scavenge_tasks import Task
from tests.sim.v8.mirror import PAGE, small_machine, v8_of

P = np.zeros(k.NP, dtype=np.int64)
KIND = gc_job.KIND_SCAVENGE  # the kind every job here is posted as, and joined as


@contextlib.contextmanager
def three_cores() -> Iterator[tuple[object, int, list[HeapContext]]]:
    with small_machine(cores=3) as m:
        v8 = v8_of(m, 0)
        iso = v8.create_isolate(semi_space_size=4 * PAGE, max_old_space_size=64 * PAGE, gc_helpers=2)
        yield m, iso, [v8_of(m, c).context(iso) for c in range(3)]


def test_a_task_number_is_handed_out_once_per_job():
    with three_cores() as (_, _, (h0, h1, h2)):
        gc_job.post(h0, gc_job.KIND_SCAVENGE, 3, [], P)
        assert gc_job.join(h1, KIND) == 1
        gc_job.leave(h1, 1)
        assert gc_job.join(h2, KIND) == 2  # not 1 again: task 1's row holds the first helper's LAB and counters
        gc_job.leave(h2, 2)
        assert gc_job.join(h1, KIND) == -1 and gc_job.posted(h0.a.gc_job, 1) == []
        gc_job.end_main(h0)


def test_post_waits_for_the_previous_jobs_helper_and_a_stale_helper_uncounts_only_itself():
    with three_cores() as (_, _, (h0, h1, h2)):
        gc_job.post(h0, gc_job.KIND_SCAVENGE, 3, [], P)
        stale, gen = gc_job.join_gen(h1, KIND)  # counted, between its +1 and its -1
        assert stale == 1
        with pytest.raises(ResourceExhausted, match="still active"):
            gc_job.post(h0, gc_job.KIND_SCAVENGE, 3, [], P, wait_s=0.05)
        assert gc_job.active(h0) == 1
        gc_job.reset(h0.a.gc_job, h0.iso)  # the row's next generation (as a new isolate has it) ...
        h0.a.gc_task[h0.iso] = 0
        gc_job.post(h0, gc_job.KIND_SCAVENGE, 3, [], P)
        assert gc_job.join(h2, KIND) == 1  # ... whose task 1 is another helper
        gc_job.leave(h1, 1, gen)  # the earlier generation's helper leaves
        assert gc_job.active(h0) == 1, "the stale helper uncounted the new job's helper"
        assert gc_job.joined_mask(int(h0.a.gc_job[h0.iso, gc_job.J_JOINED])) == 0b11
        gc_job.leave(h2, 1)
        assert gc_job.active(h0) == 0
        gc_job.end_main(h0)


def test_no_helper_joins_while_the_main_repairs():
    with three_cores() as (_, _, (h0, h1, _)):
        gc_job.post(h0, gc_job.KIND_SCAVENGE, 3, [], P)
        assert gc_job.begin_repair(h0)
        assert gc_job.join(h1, KIND) == -1 and gc_job.active(h0) == 0  # refused, counted nowhere
        gc_job.end_repair(h0)
        assert gc_job.join(h1, KIND) == 1
        gc_job.leave(h1, 1)
        gc_job.end_main(h0)


def test_a_helper_stalled_between_its_bit_and_enter_names_its_core(monkeypatch):
    """The joiner claims its task row (core, pid) before it sets its bit: a helper stalled right after
    the bit is probed by its core's lock, not timed out as 'unentered' and repaired while alive."""
    with three_cores() as (_, _, (h0, h1, _)):
        gc_job.post(h0, gc_job.KIND_SCAVENGE, 3, [], P)

        class Stalled(Exception):
            pass

        def stall(h: HeapContext, task: int, gen: int = -1) -> None:
            raise Stalled  # the helper stops between its bit and `enter`

        monkeypatch.setattr(gc_job, "enter", stall)
        with pytest.raises(Stalled):
            gc_job.join(h1, KIND)
        assert gc_job.joined_mask(int(h0.a.gc_job[h0.iso, gc_job.J_JOINED])) == 0b11
        unentered: set[int] = set()
        h0.jobs.locks = None  # no probe in one process (see the header)
        assert gc_job.dead_tasks(h0, unentered) == [] and unentered == set()
        assert gc_job.task_core(h0, 1) == 1


def test_a_dead_mains_job_is_not_joined_in_the_isolate_that_reuses_its_row():
    with three_cores() as (m, iso, (h0, h1, _)):
        gc_job.post(h0, gc_job.KIND_SCAVENGE, 3, [], P)  # its main "dies": the job stays RUNNING
        v8 = v8_of(m, 0)
        v8.destroy_isolate(iso)
        again = v8.create_isolate(semi_space_size=4 * PAGE, max_old_space_size=64 * PAGE, gc_helpers=2)
        assert again == iso
        h1 = v8_of(m, 1).context(iso)
        assert gc_job.posted(h1.a.gc_job, 1) == [] and gc_job.join(h1, KIND) == -1


def test_a_job_of_an_isolate_that_is_not_live_is_not_joined_and_a_new_generation_has_another_main():
    with three_cores() as (_, iso, (h0, h1, _)):
        gc_job.post(h0, gc_job.KIND_SCAVENGE, 3, [], P)
        h0.a.iso_state[iso] = LOST
        assert gc_job.join(h1, KIND) == -1
        h0.a.iso_state[iso] = LIVE
        task, gen = gc_job.join_gen(h1, KIND)
        assert task == 2  # task 1 went to the refused join: a number is not handed out twice
        h1.jobs.locks = None  # no probe in one process (see the header)
        assert gc_job.main_alive(h1, task, gen)
        gc_job.reset(h0.a.gc_job, iso)
        gc_job.post(h0, gc_job.KIND_SCAVENGE, 3, [], P)
        assert not gc_job.main_alive(h1, task, gen)  # the job it joined is over: this main is not its main
        h0.a.gc_task[iso, 0, gc_job.TK_PID] += 1  # another process posted since (a restarted core)
        assert not gc_job.main_alive(h1)


def test_a_helper_that_raises_gives_its_work_back_and_the_isolate_is_lost(monkeypatch):
    with small_machine(cores=2) as m:
        v8 = v8_of(m, 0)
        iso = v8.create_isolate(semi_space_size=4 * PAGE, max_old_space_size=64 * PAGE, gc_helpers=1)
        with v8.enter(iso) as i:
            i.open_scope()
            for _ in range(50):
                i.make_persistent(i.new_object([i.new_object([1])]))
            i.close_scope()
        helper = v8_of(m, 1).context(iso)
        helper.jobs.locks = None
        real_claim = Task._claim

        def claim_then_fail(self: Task) -> bool:
            got = real_claim(self)
            if self.task and got:
                raise ResourceExhausted("old space is full (injected into the helper)")
            return got

        def helper_runs_now(h: HeapContext) -> None:  # after the post, before the main drains
            with contextlib.suppress(ResourceExhausted):  # GcHelper's loop logs it and goes on
                assert scavenge_job.help(helper) == 1

        monkeypatch.setattr(Task, "_claim", claim_then_fail)
        monkeypatch.setattr(gc_job, "await_helper", helper_runs_now)
        with pytest.raises(ResourceExhausted, match="helper task of isolate"), v8.enter(iso) as i:
            i.gc(minor=True)
        assert int(helper.a.iso_state[iso]) == LOST
        with pytest.raises(FailedPrecondition, match="was lost"), v8.enter(iso):
            pass
