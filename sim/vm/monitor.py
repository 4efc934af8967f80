"""A space's page accesses as trace records, for `memsim trace capture --space N`: each access the
MMU path makes (memory.py's translate_locked: a load's or a store's every page, a translation),
one record per page: the key is the virtual page number, the size the page size, the op GET for a
read and SET for a write (sim/trace/chunk.py's Op).

Owns: this core's `PageMonitor`. Touches: its MM's `monitor` attribute only, set while a capture of
some space runs on this core and None otherwise, so the MMU path pays one test for None per
access when nobody captures.
Invariants: records are taken in translate_locked, with the space's lock held, so one space's
records of one core are in the order of its accesses; each core records the accesses it serves,
and the capture merges the cores' records by time (sim/trace/monitor.py's clock).
"""

from __future__ import annotations

from memsim.sim.trace.monitor import DEFAULT_LIMIT, Feed, Subscriber
from memsim.sim.vm.mm import MM

__all__ = ["PageMonitor"]


class PageMonitor:
    def __init__(self, mm: MM):
        self.mm = mm
        self.feed = Feed(self._switch)

    def _switch(self, active: bool) -> None:
        self.mm.monitor = self.feed if active else None

    def subscribe(self, space: int, limit: int = DEFAULT_LIMIT) -> Subscriber:
        self.mm.check_space(space)
        return self.feed.subscribe(limit, tag=space)

    def unsubscribe(self, s: Subscriber) -> None:
        self.feed.unsubscribe(s)
