"""The unit every trace reader yields and every writer takes: `TraceChunk`, a run of requests as
equal-length numpy columns, and `Op`, the one table of request kinds.

Owns: the column names and dtypes, the op codes and their names. Touches nothing else.
Invariants: every column of a chunk has the same length; `key` is an int64 object id (readers map
text keys to ids with `key_id`, a stable 64-bit hash); `size` is in bytes (1 when a format has none);
`next_access` is the 0-based index in the whole trace of the next request for the same key, -1 when
there is none, or when the format does not carry it (a reader's `has_next_access` says which).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

__all__ = ["Op", "TraceChunk", "concat", "key_id", "op_code"]

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class Op(IntEnum):
    """A request's kind. The first three are the contract every tool relies on (a cache replay
    treats GET and SET as accesses and DEL as a removal); the rest name what the live cache and the
    VM record, so that a captured trace keeps them apart (libCacheSim's req_op_e has the same split
    between reads, writes, deletes and the rest: libCacheSim/include/libCacheSim/enum.h)."""

    GET = 0  # a read: GET, MGET's keys, a load of a page
    SET = 1  # a write: SET, INCR, APPEND..., a store to a page
    DEL = 2  # a removal: DEL, UNLINK, GETDEL
    READ_META = 3  # reads the key's metadata only: EXISTS, TTL, TYPE, STRLEN
    WRITE_META = 4  # changes the key's metadata only: EXPIRE, PERSIST
    OTHER = 5  # any other command that names a key


_NAMES = {op.name.lower(): op for op in Op} | {"read": Op.GET, "write": Op.SET, "delete": Op.DEL}


def op_code(text: str) -> int:
    """An op from its name in a trace file (get/set/del..., case-insensitive, libCacheSim's read/write
    too) or its number."""
    t = text.strip().lower()
    if t in _NAMES:
        return int(_NAMES[t])
    try:
        return int(Op(int(t)))
    except ValueError:
        raise ValueError(f"unknown op {text!r}; known: {', '.join(sorted(_NAMES))} or 0-{len(Op) - 1}") from None


def key_id(key: bytes | str) -> int:
    """The int64 id of a text key. A key that is a decimal integer in int64's range is its own id
    (libCacheSim's obj_id_is_num); any other key is the first 8 bytes of its BLAKE2b digest as a
    signed integer. "Decimal integer" is what Python's int() reads (a sign, surrounding blanks,
    digit-separating underscores), because that is also what numpy's string-to-int64 cast, the text
    readers' fast path for a chunk of numeric keys, reads: one rule, so a key's id does not depend on
    which chunk it falls in (text.py's `_keys`). A number outside int64 (e.g. 2^63) is hashed.
    A hash and not a first-seen dictionary: it needs no state, so chunks, files and
    processes (each core's capture) give one key one id without sharing anything, and memory stays
    flat however many keys a trace has; libCacheSim hashes string ids the same way (its FAQ). Two keys
    collide with probability about U^2 / 2^65 for U keys: 1e-8 for 600 million keys."""
    b = key.encode() if isinstance(key, str) else bytes(key)
    try:
        v = int(b.decode("utf-8"))  # a key of over 4300 digits is refused by int() at once
    except ValueError:  # also UnicodeDecodeError
        pass
    else:
        if INT64_MIN <= v <= INT64_MAX:
            return v
    return int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little", signed=True)


@dataclass(frozen=True)
class TraceChunk:
    """A run of requests, one row per request, as columns."""

    time: I64
    key: I64
    size: I64
    op: I8
    next_access: I64

    def __post_init__(self) -> None:
        n = len(self.key)
        for name in ("time", "size", "op", "next_access"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TraceChunk column {name} has {len(getattr(self, name))} rows, key has {n}")

    def __len__(self) -> int:
        return len(self.key)

    @classmethod
    def of(cls, key: npt.ArrayLike, *, time: npt.ArrayLike | None = None, size: npt.ArrayLike | None = None,
           op: npt.ArrayLike | None = None, next_access: npt.ArrayLike | None = None, start: int = 0) -> TraceChunk:
        """A chunk from a key column; missing columns get their defaults (time = the request's index
        from `start`, size 1, op GET, next_access -1)."""
        k = np.ascontiguousarray(key, dtype=np.int64)
        n = len(k)
        return cls(time=np.arange(start, start + n, dtype=np.int64) if time is None else np.asarray(time, np.int64),
                   key=k,
                   size=np.ones(n, np.int64) if size is None else np.asarray(size, np.int64),
                   op=np.zeros(n, np.int8) if op is None else np.asarray(op, np.int8),
                   next_access=np.full(n, -1, np.int64) if next_access is None else np.asarray(next_access, np.int64))

    def slice(self, lo: int, hi: int) -> TraceChunk:
        return TraceChunk(self.time[lo:hi], self.key[lo:hi], self.size[lo:hi], self.op[lo:hi], self.next_access[lo:hi])


def concat(chunks: Iterable[TraceChunk]) -> TraceChunk:
    """One chunk of all (the whole trace in memory: only when asked)."""
    cs = list(chunks)
    if not cs:
        return TraceChunk.of(np.zeros(0, np.int64))
    return TraceChunk(*(np.concatenate([getattr(c, f) for c in cs]) for f in
                        ("time", "key", "size", "op", "next_access")))
