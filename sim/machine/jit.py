"""The one place numba is imported: `njit` for the compiled loops (the managed heap's collector,
the replacement policies' operations and the trace replay loop, sim/policies/kernels.py).

The scavenger's Cheney loop, marking and sweeping visit every object of a space; written in
Python they run at a few hundred thousand objects a second, compiled with numba at tens of
millions (bench/micro_gc.py measures both). The kernels are plain functions over numpy arrays and
ints, so the same source runs interpreted when `NUMBA_DISABLE_JIT=1` is set,
which the tests use to check that both give byte-identical heaps.

Compiled code is cached on disk (`cache=True`) under $NUMBA_CACHE_DIR, by default
$XDG_CACHE_HOME/memsim/numba/<digest of sim's sources> (site-packages may be read-only), so only the first process on a
machine pays the compile. warmup.py runs every kernel once before the supervisor forks its cores,
so no core compiles on its first GC. No threading layer is used: kernels run in the calling
process, which keeps them fork-safe.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def _sources_digest() -> str:
    """A digest of every module of the machine (memsim.sim). numba's disk cache checks only the
    timestamp of the file that defines a kernel, not of the modules whose kernels it calls and
    inlines (a kernel of scavenge_kernels.py compiled against an older worklist.py would keep
    running the old code); a cache directory per version of the sources cannot go stale that way."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha1()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()[:12]


if "NUMBA_CACHE_DIR" not in os.environ:
    _cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(_cache, "memsim", "numba", _sources_digest())

import numba  # noqa: E402  (after NUMBA_CACHE_DIR is set: numba reads it on import)
import numba.extending  # noqa: E402
import numpy as np  # noqa: E402
from numba.core import cgutils  # noqa: E402

from memsim.sim.machine import atomics  # noqa: E402

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


# Atomics for kernels that several cores run on the same shared arrays (parallel scavenging,
# docs/design/orinoco.md §4). Compiled, each is a numba intrinsic that emits one LLVM instruction,
# `cmpxchg` or `atomicrmw` with seq_cst ordering, inlined into the kernel: no call, no libatomic. On
# x86 an add is `lock xadd`, a CAS `lock cmpxchg`, and an or/and whose old value is used a `lock
# cmpxchg` loop (LLVM's AtomicExpand: x86 has no fetch-or). `atomic_load` is a seq_cst `load atomic`,
# so a loop polling a word written by another core cannot have the read hoisted out of it.
# Each returns the element's value before the operation (C11's atomic_fetch_*); `atomic_cas`
# succeeded iff that value equals `expected`. Interpreted (NUMBA_DISABLE_JIT=1), the same names are
# sim/machine/atomics.py's libatomic calls on the element's address.
def _element_pointer(context: Any, builder: Any, aryty: Any, ary: Any, index: Any, indexty: Any) -> Any:
    arr = context.make_array(aryty)(context, builder, ary)
    idx = context.cast(builder, index, indexty, numba.types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, arr, [idx], wraparound=False)


def _rmw(op: str) -> Any:
    def typer(typingctx: Any, arr: Any, index: Any, value: Any) -> Any:
        if not isinstance(arr, numba.types.Array) or not isinstance(arr.dtype, numba.types.Integer):
            return None

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            aryty, indexty, valty = sig.args
            ptr = _element_pointer(context, builder, aryty, args[0], args[1], indexty)
            val = context.cast(builder, args[2], valty, aryty.dtype)
            return builder.atomic_rmw(op, ptr, val, "seq_cst")

        return arr.dtype(arr, index, value), codegen

    return numba.extending.intrinsic(typer)


def _cas(typingctx: Any, arr: Any, index: Any, expected: Any, desired: Any) -> Any:
    if not isinstance(arr, numba.types.Array) or not isinstance(arr.dtype, numba.types.Integer):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        aryty, indexty, expty, desty = sig.args
        ptr = _element_pointer(context, builder, aryty, args[0], args[1], indexty)
        exp = context.cast(builder, args[2], expty, aryty.dtype)
        des = context.cast(builder, args[3], desty, aryty.dtype)
        return builder.extract_value(builder.cmpxchg(ptr, exp, des, "seq_cst", "seq_cst"), 0)

    return arr.dtype(arr, index, expected, desired), codegen


def _load(typingctx: Any, arr: Any, index: Any) -> Any:
    if not isinstance(arr, numba.types.Array) or not isinstance(arr.dtype, numba.types.Integer):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        aryty, indexty = sig.args
        ptr = _element_pointer(context, builder, aryty, args[0], args[1], indexty)
        return builder.load_atomic(ptr, "seq_cst", aryty.dtype.bitwidth // 8)

    return arr.dtype(arr, index), codegen


Word = int | np.int64 | np.uint64  # what a kernel passes: Python ints, or a uint64 bitmap's words
Rmw = Callable[[np.ndarray, int, Word], int]

if JIT_ENABLED:
    # numba's stubs type an intrinsic by its typing function; called from compiled code it takes the
    # array, index and values, as the interpreted functions below do, hence the casts
    atomic_add = cast(Rmw, _rmw("add"))
    atomic_or = cast(Rmw, _rmw("or"))
    atomic_and = cast(Rmw, _rmw("and"))
    atomic_cas = cast(Callable[[np.ndarray, int, Word, Word], int], numba.extending.intrinsic(_cas))
    atomic_load = cast(Callable[[np.ndarray, int], int], numba.extending.intrinsic(_load))
else:
    atomic_add, atomic_or, atomic_and = atomics.fetch_add, atomics.fetch_or, atomics.fetch_and
    atomic_cas, atomic_load = atomics.compare_exchange, atomics.load


def entry_point(fn: F, *example: object) -> F:
    """The compiled specialisation of `fn` for the types of `example`, as a callable that skips the
    dispatcher: numba's Dispatcher types every argument on each call to pick a specialisation, ~30 ns
    an argument, which doubles the cost of a call with twenty arrays made once per request
    (sim/cache/batch.py). The entry point unboxes the arguments as the specialisation expects, so a
    caller must pass the same types every time. Compiles (or loads from the cache) on first use, by
    calling fn once on `example`; interpreted (NUMBA_DISABLE_JIT=1) it is fn itself."""
    if not JIT_ENABLED:
        return fn
    dispatcher = cast(Any, fn)
    types = tuple(numba.typeof(a) for a in example)
    if types not in dispatcher.overloads:
        dispatcher.compile(types)
    compiled: F = dispatcher.overloads[types].entry_point
    return compiled
