"""Compile the managed heap's code before the supervisor forks its cores: every kernel with the
argument types the collectors really pass, and the numba helpers the mutator calls from Python.

numba compiles one specialisation per combination of argument types (a row of a 2-D array is
C-contiguous, a column is not, a 0-d view is something else again), so kernels warmed on arrays
of their own making can still compile on a worker's first GC: 0.3 s for a Mark-Compact in a fresh
install, seconds with an empty cache. `warm()` instead runs the real thing once: a throwaway
machine with one tiny isolate that allocates in every space, stores old-to-new pointers, holds an
ArrayBuffer, scavenges twice (a copy, then a promotion, the second inside an incremental marking
cycle that steps and runs the marking barrier) and compacts (and compiles the scavenger's and the
marker's worklist-overflow rescans, which so small a heap never needs), so every path a collection takes is
compiled in this process (or loaded from numba's on-disk cache) and inherited by every
core at fork. It costs about 0.3 s with a warm cache.
"""

from __future__ import annotations

import os

from memsim.sim.system import Machine, MachineConfig
from memsim.sim.v8 import incremental_marking, marking, scavenger, verifier
from memsim.sim.v8.heap import PAUSE_ENV

MiB, PAGE = 1 << 20, 64 << 10


def warm() -> None:
    paused = os.environ.pop(PAUSE_ENV, None)  # a test's pause hook is for the cores' collections, not these
    try:
        _cycle()
    finally:
        if paused is not None:
            os.environ[PAUSE_ENV] = paused


def _cycle() -> None:
    m = Machine.create(MachineConfig(memory_bytes=8 * MiB, vm_memory=4 * MiB, cores=1, v8_isolates=1,
                                     v8_page_size=PAGE, v8_max_heap=4 * MiB, v8_handles=256, max_keys=64))
    try:
        v8 = m.v8(0, m.heap(0))
        with v8.enter(v8.create_isolate(semi_space_size=PAGE, max_old_space_size=8 * PAGE)) as iso:
            old = iso.make_persistent(iso.new_object(nfields=4, pretenure=True))
            big = iso.make_persistent(iso.new_object(nfields=PAGE // 8))  # a large object
            for k in range(3):
                iso.set_field(old, k, iso.new_object([k], payload=b"warm"))  # old-to-new slots
            iso.set_field(big, 1, iso.new_array_buffer(16))
            iso.set_field(old, 3, iso.new_string(b"warm"))
            iso.gc(minor=True)
            incremental_marking.start(iso.h, 0.0)  # a cycle: steps, the marking barrier, a scavenge inside it
            incremental_marking.step(iso.h, 0.0)
            iso.set_field(old, 0, iso.new_object([7]))
            marking.rescan(iso.h)  # the marking worklist's overflow path, which so small a heap never needs
            iso.gc(minor=True)
            iso.testing(force_compaction=True)
            iso.gc()
            verifier.verify(iso.h)
            scavenger.compile_overflow_rescan(iso.h)
    finally:
        m.destroy()
