"""A core's background work: one daemon thread that runs `tick()` every `period_s` until stopped.

A worker runs three such loops beside its gRPC threads: serverCron (the cache, cache_servicer.py),
khugepaged (core 0, vm_servicer.py) and the lease reaper (sessions.py). Each tick takes the core's
mutex itself, like any other work of that core, so it competes with requests as a kernel thread
competes with processes for a CPU. A tick that raises is logged and the loop goes on: background
work must not die of one bad round, nor take the worker down.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("memsim.worker")


class Periodic:
    name = "periodic"

    def __init__(self, core: int, period_s: float):
        self.core = core
        self.period_s = period_s
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)

    def tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.run_tick()

    def run_tick(self) -> None:
        try:
            self.tick()
        except Exception:
            log.exception("%s on core %d", self.name, self.core)
