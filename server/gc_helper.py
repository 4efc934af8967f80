"""A core's GC helper: V8's platform worker thread for the managed heap's parallel jobs
(`src/libplatform/default-worker-threads-task-runner.cc`), one thread per worker process.

It blocks on the core's doorbell (sim/machine/doorbell.py: a pipe, no polling); when rung it looks
for posted jobs of other cores (sim/v8/gc_job.py) and, if its core is free now
(`core_lock.acquire(blocking=False)`: a core busy with its own RPC does not help, as V8's worker
threads do not when busy), joins one and works in it until it leaves (sim/v8/scavenge_job.help; a
concurrent marking job: sim/v8/concurrent_marking.help, visits of at most its VISIT_S, the core
free between them; mark-compact's evacuation and pointer updating: sim/v8/compaction_job.help).

The deadlock rule (docs/design/orinoco.md §3): a helper holds its `core_lock` for its whole visit
and never releases it while joined. Otherwise this core's RPC thread could take the core, block on
the isolate's locker that the job's main holds, while the main waits for this helper to leave. A
visit is bounded (slices of gc_job.SLICE_OBJECTS objects, then a bounded idle wait), so this core's
own requests wait at most one collection's share.

It never takes an isolate's locker; what it writes goes through the kernels and the leaf locks.
"""

from __future__ import annotations

import threading
import time

from memsim.server.periodic import Periodic
from memsim.sim.machine.doorbell import Doorbells
from memsim.sim.v8 import compaction_job, concurrent_marking, gc_job, scavenge_job
from memsim.sim.v8.isolate_table import V8

WAIT_S = 0.5  # the longest a helper sleeps between looks at its stop flag


class GcHelper(Periodic):
    name = "gc-helper"

    def __init__(self, v8: V8, core: int, core_lock: threading.Lock, doorbells: Doorbells):
        super().__init__(core, WAIT_S)
        self.v8, self.core_lock, self.doorbells = v8, core_lock, doorbells
        self.visits = 0  # jobs joined (for tests and logs)

    def stop(self) -> None:
        self._stop.set()
        self.doorbells.ring(self.core)
        self.thread.join(2)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.doorbells.wait(self.core, WAIT_S) and not self._stop.is_set():
                self.run_tick()

    def tick(self) -> None:
        """Join every posted job of another core this core can help with now; a concurrent marking
        job again and again while its visits end with work left (the core is free between visits)."""
        for iso in gc_job.posted(self.v8.a.gc_job, self.core):
            again = True
            while again and not self._stop.is_set():
                if not self.core_lock.acquire(blocking=False):
                    return  # busy: this core does not help
                try:
                    again = self._visit(iso)
                finally:
                    self.core_lock.release()
                time.sleep(0)  # this core's own requests may take it between two visits

    def _visit(self, iso: int) -> bool:
        """One visit to the isolate's job; True to come back at once."""
        kind = int(self.v8.a.gc_job[iso, gc_job.J_KIND])
        if kind == gc_job.KIND_SCAVENGE:
            self.visits += scavenge_job.help(self.v8.context(iso)) >= 0
            return False
        if kind in (gc_job.KIND_EVACUATE, gc_job.KIND_UPDATE):  # mark-compact's parallel phases
            self.visits += compaction_job.help(self.v8.context(iso), kind) >= 0
            return False
        if kind == gc_job.KIND_MARK:
            r = concurrent_marking.help(self.v8.context(iso))
            self.visits += r != concurrent_marking.NOT_JOINED
            return r == concurrent_marking.AGAIN
        return False
