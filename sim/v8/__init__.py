"""The managed heap: V8's generational garbage collector on the machine's memory.

    from memsim.sim.v8 import V8, Isolate, Handle
    v8 = machine.v8(core, heap)                  # one view per core process
    iso_id = v8.create_isolate(semi_space_size=1 << 20, max_old_space_size=8 << 20)
    with v8.enter(iso_id) as iso:                # the isolate's locker (v8::Locker)
        h = iso.new_object([1, 2], payload=b"x")
        iso.gc()

The modules are named after V8's src/heap/ files; layout.py lists every shared array and lock.
"""

from memsim.sim.v8.handles import Handle
from memsim.sim.v8.isolate import Isolate, Value
from memsim.sim.v8.isolate_table import V8, IsolateInfo

__all__ = ["V8", "Handle", "Isolate", "IsolateInfo", "Value"]
