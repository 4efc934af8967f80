"""The scavenger: returns long-idle free pages to the machine (Go's bgscavenge).

Go's background scavenger wakes up periodically, finds free pages that have not been
scavenged, and releases them to the OS (MADV_DONTNEED) at about 1 % of one CPU, so that a
heap that shrank gives its memory back. Ours runs in the supervisor process, which is not
a core and so never competes with one for its cache: every `period` seconds it takes the
heap lock and releases free pages that have been idle for `idle_seconds` (HeapReleased
rises, HeapSys does not fall: the addresses stay reserved). Reusing a released page
commits it again, zeroed.
"""

from __future__ import annotations

import threading

from memsim.sim.alloc.heap import Heap

DEFAULT_PERIOD = 1.0
DEFAULT_IDLE_SECONDS = 5.0


def scavenge_once(heap: Heap, idle_seconds: float) -> int:
    if not heap.mheap.has_scavenge_work(idle_seconds):
        return 0
    with heap.mheap.lock:
        return heap.mheap.scavenge(idle_seconds)


class Scavenger:
    def __init__(self, heap: Heap, period: float = DEFAULT_PERIOD, idle_seconds: float = DEFAULT_IDLE_SECONDS):
        self.heap = heap
        self.period = period
        self.idle_seconds = idle_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pause = threading.Lock()  # held by the supervisor while it recovers a dead core

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scavenger", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            with self._pause:
                scavenge_once(self.heap, self.idle_seconds)

    @property
    def paused(self) -> threading.Lock:
        return self._pause

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
