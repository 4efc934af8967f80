"""Doorbells: one pipe per core and role, made before the cores are forked, so that a core can wake another
core's waiting thread without either polling (a 1 ms poll on every core would burn a 2-CPU host).

V8 posts a job to its platform's worker threads (`v8::Platform::PostJob`, a condition variable in
`DefaultJobState`); memsim's worker threads are other processes, so the signal is a byte written to
the target core's pipe. Every process holds every pipe's two ends (inherited at fork, like the lock
file), both non-blocking:

Each core has one bell per role (HELPER: its GC helper thread, woken when a job is posted; MAIN: a
collecting main thread, woken when a helper leaves): two threads of one core waiting on one pipe
would drain each other's rings, and a main would wake only on its timeout.

- `ring(core, role)` writes one byte; a full pipe (the target has 64 KiB of rings pending) means it will
  wake anyway, so EAGAIN is ignored. It never blocks, so a core holding locks may ring.
- `wait(core, timeout, role)` blocks in select() until the core's pipe is readable or the timeout
  passes, then drains every pending byte (many rings, one wake-up). True if it was rung.

Owns the pipes' descriptors; `close()` closes this process's copies. A ring carries no message:
the waiter reads what to do from shared memory (sim/v8/gc_job.py's gc_job rows), so a lost or
merged ring is never lost work, only a later wake-up.
"""

from __future__ import annotations

import contextlib
import os
import select

HELPER, MAIN = range(2)  # the roles: a bell each
NROLES = 2


class Doorbells:
    def __init__(self, cores: int):
        self.fds: list[tuple[int, int]] = []
        try:
            for _ in range(cores * NROLES):
                r, w = os.pipe()
                os.set_blocking(r, False)
                os.set_blocking(w, False)
                self.fds.append((r, w))
        except BaseException:
            self.close()
            raise

    @property
    def cores(self) -> int:
        return len(self.fds) // NROLES

    def ring(self, core: int, role: int = HELPER) -> None:
        """Wake `core`'s waiter of `role` (never blocks)."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.fds[role * self.cores + core][1], b"\1")

    def wait(self, core: int, timeout: float | None, role: int = HELPER) -> bool:
        """Block until `core`'s bell of `role` rings or `timeout` seconds pass; pending rings are drained."""
        r = self.fds[role * self.cores + core][0]
        ready, _, _ = select.select([r], [], [], timeout)
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(r, 4096):
                pass
        return True

    def close(self) -> None:
        for r, w in self.fds:
            for fd in (r, w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fds = []
