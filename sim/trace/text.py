"""The text trace formats: CSV (time, key, size, op, with a header) and plain key-per-line text.

Owns: parsing and writing those two formats, a chunk of lines at a time (a file larger than memory
is never read whole). Touches only the file it is given.
Invariants: a CSV row's columns are found by the header's names or by `CsvColumns` (libCacheSim's
csv reader takes the same options: time-col, obj-id-col, obj-size-col, op-col, delimiter, has-header;
libCacheSim/traceReader/generalReader/csv.c), 0-based here; keys become ids with chunk.key_id;
a text file's request time is its line number (0-based, blank lines skipped).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import IO

import numpy as np
import numpy.typing as npt

from memsim.sim.trace.chunk import Op, TraceChunk, key_id, op_code

__all__ = ["CsvColumns", "parse_columns", "read_csv", "read_txt", "write_csv", "write_txt"]

# the header names a column is recognised by (memsim's own first, then libCacheSim's and common ones)
ALIASES = {
    "time": ("time", "timestamp", "clock_time", "real_time", "ts"),
    "key": ("key", "obj_id", "id", "object", "object_id", "obj"),
    "size": ("size", "obj_size", "object_size", "value_size", "bytes"),
    "op": ("op", "operation", "req_op", "cmd", "command"),
    "next_access": ("next_access", "next_access_vtime"),
}
HEADER = ("time", "key", "size", "op")


@dataclass(frozen=True)
class CsvColumns:
    """Where each field is (0-based column numbers; None: absent), the delimiter, and whether the
    first row is a header. Left at None, the columns are found by the header's names, or without a
    header are time, key, size, op in that order (a single column is the key)."""

    time: int | None = None
    key: int | None = None
    size: int | None = None
    op: int | None = None
    next_access: int | None = None
    delimiter: str = ","
    header: bool | None = None  # None: a header if the first row names a key column

    def located(self) -> bool:
        return self.key is not None


# libCacheSim's names for the options (its cachesim's -t "time-col=1,obj-id-col=2,...": 1-based columns)
_OPTION_FIELDS = {"time-col": "time", "obj-id-col": "key", "obj-size-col": "size", "op-col": "op",
                  "next-access-col": "next_access"}


def parse_columns(text: str) -> CsvColumns:
    """CsvColumns from libCacheSim's option string, e.g. "time-col=1,obj-id-col=2,obj-size-col=3,
    delimiter=;,has-header=false" (its columns 1-based, as there; `delimiter=` takes the one
    character after it, a comma included; `obj-id-is-num` is accepted and needs nothing here: a
    decimal key is its own id anyway)."""
    found: dict[str, int] = {}
    delimiter, header = ",", None
    i, n = 0, len(text)
    while i < n:
        if text[i] in ", ":
            i += 1
            continue
        eq = text.find("=", i)
        if eq < 0:
            raise ValueError(f"CSV option {text[i:]!r} has no value (name=value)")
        name = text[i:eq].strip().lower()
        if name == "delimiter":  # one character, or \t written out
            tab = text[eq + 1:eq + 3] == "\\t"
            delimiter = "\t" if tab else text[eq + 1:eq + 2]
            if not delimiter:
                raise ValueError("delimiter= needs a character")
            i = eq + (3 if tab else 2)
            continue
        end = eq + 1
        while end < n and text[end] not in ", ":
            end += 1
        value, i = text[eq + 1:end].strip(), end
        if name in _OPTION_FIELDS:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{name} is a 1-based column number, not {value!r}")
            found[_OPTION_FIELDS[name]] = int(value) - 1
        elif name == "has-header":
            header = value.lower() in ("1", "true", "yes")
        elif name != "obj-id-is-num":
            known = ", ".join([*_OPTION_FIELDS, "delimiter", "has-header"])
            raise ValueError(f"unknown CSV option {name!r}; known: {known}")
    if found and "key" not in found:
        raise ValueError("the CSV options name columns but not obj-id-col")
    return _at(found, CsvColumns(delimiter=delimiter), header)


def _from_header(row: Sequence[str], base: CsvColumns) -> CsvColumns | None:
    names = [c.strip().lower() for c in row]
    found: dict[str, int] = {}
    for field, aliases in ALIASES.items():
        for i, n in enumerate(names):
            if n in aliases:
                found[field] = i
                break
    if "key" not in found:
        return None
    return _at(found, base, header=True)


def _at(found: dict[str, int], base: CsvColumns, header: bool | None) -> CsvColumns:
    return CsvColumns(time=found.get("time"), key=found.get("key"), size=found.get("size"), op=found.get("op"),
                      next_access=found.get("next_access"), delimiter=base.delimiter, header=header)


def _default_columns(width: int, base: CsvColumns) -> CsvColumns:
    if width == 1:
        return replace(base, key=0)
    return _at(dict(zip(HEADER, range(width), strict=False)), base, base.header)


def _ints(col: list[str]) -> npt.NDArray[np.int64]:
    a = np.asarray(col)
    try:
        return a.astype(np.int64)
    except (ValueError, OverflowError):
        return a.astype(np.float64).astype(np.int64)  # a time in fractional seconds, truncated


def _keys(col: list[str]) -> npt.NDArray[np.int64]:
    try:
        return np.asarray(col).astype(np.int64)
    except (ValueError, OverflowError):
        return np.fromiter((key_id(k) for k in col), np.int64, len(col))


def _ops(col: list[str]) -> npt.NDArray[np.int8]:
    codes = {v: op_code(v) for v in set(col)}
    return np.fromiter((codes[v] for v in col), np.int8, len(col))


def read_csv(f: IO[str], chunk_requests: int, columns: CsvColumns | None = None) -> Iterator[TraceChunk]:
    cols = columns or CsvColumns()
    rows = (r for r in csv.reader(f, delimiter=cols.delimiter) if r and any(c.strip() for c in r))
    first = next(rows, None)
    if first is None:
        return
    if cols.header is not False and not cols.located():
        h = _from_header(first, cols)
        if h is not None:
            cols, first = h, None
        elif cols.header:
            raise ValueError(f"the CSV header {first!r} names no key column ({'/'.join(ALIASES['key'])})")
    elif cols.header:
        first = None
    if not cols.located():
        cols = _default_columns(len(first or ()), cols)
    pending: Iterable[list[str]] = rows if first is None else itertools.chain([first], rows)
    it = iter(pending)
    start = 0
    while batch := list(itertools.islice(it, chunk_requests)):
        def col(i: int | None, b: list[list[str]] = batch, first: int = start) -> list[str] | None:
            if i is None:
                return None
            short = next((j for j, r in enumerate(b) if len(r) <= i), None)
            if short is not None:
                raise ValueError(f"CSV data row {first + short + 1} has {len(b[short])} columns, not the "
                                 f"{i + 1} the trace's columns need: {cols.delimiter.join(b[short])[:200]!r}")
            return [r[i] for r in b]

        k, t, s, o, na = col(cols.key) or [], col(cols.time), col(cols.size), col(cols.op), col(cols.next_access)
        try:
            chunk = TraceChunk.of(_keys(k), start=start,
                                  time=None if t is None else _ints(t), size=None if s is None else _ints(s),
                                  op=None if o is None else _ops(o), next_access=None if na is None else _ints(na))
        except (ValueError, OverflowError) as e:  # a bad number or op, named with where it is
            raise ValueError(f"CSV data rows {start + 1}-{start + len(batch)}: {e}") from None
        yield chunk
        start += len(batch)


def read_txt(f: IO[str], chunk_requests: int) -> Iterator[TraceChunk]:
    lines = (ln.strip() for ln in f)
    it = (ln for ln in lines if ln)
    start = 0
    while batch := list(itertools.islice(it, chunk_requests)):
        yield TraceChunk.of(_keys(batch), start=start)
        start += len(batch)


def write_csv(f: IO[str], chunks: Iterable[TraceChunk]) -> int:
    names = [op.name.lower() for op in Op]
    f.write(",".join(HEADER) + "\n")
    n = 0
    for c in chunks:
        ops = [names[o] if 0 <= o < len(names) else str(o) for o in c.op.tolist()]
        f.writelines(f"{t},{k},{s},{o}\n" for t, k, s, o in
                     zip(c.time.tolist(), c.key.tolist(), c.size.tolist(), ops, strict=True))
        n += len(c)
    return n


def write_txt(f: IO[str], chunks: Iterable[TraceChunk]) -> int:
    n = 0
    for c in chunks:
        f.writelines(f"{k}\n" for k in c.key.tolist())
        n += len(c)
    return n
