"""The kernels' atomics (sim/v8/jit.py; interpreted, sim/machine/atomics.py's libatomic calls):

- semantics on int64 and uint64 rows: each returns the value before the operation, a CAS stores
  only over the expected value, negative addends and the top bit survive the round trip;
- compiled and interpreted give the same results (the interpreted functions are called directly);
- the compiled code really is an atomic instruction (`cmpxchg`, `atomicrmw` in numba's LLVM IR);
- two forked processes fetch-add the same shared word 10^6 times each: the sum is exact. The
  control does the same with a load then a store (a plain `+=` that LLVM cannot fold into one
  add): updates are lost, so the first test can fail.
"""

from __future__ import annotations

import mmap
import os

import numba
import numpy as np
import pytest

from memsim.sim.machine import atomics
from memsim.sim.v8 import dm_kernels
from memsim.sim.v8.jit import JIT_ENABLED, atomic_add, atomic_and, atomic_cas, atomic_load, atomic_or, njit_kernel

N = 1_000_000 if JIT_ENABLED else 20_000  # interpreted, each add is a ctypes call (~1 µs)


@njit_kernel
def _ops(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    out[0] = atomic_add(a, 0, 5)
    out[1] = atomic_add(a, 0, -7)
    out[2] = atomic_cas(a, 1, 0, 7)
    out[3] = atomic_cas(a, 1, 0, 9)  # fails: 7 is there
    out[4] = atomic_and(a, 2, -2)
    out[5] = atomic_load(a, 1)
    b[0] = atomic_or(b, 3, np.uint64(1) << np.uint64(63))
    b[1] = atomic_cas(b, 3, (np.uint64(1) << np.uint64(63)) | np.uint64(5), np.uint64(3))


def _ops_interpreted(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    out[0] = atomics.fetch_add(a, 0, 5)
    out[1] = atomics.fetch_add(a, 0, -7)
    out[2] = atomics.compare_exchange(a, 1, 0, 7)
    out[3] = atomics.compare_exchange(a, 1, 0, 9)
    out[4] = atomics.fetch_and(a, 2, -2)
    out[5] = atomics.load(a, 1)
    b[0] = atomics.fetch_or(b, 3, 1 << 63)
    b[1] = atomics.compare_exchange(b, 3, 1 << 63 | 5, 3)


def _run(fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.array([0, 0, -1, 0], dtype=np.int64)
    b = np.array([0, 0, 0, 5], dtype=np.uint64)
    out = np.zeros(6, dtype=np.int64)
    fn(a, b, out)
    return a, b, out


def test_semantics_compiled_and_interpreted_agree():
    a, b, out = _run(_ops)
    assert list(out[:6]) == [0, 5, 0, 7, -1, 7]
    assert list(a) == [-2, 7, -2, 0] and [int(x) for x in b] == [5, 5 | 1 << 63, 0, 3]
    ia, ib, iout = _run(_ops_interpreted)
    assert (ia == a).all() and (ib == b).all() and (iout == out).all()


@pytest.mark.skipif(not JIT_ENABLED, reason="interpreted: there is no compiled code")
def test_compiled_code_is_an_atomic_instruction():
    fresh = numba.njit(_ops.py_func)  # not from the disk cache, which keeps no IR
    fresh(*_run(lambda a, b, out: None))
    ir = "".join(fresh.inspect_llvm().values())
    # or/and whose old value is used become a cmpxchg loop (x86 has no fetch-or): LLVM's AtomicExpand
    assert "cmpxchg" in ir and "atomicrmw add" in ir and "load atomic" in ir


def test_and_set_bit_atomic_reports_the_first_setter():
    bits = np.zeros(2, dtype=np.uint64)
    assert dm_kernels.test_and_set_bit_atomic(bits, 70)
    assert not dm_kernels.test_and_set_bit_atomic(bits, 70)
    assert dm_kernels.test_bit(bits, 70) and int(bits[1]) == 1 << 6


@njit_kernel
def _count_atomic(a: np.ndarray, n: int) -> None:
    while atomic_load(a, 1) == 0:  # the start line: both processes count at once
        pass
    for _ in range(n):
        atomic_add(a, 0, 1)


@njit_kernel
def _count_plain(a: np.ndarray, n: int) -> None:
    while atomic_load(a, 1) == 0:
        pass
    for _ in range(n):
        v = atomic_load(a, 0)  # a load, then a store: `a[0] += 1` without the lock prefix
        atomic_cas(a, 2, 0, 0)  # (a fence-free no-op that keeps the two apart, as other work would)
        a[0] = v + 1


def _two_processes(kernel, n: int) -> int:
    buf = mmap.mmap(-1, 4096)  # MAP_SHARED | MAP_ANONYMOUS: the children write the parent's pages
    a = np.frombuffer(buf, dtype=np.int64, count=3)
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            try:
                kernel(a, n)
            finally:
                os._exit(0)
        pids.append(pid)
    a[1] = 1
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    total = int(a[0])
    del a
    buf.close()
    return total


@pytest.fixture(autouse=True)
def _warm():
    a = np.array([0, 1, 0], dtype=np.int64)
    _count_atomic(a, 0)
    _count_plain(a, 0)


def test_two_processes_fetch_add_to_the_exact_sum():
    assert _two_processes(_count_atomic, N) == 2 * N


def test_control_a_plain_increment_loses_updates():
    # the two children overlap only if the host schedules them at once; a few tries make that certain
    totals = [_two_processes(_count_plain, N) for _ in range(5)]
    assert min(totals) < 2 * N, totals
