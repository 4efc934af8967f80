"""Compare-and-swap on elements of shared NumPy arrays.

Python has no atomic read-modify-write on shared memory. The allocator needs exactly one:
deciding which of two cores freeing the same object at the same instant wins (the loser
gets FAILED_PRECONDITION, "double free"), and the tiny allocator's block bookkeeping. Go's
runtime does these with atomics, not locks, and so do we, so that the free fast path takes
no lock.

The CAS is libatomic's `__atomic_compare_exchange_N` called through ctypes: a real
`lock cmpxchg`, ~0.8 µs per call from Python, against ~1.5 µs for an fcntl lock pair
(both measured on the 2-core development VM with a 200k-iteration loop). libatomic.so.1
ships with the GCC runtime on every Debian/Ubuntu image that has a compiler. Where it is
missing we fall back to a CAS done under a striped fcntl record lock: same semantics,
slower, and said so in `backend`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os

import numpy as np

_CTYPE = {1: ctypes.c_uint8, 2: ctypes.c_uint16, 4: ctypes.c_uint32, 8: ctypes.c_uint64}
_SEQ_CST = 5


def _load_libatomic() -> ctypes.CDLL | None:
    for name in ("libatomic.so.1", ctypes.util.find_library("atomic")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


_LIB = _load_libatomic()


class AtomicArray:
    """CAS on the elements of one shared array (1-D, itemsize 1/2/4/8)."""

    def __init__(self, arr: np.ndarray, fallback_lock_fd: int | None = None, stripe_base: int = 0):
        self.arr = arr
        self.itemsize = arr.dtype.itemsize
        self.base = arr.__array_interface__["data"][0]
        self._fd = fallback_lock_fd
        self._stripe_base = stripe_base
        ct = _CTYPE[self.itemsize]
        if _LIB is not None:
            fn = getattr(_LIB, f"__atomic_compare_exchange_{self.itemsize}")
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ct, ctypes.c_int, ctypes.c_int]
            fn.restype = ctypes.c_bool
            self._fn = fn
            self._expected = ct(0)
            self._pexp = ctypes.byref(self._expected)
            self.backend = "libatomic"
        else:
            if fallback_lock_fd is None:
                raise RuntimeError("no libatomic and no fallback lock file for CAS")
            self.backend = "fcntl-striped"

    def cas(self, index: int, expected: int, desired: int) -> bool:
        """Atomically: if arr[index] == expected, store desired and return True."""
        if _LIB is not None:
            self._expected.value = expected
            return self._fn(self.base + index * self.itemsize, self._pexp, desired, _SEQ_CST, _SEQ_CST)
        return self._cas_locked(index, expected, desired)

    def _cas_locked(self, index: int, expected: int, desired: int) -> bool:
        assert self._fd is not None
        stripe = self._stripe_base + (index & 63)
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, stripe, os.SEEK_SET)
        try:
            if int(self.arr[index]) != expected:
                return False
            self.arr[index] = desired
            return True
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, stripe, os.SEEK_SET)


def backend() -> str:
    return "libatomic" if _LIB is not None else "fcntl-striped"


# Read-modify-write on one element of an array, for code that runs interpreted (the managed heap's
# kernels under NUMBA_DISABLE_JIT=1; compiled, they inline the same instructions, sim/v8/jit.py).
# Each is libatomic's sized builtin (`__atomic_fetch_add_8` ...: `lock xadd`, `lock or`,
# `lock cmpxchg`), called on the element's address, returning the element's value before the
# operation, as the C11 atomic_fetch_* functions do. Without libatomic they fall back to a plain
# read-modify-write under the GIL: atomic between threads of one process only, which is why the
# managed heap runs no helper core when `backend()` is not "libatomic" (docs/design/orinoco.md §4).
_RMW: dict[tuple[str, int], ctypes._NamedFuncPointer] = {}


def _rmw_fn(op: str, itemsize: int) -> ctypes._NamedFuncPointer | None:
    fn = _RMW.get((op, itemsize))
    if fn is None and _LIB is not None:
        ct = _CTYPE[itemsize]
        fn = getattr(_LIB, f"__atomic_{op}_{itemsize}")
        if op == "compare_exchange":
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ct, ctypes.c_int, ctypes.c_int]
            fn.restype = ctypes.c_bool
        elif op == "load":
            fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
            fn.restype = ct
        else:
            fn.argtypes = [ctypes.c_void_p, ct, ctypes.c_int]
            fn.restype = ct
        _RMW[(op, itemsize)] = fn
    return fn


def _address(arr: np.ndarray, i: int) -> int:
    return int(arr.__array_interface__["data"][0]) + int(i) * arr.strides[0]


def _as_unsigned(arr: np.ndarray, v: int | np.integer) -> int:
    return int(v) & ((1 << (8 * arr.dtype.itemsize)) - 1)


def _as_element(arr: np.ndarray, u: int) -> int:
    """An unsigned result back as the array's own (possibly signed) value: two's complement."""
    bits = 8 * arr.dtype.itemsize
    return u - (1 << bits) if arr.dtype.kind == "i" and u >> (bits - 1) else u


def _fetch(op: str, arr: np.ndarray, i: int, v: int | np.integer) -> int:
    fn = _rmw_fn(op, arr.dtype.itemsize)
    if fn is None:
        old = int(arr[i])
        new = {"fetch_add": old + int(v), "fetch_or": old | int(v), "fetch_and": old & int(v)}[op]
        arr[i] = _as_element(arr, _as_unsigned(arr, new))
        return old
    return _as_element(arr, fn(_address(arr, i), _as_unsigned(arr, v), _SEQ_CST))


def fetch_add(arr: np.ndarray, i: int, v: int | np.integer) -> int:
    return _fetch("fetch_add", arr, i, v)


def fetch_or(arr: np.ndarray, i: int, v: int | np.integer) -> int:
    return _fetch("fetch_or", arr, i, v)


def fetch_and(arr: np.ndarray, i: int, v: int | np.integer) -> int:
    return _fetch("fetch_and", arr, i, v)


def load(arr: np.ndarray, i: int) -> int:
    fn = _rmw_fn("load", arr.dtype.itemsize)
    if fn is None:
        return int(arr[i])
    return _as_element(arr, fn(_address(arr, i), _SEQ_CST))


def compare_exchange(arr: np.ndarray, i: int, expected: int | np.integer, desired: int | np.integer) -> int:
    """If arr[i] == expected, store desired; the value arr[i] held before, either way."""
    fn = _rmw_fn("compare_exchange", arr.dtype.itemsize)
    if fn is None:
        old = int(arr[i])
        if old == int(expected):
            arr[i] = desired
        return old
    ct = _CTYPE[arr.dtype.itemsize]
    exp = ct(_as_unsigned(arr, expected))
    fn(_address(arr, i), ctypes.byref(exp), _as_unsigned(arr, desired), _SEQ_CST, _SEQ_CST)
    return _as_element(arr, exp.value)  # on failure libatomic writes the value it found into `exp`
