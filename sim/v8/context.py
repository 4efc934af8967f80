"""One isolate's heap as one process sees it: the plain record every module of sim/v8 works on.

A `HeapContext` is built by `enter` (isolate_table.py) for the call that holds the isolate's
locker, from the shared arrays alone: the isolate's rows, its direct map, its space bounds and
the VM and allocator views of the calling core. It holds no state of its own that another core
would need, so any core may build one for any isolate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memsim.sim.alloc.heap import Heap as AllocHeap
from memsim.sim.machine.doorbell import Doorbells
from memsim.sim.machine.locks import LockTable, SharedLock
from memsim.sim.v8.direct_map import DirectMap
from memsim.sim.v8.handles import HandleTable
from memsim.sim.v8.layout import C_BARRIER_OFF, C_SPACE, V8Arrays, V8Geometry
from memsim.sim.v8.remembered_set import RememberedSet
from memsim.sim.v8.spaces import SpaceBounds
from memsim.sim.v8.tracer import GcTracer
from memsim.sim.v8.worklist import Worklist
from memsim.sim.vm.vm import VM


@dataclass
class JobEnv:
    """What a parallel collection needs beyond the isolate (gc_job.py): the machine's cores and
    their doorbells, each core's `v8/gc/<core>` lock (held while in a job, probed by the others),
    the isolate's `gcalloc` lock, and the lock table that probes."""

    cores: int
    doorbells: Doorbells | None = None
    gc_locks: list[SharedLock] = field(default_factory=list)
    gcalloc: SharedLock | None = None
    locks: LockTable | None = None


@dataclass
class HeapContext:
    iso: int
    a: V8Arrays
    g: V8Geometry
    dmap: DirectMap
    bounds: SpaceBounds
    vm: VM
    alloc: AllocHeap  # backing stores of ArrayBuffers (array_buffer_sweeper.py)
    handles: HandleTable
    rset: RememberedSet
    core: int
    client: int  # the allocator's client row backing stores are recorded for (0: nobody's)
    worklist: Worklist  # the collections' segmented worklists (worklist.py)
    jobs: JobEnv = field(default_factory=lambda: JobEnv(cores=1))  # parallel jobs (gc_job.py)

    @property
    def top(self) -> np.ndarray:
        """iso_top's row (layout.py's T_* columns)."""
        return self.a.iso_top[self.iso]

    @property
    def cfg(self) -> np.ndarray:
        return self.a.iso_cfg[self.iso]

    @property
    def space(self) -> int:
        return int(self.a.iso_cfg[self.iso, C_SPACE])

    @property
    def tracer(self) -> GcTracer:
        return GcTracer(self.a.tracer, self.iso)

    @property
    def barrier_off(self) -> bool:
        return bool(self.a.iso_cfg[self.iso, C_BARRIER_OFF])
