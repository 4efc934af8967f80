"""Not built yet: the mark_compact lands in the next commits of the managed heap."""

from __future__ import annotations

from memsim.sim.errors import FailedPrecondition
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork


def collect(h: HeapContext, work: GcWork, force: bool) -> None:
    raise FailedPrecondition("mark-compact is not built yet")
