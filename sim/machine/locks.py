"""Named cross-process locks with contention counters in shared memory.

Which primitive, and why. A simulated core is a process; the locks must exclude processes,
and a worker killed while holding one must not wedge the machine, so the lock must be one
the kernel releases when its holder dies. A POSIX semaphore stays locked forever when
its holder dies; a SysV semaphore with SEM_UNDO is released but costs ~3 µs a pair. An
fcntl record lock is released by the kernel when its holder dies, costs ~1.5 µs a pair
here (one syscall each way), waits in the kernel rather than spinning (this machine has 2
cores), and needs no named object at all: every lock is one byte of one lock file that
is unlinked the moment it is created, so nothing can be left behind in /dev/shm. Workers
are forked from the creator and inherit the open descriptor.

Record locks belong to a process, not a thread, and re-locking a byte you hold succeeds
silently. Two consequences, both handled here: (1) within a worker only one thread runs
simulator code at a time (the core's own mutex, see `server/worker.py`), which is also what
a core is; (2) a lock may be acquired re-entrantly (in the "one global lock" experiment the
central lists and the page heap share one lock), so each lock keeps a process-local depth
and only the outermost acquire/release touches the kernel.

The keyspace's locks (names under WORD_LOCK_PREFIXES) are futex words instead (`WordLock`,
futex.py): the same robustness when a holder dies, without a syscall when uncontended, and a word
a compiled kernel can take itself. Their word is the low half of the row's OWNER cell.

Counters follow jemalloc's mutex stats (`num_ops`, `num_wait`, `total_wait_time`,
`max_wait_time`, `owner_switch`). They are written only while the lock is held, so one
writer at a time and no atomics needed; a reader may see a row mid-update, which is fine
for statistics.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from memsim.sim.machine import futex
from memsim.sim.machine.shm import ArraySpec

log = logging.getLogger("memsim.locks")

# Columns of the lock-stats table (int64, 8 per row = one cache line per lock). OWNER holds a WordLock's
# futex word (futex.py) in its low half, and is unused by an fcntl lock.
ACQ, CONTENDED, WAIT_NS, MAX_WAIT_NS, OWNER_SWITCH, LAST_OWNER, HOLD_NS, OWNER = range(8)
STAT_COLUMNS = 8
# Locks taken on every cache command: futex words (WordLock) rather than fcntl bytes.
WORD_LOCK_PREFIXES = ("keyspace/",)


def lock_specs(nlocks: int) -> list[ArraySpec]:
    return [ArraySpec("lock_stats", "int64", (nlocks, STAT_COLUMNS))]


def make_lock_file() -> int:
    """An anonymous lock file: created, opened and unlinked at once."""
    fd, path = tempfile.mkstemp(prefix="memsim-locks-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.unlink(path)
    os.ftruncate(fd, 4096)
    return fd


@dataclass
class LockStats:
    name: str
    acquisitions: int
    contended: int
    wait_ns: int
    max_wait_ns: int
    owner_switches: int
    hold_ns: int


class SharedLock:
    """One byte of the lock file plus one row of counters."""

    def __init__(self, name: str, index: int, fd: int, stats: np.ndarray, owner_id: int,
                 waits: list[tuple[str, int]] | None = None):
        self.name = name
        self.waits = waits if waits is not None else []  # (lock, ns) of contended acquires, drained per op
        self.index = index
        self._fd = fd
        # A memoryview of the counters row: item access costs a tenth of a NumPy scalar's, and this
        # is on every acquire of every lock.
        self._row = memoryview(stats[index])
        self._owner_id = owner_id
        self._depth = 0
        self._t_acquired = 0

    def acquire(self) -> None:
        if self._depth:
            self._depth += 1
            return
        if not self._take():
            t0 = time.perf_counter_ns()
            self._wait()
            self._waited(time.perf_counter_ns() - t0)
        self._acquired()

    def _waited(self, wait: int) -> None:
        """The bookkeeping of a contended acquisition: the op's waits, contention, wait time and its max."""
        self.waits.append((self.name, wait))
        row = self._row
        row[CONTENDED] += 1
        row[WAIT_NS] += wait
        if wait > row[MAX_WAIT_NS]:
            row[MAX_WAIT_NS] = wait

    def _acquired(self) -> None:
        """The bookkeeping of every first acquisition: depth, count, owner switches, hold start."""
        self._depth = 1
        row = self._row
        row[ACQ] += 1
        if row[LAST_OWNER] != self._owner_id:
            row[OWNER_SWITCH] += 1
            row[LAST_OWNER] = self._owner_id
        self._t_acquired = time.perf_counter_ns()

    def try_acquire(self) -> bool:
        """Take the lock only if it is free now (or already ours); False at once otherwise.
        For a caller that holds another lock of the same rank (Linux's trylock_page in reclaim)."""
        if self._depth:
            self._depth += 1
            return True
        if not self._take():
            self._row[CONTENDED] += 1
            return False
        self._acquired()
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth:
            return
        self._row[HOLD_NS] += time.perf_counter_ns() - self._t_acquired
        self._give()

    # -- the exclusion itself: the lock file's byte ------------------------------------------------

    def _take(self) -> bool:
        """Take it if free now."""
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self.index, os.SEEK_SET)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            return False
        return True

    def _wait(self) -> None:
        """Take it, waiting as long as it takes."""
        while True:
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, self.index, os.SEEK_SET)
                return
            except OSError as e:  # EDEADLK can be reported spuriously; our order is fixed
                if e.errno not in (errno.EDEADLK, errno.EINTR):
                    raise

    def _give(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self.index, os.SEEK_SET)

    def __enter__(self) -> SharedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._depth > 0

    @property
    def owner_id(self) -> int:
        """What LAST_OWNER records for this process's acquisitions (kernels that take a word keep it too)."""
        return self._owner_id


class WordLock(SharedLock):
    """A SharedLock whose exclusion is a futex word (futex.py) instead of the lock file's byte; the same
    depth, counters and interface. `words` and `pos` are the word, for kernels that take it themselves."""

    def __init__(self, name: str, index: int, fd: int, stats: np.ndarray, owner_id: int,
                 waits: list[tuple[str, int]] | None = None):
        super().__init__(name, index, fd, stats, owner_id, waits)
        self.stats = stats
        self.words, step = futex.word_positions(stats, STAT_COLUMNS)
        self.pos = index * step + 2 * OWNER
        self._addr = self.words.ctypes.data + 4 * self.pos
        self._try_lock, self._unlock = futex.fast_calls()

    def _take(self) -> bool:
        return self._try_lock(self.words, self.pos, futex.my_pid()) == 0

    def _wait(self) -> None:
        if futex.acquire_slow(self.words, self.pos, self._addr):
            log.warning("lock %s: taken over from a dead holder", self.name)

    def _give(self) -> None:
        if self._unlock(self.words, self.pos) & futex.WAITERS:
            futex.futex_wake(self._addr)

    def free(self) -> bool:
        return futex.free_or_dead(self.words, self.pos)


class LockTable:
    """All the machine's locks by name. `alias` maps a name onto another lock's byte."""

    def __init__(self, fd: int, stats: np.ndarray, names: list[str], alias: dict[str, str], owner_id: int = 0):
        self.fd = fd
        self.stats = stats
        self.names = names
        self._locks: dict[str, SharedLock] = {}
        self.waits: list[tuple[str, int]] = []
        for i, n in enumerate(names):
            kind = WordLock if n.startswith(WORD_LOCK_PREFIXES) else SharedLock
            self._locks[n] = kind(n, i, fd, stats, owner_id, self.waits)
        for a, target in alias.items():
            self._locks[a] = self._locks[target]

    def __getitem__(self, name: str) -> SharedLock:
        return self._locks[name]

    def snapshot(self) -> list[LockStats]:
        out = []
        for i, n in enumerate(self.names):
            r = self.stats[i]
            out.append(LockStats(n, int(r[ACQ]), int(r[CONTENDED]), int(r[WAIT_NS]), int(r[MAX_WAIT_NS]),
                                 int(r[OWNER_SWITCH]), int(r[HOLD_NS])))
        return out

    def probe_free(self, index: int) -> bool:
        """True if no process holds lock `index` (used by tests and by recovery); a word lock whose holder
        died counts as free, as the kernel frees a dead holder's fcntl lock."""
        lock = self._locks[self.names[index]]
        if isinstance(lock, WordLock):
            return lock.free()
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, index, os.SEEK_SET)
        except OSError:
            return False
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, index, os.SEEK_SET)
        return True
