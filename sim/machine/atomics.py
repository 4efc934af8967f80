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
