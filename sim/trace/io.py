"""Opening, reading and writing traces by format name: the package's front door.

Owns: the format table (`FORMATS`), guessing a file's format, `TraceReader`. Touches only files.
Invariants: a reader streams (one chunk of at most `chunk_requests` requests in memory at a time);
only `read_keys` and `read_all` hold a whole trace, because their callers asked for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import IO

import numpy as np
import numpy.typing as npt

from memsim.sim.trace import oracle
from memsim.sim.trace.chunk import TraceChunk, concat
from memsim.sim.trace.text import CsvColumns, read_csv, read_txt, write_csv, write_txt

__all__ = ["FORMATS", "TraceReader", "guess_format", "open_trace", "read_all", "read_keys", "write_trace"]

FORMATS = ("csv", "txt", "oracleGeneral")
SUFFIXES = {".csv": "csv", ".txt": "txt", ".oraclegeneral": "oracleGeneral", ".bin": "oracleGeneral"}
DEFAULT_CHUNK = 1 << 20


def _check_format(fmt: str) -> str:
    for f in FORMATS:
        if f.lower() == fmt.lower():
            return f
    raise ValueError(f"unknown trace format {fmt!r}; known: {', '.join(FORMATS)}")


def guess_format(path: str | os.PathLike[str]) -> str:
    """By suffix (`.csv`, `.txt`, `.oracleGeneral`/`.bin`, also under `.zst`-free names such as
    `x.oracleGeneral.bin`), else by content: text that is not UTF-8 or holds NUL bytes is binary,
    hence oracleGeneral; text with the delimiter is CSV; other text is one key per line."""
    name = os.fspath(path).lower()
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix) or f"{suffix}." in os.path.basename(name):
            return fmt
    with open(path, "rb") as f:
        head = f.read(4096)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "oracleGeneral"
    if "\0" in text:
        return "oracleGeneral"
    return "csv" if "," in text.split("\n", 1)[0] else "txt"


class TraceReader:
    """An iterable of TraceChunk over one file; each iteration reads the file again from the start."""

    def __init__(self, path: str | os.PathLike[str], fmt: str, chunk_requests: int = DEFAULT_CHUNK,
                 columns: CsvColumns | None = None):
        if chunk_requests < 1:
            raise ValueError(f"chunk_requests must be at least 1, got {chunk_requests}")
        self.path = os.fspath(path)
        self.fmt = _check_format(fmt)
        self.chunk_requests = chunk_requests
        self.columns = columns
        self.has_next_access = self.fmt == "oracleGeneral" or (columns is not None and columns.next_access is not None)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"no trace file {self.path}")
        if self.fmt == "oracleGeneral":
            oracle.requests(self.path)  # a file that is not whole records is refused at open

    @property
    def requests(self) -> int | None:
        """The number of requests when the format tells it without reading (oracleGeneral), else None."""
        return oracle.requests(self.path) if self.fmt == "oracleGeneral" else None

    def __iter__(self) -> Iterator[TraceChunk]:
        if self.fmt == "oracleGeneral":
            yield from oracle.read(self.path, self.chunk_requests)
            return
        # utf-8-sig: a byte-order mark (Excel's and PowerShell's UTF-8) is not part of the first name or key
        with open(self.path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            if self.fmt == "csv":
                yield from read_csv(f, self.chunk_requests, self.columns)
            else:
                yield from read_txt(f, self.chunk_requests)

    def __repr__(self) -> str:
        return f"TraceReader({self.path!r}, fmt={self.fmt!r})"


def open_trace(path: str | os.PathLike[str], fmt: str | None = None, chunk_requests: int = DEFAULT_CHUNK, *,
               columns: CsvColumns | None = None) -> TraceReader:
    """A streaming reader of the trace at `path` in format `fmt` (one of FORMATS; guessed when None)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no trace file {os.fspath(path)}")
    return TraceReader(path, fmt or guess_format(path), chunk_requests, columns)


def read_keys(path: str | os.PathLike[str], fmt: str | None = None, *,
              columns: CsvColumns | None = None) -> npt.NDArray[np.int64]:
    """The whole key column in memory (8 bytes a request)."""
    r = open_trace(path, fmt, columns=columns)
    if r.fmt == "oracleGeneral":
        return oracle.keys(r.path)
    parts = [c.key for c in r]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def read_all(path: str | os.PathLike[str], fmt: str | None = None) -> TraceChunk:
    """The whole trace as one chunk (in memory: 33 bytes a request)."""
    return concat(open_trace(path, fmt))


def write_trace(path: str | os.PathLike[str], chunks: Iterable[TraceChunk], fmt: str) -> int:
    """Write `chunks` to `path` in `fmt`; returns the number of requests written. oracleGeneral
    gets its next_access_vtime computed (oracle.write's backward pass)."""
    f = _check_format(fmt)
    if f == "oracleGeneral":
        return oracle.write(path, chunks)
    out: IO[str]
    with open(path, "w", encoding="utf-8") as out:
        return write_csv(out, chunks) if f == "csv" else write_txt(out, chunks)
