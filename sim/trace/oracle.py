"""libCacheSim's oracleGeneral binary trace: 24-byte little-endian records, no header.

    struct { uint32_t clock_time; uint64_t obj_id; uint32_t obj_size; int64_t next_access_vtime; }
    (libCacheSim/traceReader/customizedReader/oracle/oracleGeneralBin.h)

Owns: reading such a file in chunks (np.memmap slices: nothing is read before it is asked for) and
writing one from any stream of chunks, computing next_access_vtime.
Invariants: next_access_vtime is libCacheSim's: the 1-based request number of the next request for
the same object, -1 when none comes (its reader also takes INT64_MAX as none); chunks carry it
0-based (chunk.py). libCacheSim's converter computes it with a backward read of the trace and a
map of each object's last-seen request (libCacheSim/bin/traceUtils/traceConvOracleGeneral.cpp,
`convert_to_oracleGeneral` and `_reverse_file`); `write` does the same pass chunk by chunk over the
file it has just written (a memory map, updated in place), so the trace itself is never in memory:
what is kept is one int64 pair per distinct object seen so far from the end (16 bytes x objects,
like libCacheSim's map), plus one chunk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt

from memsim.sim.trace.chunk import TraceChunk

__all__ = ["RECORD", "read", "requests", "write"]

RECORD = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])  # packed: 24 bytes
assert RECORD.itemsize == 24
NONE = -1
INT64_MAX = np.iinfo(np.int64).max
U32_MAX = np.iinfo(np.uint32).max


def requests(path: str | os.PathLike[str]) -> int:
    size = os.path.getsize(path)
    if size % RECORD.itemsize:
        raise ValueError(f"{os.fspath(path)}: {size} bytes is not a whole number of 24-byte oracleGeneral records")
    return size // RECORD.itemsize


def _records(path: str | os.PathLike[str], mode: str = "r") -> npt.NDArray[np.void]:
    n = requests(path)
    if n == 0:
        return np.zeros(0, RECORD)
    return np.memmap(path, dtype=RECORD, mode=mode, shape=(n,))  # type: ignore[call-overload]  # numpy's stubs lack a mode str overload


def to_chunk(rec: npt.NDArray[np.void]) -> TraceChunk:
    nxt = rec["next"].astype(np.int64)
    nxt = np.where((nxt == NONE) | (nxt == INT64_MAX) | (nxt <= 0), NONE, nxt - 1)
    return TraceChunk(time=rec["time"].astype(np.int64), key=rec["id"].view(np.int64).copy(),
                      size=rec["size"].astype(np.int64), op=np.zeros(len(rec), np.int8), next_access=nxt)


def read(path: str | os.PathLike[str], chunk_requests: int) -> Iterator[TraceChunk]:
    rec = _records(path)
    for lo in range(0, len(rec), chunk_requests):
        yield to_chunk(rec[lo:lo + chunk_requests])


def keys(path: str | os.PathLike[str]) -> npt.NDArray[np.int64]:
    return _records(path)["id"].view(np.int64).copy()


def _check_range(c: TraceChunk) -> None:
    for name, col in (("time", c.time), ("size", c.size)):
        if len(col) and (col.min() < 0 or col.max() > U32_MAX):
            raise ValueError(f"oracleGeneral stores {name} as uint32; this trace has {name}s in "
                             f"[{col.min()}, {col.max()}]")


def write(path: str | os.PathLike[str], chunks: Iterable[TraceChunk], chunk_requests: int = 1 << 20) -> int:
    """Write the chunks as oracleGeneral, with next_access_vtime computed (any next_access the
    chunks carry is ignored: a stream rarely knows it). Returns the number of records."""
    tmp = f"{os.fspath(path)}.partial"
    n = 0
    with open(tmp, "wb") as f:
        for c in chunks:
            _check_range(c)
            rec = np.empty(len(c), RECORD)
            rec["time"], rec["id"], rec["size"], rec["next"] = c.time, c.key.view(np.uint64), c.size, NONE
            rec.tofile(f)
            n += len(c)
    try:
        if n:
            _fill_next(_records(tmp, "r+"), chunk_requests)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return n


def _fill_next(rec: npt.NDArray[np.void], chunk_requests: int) -> None:
    """The backward pass: chunks from the last to the first; within a chunk each request's next
    request is found by a stable sort of its keys, and a key's last request in the chunk looks up
    the first request of the same key in the part already done (`seen`: sorted keys and their
    first request numbers)."""
    seen_keys = np.zeros(0, np.int64)
    seen_first = np.zeros(0, np.int64)
    n = len(rec)
    for hi in range(n, 0, -chunk_requests):
        lo = max(0, hi - chunk_requests)
        k = rec["id"][lo:hi].view(np.int64)
        order = np.argsort(k, kind="stable")
        sk = k[order]
        pos = order.astype(np.int64) + lo  # request numbers, in key order (ascending within a key)
        nxt = np.full(hi - lo, NONE, np.int64)
        same = sk[1:] == sk[:-1]
        nxt[order[:-1][same]] = pos[1:][same] + 1  # 1-based, libCacheSim's vtime
        last = np.ones(len(sk), bool)
        last[:-1] = ~same
        lk = sk[last]
        at = np.searchsorted(seen_keys, lk)
        at_c = np.minimum(at, max(len(seen_keys) - 1, 0))
        found = (at < len(seen_keys)) & (seen_keys[at_c] == lk) if len(seen_keys) else np.zeros(len(lk), bool)
        later = np.where(found, seen_first[at_c] + 1 if len(seen_keys) else NONE, NONE)
        nxt[order[last]] = later
        rec["next"][lo:hi] = nxt
        first = np.ones(len(sk), bool)
        first[1:] = ~same
        # the chunk's first requests override what was seen later: np.unique keeps the first index
        merged_k = np.concatenate([sk[first], seen_keys])
        merged_f = np.concatenate([pos[first], seen_first])
        seen_keys, idx = np.unique(merged_k, return_index=True)
        seen_first = merged_f[idx]
    if isinstance(rec, np.memmap):
        rec.flush()
