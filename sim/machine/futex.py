"""A cross-process mutex in one 32-bit word of shared memory: Linux's futex, with the owner's pid in the word.

Owns: the lock word of each lock that uses it (the low half of the lock's `OWNER` cell in the
lock-stats table, locks.py), the futex calls, and how a waiter recovers a lock whose holder died.
Touches nothing else: the counters are SharedLock's, kept exactly as for an fcntl lock.

Why. An fcntl lock pair is two syscalls (~2.1 µs from Python); the keyspace's stripes are taken
on every SET and GET. An uncontended lock here is one compare-and-swap to take and one
fetch-and to give back, no syscall: ~0.25 µs each from Python through a numba kernel, and a
single instruction inside a compiled kernel (sim/cache/db_kernels.py takes these words itself).

The word (Drepper, "Futexes Are Tricky", 2011, mutex type 2, with the owner's pid where his has
1; glibc's robust mutexes keep the owner's tid in the word the same way, nptl/pthread_mutex_lock.c):

    0                       free
    pid                     held by process pid, nobody waits
    pid | WAITERS           held, and someone may sleep in FUTEX_WAIT on the word

Taking it: CAS 0 -> pid. Contended: watch the word for a few tens of microseconds (compiled: a
holder that takes the lock back within microseconds of giving it leaves a gap only a waiter on a
CPU catches), yielding the CPU in between (a 2-CPU host must not spin for long: the holder may be
the one waiting for the CPU), then set WAITERS and sleep in FUTEX_WAIT on the word
for at most WAIT_SLICE_S; a waiter that takes the lock sets WAITERS itself (others may still
sleep). Giving it back: fetch-and 0 (an exchange), and FUTEX_WAKE one sleeper if WAITERS was set.

Fairness. A core that gives a stripe back and takes it again microseconds later wins every
race against a waiter woken from FUTEX_WAIT (tens of microseconds to be scheduled on a busy host),
and could starve it for as long as it keeps going (a second, measured). So, as Go's sync.Mutex
does in starvation mode (src/sync/mutex.go), a waiter that has waited STARVE_S writes its pid in
the heir word beside the lock word (the high half of the OWNER cell); while it is set, nobody
else takes the lock, compiled kernels included, and the heir clears it when it has the lock.
A dead heir is replaced by the next starving waiter, which checks its pid as it checks owners.

A holder that dies. The kernel does not release the word (fcntl's advantage); instead a waiter
that has slept a slice checks the owner's pid: gone, or a zombie not yet reaped (/proc state Z or
X), and it takes the lock over by CAS (owner -> itself), exactly where fcntl's kernel release
would have let it in. What the dead holder left half-done is repaired as before: the
supervisor's recovery of each layer (sim/cache/db.py's `recover` evens the stripes' seqcounts)
runs under every lock before the core is forked again, and takes these words the same way.
`free_or_dead` is what `LockTable.probe_free` reports for such a lock. Pid reuse: a dead pid is
taken over within one slice of a waiter's sleep, and the supervisor reaps its dead child and
runs recovery (taking every lock, so taking over every word the child held) before forking
again; the kernel hands a pid out again only after the whole pid space has cycled, so a word
cannot name a new process by that pid in between.

Per-process like fcntl's: the owner is the process, not the thread (one thread per core runs
simulator code, the core's mutex); re-entrancy is SharedLock's process-local depth. The pid is
re-read after a fork (os.register_at_fork), so a child never takes its parent's word for its own.
"""

from __future__ import annotations

import ctypes
import os
import platform
import time
from collections.abc import Callable

import numpy as np

from memsim.sim.machine import jit

WAITERS = 1 << 30
PID_MASK = WAITERS - 1  # pid_max is at most 2**22 (Linux's PID_MAX_LIMIT)
SPIN_LOADS = 500  # reads of a taken word before yielding (microseconds: a stripe is held for microseconds)
SPINS = 4  # such rounds, each followed by a sched_yield, before sleeping
STARVE_S = 0.001  # a waiter this long reserves the next release for itself (Go's sync.Mutex starvation mode)
WAIT_SLICE_S = 0.01  # the longest FUTEX_WAIT before a waiter checks that the owner still lives

# FUTEX_WAIT and FUTEX_WAKE without FUTEX_PRIVATE_FLAG: the word is in a MAP_SHARED segment that
# several processes map (futex(2)). The syscall number is the architecture's (asm/unistd.h). syscall(2)
# is variadic and reads every argument as a long, so each is passed as one.
_SYS_FUTEX = {"x86_64": 202, "AMD64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine())
FUTEX_WAIT, FUTEX_WAKE = 0, 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_LIBC = ctypes.CDLL(None, use_errno=True)
_syscall = _LIBC.syscall
_syscall.restype = ctypes.c_long
_SLICE = _Timespec(0, int(WAIT_SLICE_S * 1e9))

_PID = os.getpid()


def _refresh_pid() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def my_pid() -> int:
    return _PID


@jit.njit_kernel
def _barred(words: np.ndarray, pos: int, me: int) -> bool:
    """Whether a starving waiter other than me is the heir (words[pos + 1]): then nobody else takes the lock."""
    heir = jit.atomic_load(words, pos + 1)
    return heir != 0 and heir != me


@jit.njit_kernel
def _taken(words: np.ndarray, pos: int, me: int) -> None:
    """The lock is mine: if I was its heir, the lock is no longer reserved."""
    if jit.atomic_load(words, pos + 1) == me:
        jit.atomic_cas(words, pos + 1, me, 0)


@jit.njit_kernel
def try_lock(words: np.ndarray, pos: int, me: int) -> int:
    """CAS 0 -> me: 0 if taken, else nonzero (the owner, or WAITERS while an heir is waiting for it)."""
    if _barred(words, pos, me):
        return WAITERS
    v = jit.atomic_cas(words, pos, 0, me)
    if v == 0:
        _taken(words, pos, me)
    return v


@jit.njit_kernel
def spin_lock(words: np.ndarray, pos: int, me: int, loads: int) -> int:
    """Watch the word for up to `loads` reads and CAS 0 -> me the moment it is free: 0 if taken, else
    nonzero. A holder that gives the lock back and takes it again a few microseconds later (a core
    running commands on the same stripe) leaves a gap only a waiter already on a CPU can use."""
    for _ in range(loads):
        if _barred(words, pos, me):
            return WAITERS
        if jit.atomic_load(words, pos) == 0 and jit.atomic_cas(words, pos, 0, me) == 0:
            _taken(words, pos, me)
            return 0
    return WAITERS


@jit.njit_kernel
def unlock(words: np.ndarray, pos: int) -> int:
    """Give the lock back (the word becomes 0); the word as it was, so the caller sees WAITERS."""
    return jit.atomic_and(words, pos, 0)


@jit.njit_kernel
def lock_or_mark(words: np.ndarray, pos: int, me: int) -> int:
    """One step of a contended acquire: 0 if the lock was free and is now ours (marked WAITERS: others
    may sleep on it); else the value to sleep on: the word with WAITERS set, or 0 while the lock is
    free but reserved for an heir (a sleeper on 0 is woken by the heir's release, or its slice ends)."""
    while True:
        if _barred(words, pos, me):
            return 0 if jit.atomic_load(words, pos) == 0 else jit.atomic_or(words, pos, WAITERS) | WAITERS
        v = jit.atomic_load(words, pos)
        if v == 0:
            if jit.atomic_cas(words, pos, 0, me | WAITERS) == 0:
                _taken(words, pos, me)
                return -1
            continue
        if v & WAITERS:
            return v
        if jit.atomic_cas(words, pos, v, v | WAITERS) == v:
            return v | WAITERS


@jit.njit_kernel
def take_over(words: np.ndarray, pos: int, dead: int, me: int) -> bool:
    """CAS a dead owner's word -> ours (WAITERS kept: others may sleep on it)."""
    if jit.atomic_cas(words, pos, dead, me | WAITERS) == dead:
        _taken(words, pos, me)
        return True
    return False


@jit.njit_kernel
def claim_heir(words: np.ndarray, pos: int, me: int, dead: int) -> bool:
    """Reserve the lock's next release for me (a waiter past STARVE_S): CAS the heir word 0 -> me, or a
    dead heir's pid -> me."""
    return jit.atomic_cas(words, pos + 1, dead, me) == dead


_FAST: tuple[Callable[[np.ndarray, int, int], int], Callable[[np.ndarray, int], int]] | None = None


def fast_calls() -> tuple[Callable[[np.ndarray, int, int], int], Callable[[np.ndarray, int], int]]:
    """try_lock and unlock for an int32 word array, as jit.entry_point binds them (no dispatcher: ~0.15 µs
    a call from Python instead of ~0.3); compiled, or loaded from numba's cache, on first use."""
    global _FAST
    if _FAST is None:
        words = np.zeros(2, np.int32)
        _FAST = (jit.entry_point(try_lock, words, 0, 1), jit.entry_point(unlock, words, 0))
    return _FAST


def futex_wait(addr: int, value: int) -> None:
    """Sleep while the word at addr holds value, for at most WAIT_SLICE_S (or sleep that long where
    the futex call is not known)."""
    if _SYS_FUTEX is None:  # pragma: no cover - x86-64 and arm64 have it
        time.sleep(WAIT_SLICE_S / 10)
        return
    _syscall(ctypes.c_long(_SYS_FUTEX), ctypes.c_void_p(addr), ctypes.c_long(FUTEX_WAIT), ctypes.c_long(value),
             ctypes.byref(_SLICE), None, ctypes.c_long(0))


def futex_wake(addr: int) -> None:
    if _SYS_FUTEX is not None:
        _syscall(ctypes.c_long(_SYS_FUTEX), ctypes.c_void_p(addr), ctypes.c_long(FUTEX_WAKE), ctypes.c_long(1),
                 None, None, ctypes.c_long(0))


def owner_alive(pid: int) -> bool:
    """Whether process pid exists and has not exited (a zombie has: its locks are as good as released)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # gone between the two looks
    return state not in (b"Z", b"X")


def free_or_dead(words: np.ndarray, pos: int) -> bool:
    """Whether nobody living holds the word (LockTable.probe_free)."""
    v = int(words[pos])
    return v == 0 or not owner_alive(v & PID_MASK)


def acquire_slow(words: np.ndarray, pos: int, addr: int) -> bool:
    """The contended acquire: returns once the lock is ours; True if it was taken over from a dead owner."""
    me = _PID
    for _ in range(SPINS):
        if spin_lock(words, pos, me, SPIN_LOADS) == 0:
            return False
        os.sched_yield()
    t0 = time.monotonic()
    heir = False
    while True:
        v = lock_or_mark(words, pos, me)
        if v == -1:
            return False
        if not heir and time.monotonic() - t0 > STARVE_S:
            other = int(words[pos + 1])
            heir = claim_heir(words, pos, me, 0) or (
                other != me and not owner_alive(other) and claim_heir(words, pos, me, other))
        futex_wait(addr, v)
        now = int(words[pos])
        if v and now == v:  # still the same owner after a whole slice (or a spurious wake-up): is it alive?
            owner = v & PID_MASK
            if (owner == me or not owner_alive(owner)) and take_over(words, pos, v, me):
                return True


def word_positions(stats: np.ndarray, column: int) -> tuple[np.ndarray, int]:
    """The lock words over a lock-stats table (int64 rows): its int32 view and the index step of a row;
    lock i's word is the low half (little-endian) of stats[i, column]."""
    assert stats.flags.c_contiguous and stats.dtype == np.int64 and np.little_endian
    words = stats.reshape(-1).view(np.int32)
    return words, 2 * stats.shape[1]


def warm() -> None:
    """Compile (or load from numba's cache) the word's kernels, so that processes forked after this do
    not each compile them on their first lock."""
    words = np.zeros(2, np.int32)
    try_lock(words, 0, 1)
    spin_lock(words, 0, 1, 1)
    lock_or_mark(words, 0, 2)
    take_over(words, 0, 1, 2)
    claim_heir(words, 0, 1, 0)
    unlock(words, 0)
    fast_calls()
