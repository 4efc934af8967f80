"""The one place numba is imported: `njit` for the compiled loops (the managed heap's collector,
the replacement policies' operations and the trace replay loop, sim/policies/kernels.py).

The scavenger's Cheney loop, marking and sweeping visit every object of a space; written in
Python they run at a few hundred thousand objects a second, compiled with numba at tens of
millions (bench/micro_gc.py measures both). The kernels are plain functions over numpy arrays and
ints, so the same source runs interpreted when `NUMBA_DISABLE_JIT=1` is set,
which the tests use to check that both give byte-identical heaps.

Compiled code is cached on disk (`cache=True`) under $NUMBA_CACHE_DIR, by default
$XDG_CACHE_HOME/memsim/numba (site-packages may be read-only), so only the first process on a
machine pays the compile. warmup.py runs every kernel once before the supervisor forks its cores,
so no core compiles on its first GC. No threading layer is used: kernels run in the calling
process, which keeps them fork-safe.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

if "NUMBA_CACHE_DIR" not in os.environ:
    _cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(_cache, "memsim", "numba")

import numba  # noqa: E402  (after NUMBA_CACHE_DIR is set: numba reads it on import)

JIT_ENABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") in ("", "0")


def njit(fn: F) -> F:
    """Compile `fn` with numba (nopython, cached, no GIL); under NUMBA_DISABLE_JIT=1 numba returns
    the function itself, interpreted."""
    compiled: F = numba.njit(cache=True, nogil=True)(fn)  # type: ignore[assignment]  # a Dispatcher calls as F
    return compiled


def njit_kernel(fn: F) -> F:
    """`njit` without numba's reference counting (its NRT), for kernels and their helpers that only
    read and write the arrays they are given and allocate none. With counting, every call of a
    helper increments and decrements each array argument's count, two atomic operations per array
    that LLVM keeps when it does not inline the helper: a scavenge's evacuate step takes seven
    arrays, and a 65,535-node tree took 19.6 ms with counting against 3.2 ms without (bench/micro_gc.py).
    `_nrt` is numba's own flag for this (numba/core/options.py)."""
    # numba's type stubs omit its `_nrt` option (numba/core/options.py), hence the ignore
    compiled: F = numba.njit(cache=True, nogil=True, _nrt=False)(fn)  # type: ignore[call-overload]
    return compiled


def njit_generic(fn: F) -> F:
    """`njit` for a loop that takes compiled functions as arguments (sim/policies/compiled.py's
    replay loop takes a policy's kernels), NOT cached on disk: numba keys such a specialisation by
    the argument functions' types, which hold weak references to their dispatchers, and pickling one
    for the cache fails when that dispatcher was re-created ("underlying object has vanished", met in
    Dask's workers). Each process compiles it once per policy (about a second); the kernels it calls
    stay cached."""
    compiled: F = numba.njit(cache=False, nogil=True)(fn)  # type: ignore[assignment]  # a Dispatcher calls as F
    return compiled
