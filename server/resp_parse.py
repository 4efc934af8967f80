"""Requests in the Redis protocol: the multibulk form and the inline form, with Redis's limits and messages.

Owns the parsing rules of Redis's src/networking.c (processInlineBuffer, processMultibulkBuffer,
sdssplitargs in src/sds.c) and their error texts, which a client gets as "-ERR Protocol error: ...".
Touches nothing but the bytes it is given.

Two parsers, one meaning:
- `fast_parse` hands a whole read to hiredis's C Reader, the common case: a read holding whole
  multibulk commands. It returns None (and has parsed nothing, for nothing has run) whenever the
  read is anything else: a frame cut at the read's end, an inline command, a non-bulk element, a
  count or length over the limits. hiredis builds no list before its elements arrive, so a huge
  declared count costs nothing while it is refused here.
- `parse` is the authority, Redis's loop in Python: every header checked before its payload is
  awaited, so a 2 GiB bulk length or a never-ending line is refused at once, with Redis's text.
  It runs on the reads fast_parse declines, and is given what is left of an unfinished frame.

Limits (Redis's, with the bulk length held to what the cache can store):
- a bulk longer than `MAX_BULK` (the cache's value limit, sim/cache/db.py; Redis's
  proto-max-bulk-len is 512 MB): "invalid bulk length";
- a multibulk count over `MAX_MULTIBULK` (1024*1024, Redis's limit before 7.0): "invalid multibulk length";
- a header or inline line with no end within `PROTO_INLINE_MAX_SIZE` (64 KiB): "too big mbulk count
  string", "too big bulk count string", "too big inline request".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import hiredis

from memsim.sim.cache.db import MAX_VALUE_BYTES
from memsim.sim.cache.util import string2ll

MAX_BULK = MAX_VALUE_BYTES
MAX_MULTIBULK = 1024 * 1024
PROTO_INLINE_MAX_SIZE = 64 * 1024  # Redis's server.h
STAR, DOLLAR, CR, LF = 0x2A, 0x24, 0x0D, 0x0A
# every array header hiredis could accept in a read ("*" and a count: its string2ll takes digits, no sign)
_COUNTS = re.compile(rb"\*([0-9]{1,19})\r\n")  # more digits: hiredis refuses the count itself
_LONGER = [re.compile(rb"\*[0-9]{%d}" % (d + 1)) for d in range(20)]  # a count of more than d digits


class ProtocolError(Exception):
    """A request Redis would refuse with "-ERR Protocol error: <text>" and then close the connection."""


@dataclass
class Partial:
    """A multibulk command cut short: the arguments read so far, how many are still to come, and where
    the next one starts, counted from the start of the command. Parsing resumes here instead of
    reading the command again from its start, so a command sent in many reads costs its length once."""

    args: list[bytes]
    left: int
    offset: int


@dataclass
class Parsed:
    commands: list[list[bytes]]
    used: int  # bytes consumed: the rest is the start of a command not yet whole
    error: ProtocolError | None = None  # the commands before it still run, as in Redis
    partial: Partial | None = None  # the command not yet whole, if it is a multibulk one begun


def fast_parse(reader: hiredis.Reader, data: bytes) -> list[list[bytes]] | None:
    """Every command of a read made of whole multibulk commands of bulk strings within the limits, or None.

    `reader` is the connection's own, empty; after None it may hold part of the read and must be replaced."""
    if not data or data[0] != STAR:
        return None
    if not _declared_fit(data):
        return None
    reader.feed(data)
    out = []
    try:
        while (cmd := reader.gets()) is not False:
            if type(cmd) is not list or len(cmd) > MAX_MULTIBULK:
                return None
            for a in cmd:
                if type(a) is not bytes:
                    return None
            if cmd:  # "*0": nothing to run, as parse (and Redis) skips it
                out.append(cmd)
        # hiredis answers False both when it has read everything and when it holds part of a command,
        # and cannot say which: an empty command tells them apart, for only an idle reader returns it
        # whole (inside a command it would be an element, a bulk's bytes, or a malformed header)
        reader.feed(b"*0\r\n")
        if reader.gets() != []:
            return None
    except hiredis.ProtocolError:
        return None
    if len(data) > MAX_BULK and any(len(a) > MAX_BULK for cmd in out for a in cmd):
        return None
    return out


def _declared_fit(data: bytes) -> bool:
    """Whether the arrays the read declares hold at most len(data) // 4 elements in all.

    hiredis allocates an array's whole list (8 bytes an element) as soon as it reads its header, a nested
    one too: "*2000000000" made it calloc 16 GB and free it slot by slot, wedging the loop. A read of
    whole commands holds every element it declares, each at least 4 bytes, so a read declaring more is
    cut or malformed: parse answers it, and hiredis never allocates more than twice the read. Cheaply
    on the hot path: a header starts the read or follows a newline, so with h of them, counts of at most
    d digits (h * (10**d - 1) <= the bound) cannot add up past it; a "*" inside a value only counts
    against the fast path, never the meaning."""
    limit = len(data) // 4
    headers = data.count(b"\n*") + 1
    if headers == 1:  # one command, the common read: its own count
        cr = data.find(b"\r", 1, 22)
        return cr < 0 or not data[1:cr].isdigit() or int(data[1:cr]) <= limit
    d = len(str(limit // headers + 1)) - 1
    if d and not _LONGER[min(d, 19)].search(data):
        return True
    return sum(map(int, _COUNTS.findall(data))) <= limit


def parse(buf: bytes | bytearray, resume: Partial | None = None) -> Parsed:
    """Redis's processInputBuffer over buf: whole commands, how far they reach, and the error that stopped
    it. `resume`: buf starts with the command a previous call left unfinished."""
    out: list[list[bytes]] = []
    pos, n = 0, len(buf)
    while pos < n:
        try:
            if resume is not None:
                cmd, end = _elements(buf, pos, resume)
                resume = None
            elif buf[pos] == STAR:
                cmd, end = _multibulk(buf, pos)
            else:
                cmd, end = _inline(buf, pos)
        except ProtocolError as e:
            return Parsed(out, pos, e)
        if isinstance(end, Partial):
            return Parsed(out, pos, partial=end)
        if end < 0:
            break
        pos = end
        if cmd:  # an empty line or "*0": nothing to run (Redis resets the client and goes on)
            out.append(cmd)
    return Parsed(out, pos)


def _line_end(buf: bytes | bytearray, pos: int, too_big: str) -> int:
    """The index of the '\\r' ending the header line at pos, or -1 if it has not all arrived."""
    cr = buf.find(b"\r", pos)
    if cr < 0:
        if len(buf) - pos > PROTO_INLINE_MAX_SIZE:
            raise ProtocolError(too_big)
        return -1
    if cr + 1 >= len(buf):  # the '\n' after it is still to come
        return -1
    return cr


def _multibulk(buf: bytes | bytearray, pos: int) -> tuple[list[bytes], int | Partial]:
    """processMultibulkBuffer: one "*N" command of N "$len" bulk strings; end -1 if not even its
    count has arrived, a Partial if some of its elements have not."""
    cr = _line_end(buf, pos, "too big mbulk count string")
    if cr < 0:
        return [], -1
    count = string2ll(bytes(buf[pos + 1:cr]))
    if count is None or count > MAX_MULTIBULK:
        raise ProtocolError("invalid multibulk length")
    if count <= 0:
        return [], cr + 2
    return _elements(buf, pos, Partial([], count, cr + 2 - pos))


def _elements(buf: bytes | bytearray, start: int, p: Partial) -> tuple[list[bytes], int | Partial]:
    """The elements of the command that starts at `start`, from where `p` left it."""
    args, left, pos = p.args, p.left, start + p.offset
    while left:
        if pos >= len(buf):
            return [], Partial(args, left, pos - start)
        cr = _line_end(buf, pos, "too big bulk count string")
        if cr < 0:
            return [], Partial(args, left, pos - start)
        if buf[pos] != DOLLAR:
            raise ProtocolError(f"expected '$', got '{chr(buf[pos])}'")
        size = string2ll(bytes(buf[pos + 1:cr]))
        if size is None or size < 0 or size > MAX_BULK:
            raise ProtocolError("invalid bulk length")
        begin = cr + 2
        if len(buf) < begin + size + 2:
            return [], Partial(args, left, pos - start)
        args.append(bytes(buf[begin:begin + size]))
        pos = begin + size + 2
        left -= 1
    return args, pos


def _inline(buf: bytes | bytearray, pos: int) -> tuple[list[bytes], int]:
    """processInlineBuffer: one line of space-separated arguments, quotes as sdssplitargs reads them."""
    lf = buf.find(b"\n", pos)
    if lf < 0:
        if len(buf) - pos > PROTO_INLINE_MAX_SIZE:
            raise ProtocolError("too big inline request")
        return [], -1
    line = bytes(buf[pos:lf])
    if line.endswith(b"\r"):
        line = line[:-1]
    args = split_args(line.split(b"\0", 1)[0])  # sdssplitargs reads a C string: a NUL ends it
    if args is None:
        raise ProtocolError("unbalanced quotes in request")
    return args, lf + 1


_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_HEX = b"0123456789abcdefABCDEF"
_SPACE = b" \n\r\t\v\f"  # C's isspace()


def split_args(line: bytes) -> list[bytes] | None:
    """sdssplitargs (src/sds.c): words, "double quoted" with \\xHH and \\n-style escapes, 'single quoted'
    with \\' alone; a closing quote must be followed by a space or the end. None: unbalanced quotes."""
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        cur = bytearray()
        quote = 0  # 0, or the quote character we are inside
        while True:
            if i >= n:
                if quote:
                    return None
                break
            c = line[i]
            if quote and c == quote:  # the closing quote, which a space or the end must follow
                if i + 1 < n and line[i + 1] not in _SPACE:
                    return None
                quote = 0
                i += 1
                break
            if quote == ord('"'):
                if c == ord("\\") and i + 3 < n and line[i + 1] == ord("x") and line[i + 2] in _HEX \
                        and line[i + 3] in _HEX:
                    cur.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == ord("\\") and i + 1 < n:
                    i += 1
                    cur += _ESCAPES.get(line[i], bytes([line[i]]))
                else:
                    cur.append(c)
            elif quote == ord("'"):
                if c == ord("\\") and i + 1 < n and line[i + 1] == ord("'"):
                    i += 1
                    cur.append(ord("'"))
                else:
                    cur.append(c)
            elif c in _SPACE:
                break
            elif c in (ord('"'), ord("'")):
                quote = c
            else:
                cur.append(c)
            i += 1
        args.append(bytes(cur))
