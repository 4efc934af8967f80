"""Not built yet: the scavenger lands in the next commits of the managed heap."""

from __future__ import annotations

from memsim.sim.errors import FailedPrecondition
from memsim.sim.v8.context import HeapContext
from memsim.sim.v8.gc_work import GcWork


def scavenge(h: HeapContext, work: GcWork) -> None:
    raise FailedPrecondition("the scavenger is not built yet")
