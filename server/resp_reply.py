"""Replies in the Redis protocol: the command table's results (sim/cache/commands.py) as RESP2 or RESP3 bytes.

Owns the encoding (Redis's src/networking.c addReply*: RESP2 and, after HELLO 3, RESP3) and the
error line a SimError becomes. Touches only the bytearray it is given: every reply of a read is
appended to one buffer, which the connection writes once.

The command table answers in plain Python values (commands.py's module doc); here:

    None  -> RESP2 null bulk "$-1", RESP3 null "_"      int  -> ":n"
    bytes -> bulk string "$len"                          str  -> status "+OK"
    list  -> array "*n"                                  RespMap -> RESP3 map "%n", RESP2 flat array
    Verbatim -> RESP3 verbatim string "=len txt:...", RESP2 bulk string (Redis's INFO and CLIENT LIST)

An error reply is Redis's "-CODE message": the table's SimErrors already carry Redis's text ("ERR
syntax error", "OOM command not allowed ...", "WRONGTYPE ..."); a message that does not start
with an upper-case code gets "ERR " before it, and any CR or LF becomes a space, as Redis's
addReplyErrorLength does (a newline would end the reply early).
"""

from __future__ import annotations

from dataclasses import dataclass

from memsim.sim.errors import SimError


class RespMap(dict):
    """A reply that RESP3 sends as a map (HELLO, CONFIG GET, COMMAND DOCS) and RESP2 as a flat array."""


@dataclass(frozen=True)
class Verbatim:
    """A reply that RESP3 sends as a verbatim text string ("=", format "txt") and RESP2 as a bulk string."""

    text: bytes


CRLF = b"\r\n"
_NULL2, _NULL3 = b"$-1\r\n", b"_\r\n"


def encode(out: bytearray, r: object, resp3: bool) -> None:
    """Append reply r to out (bulk strings and statuses first: they are what SET and GET answer)."""
    if isinstance(r, bytes):
        out += b"$%d\r\n" % len(r)
        out += r
        out += CRLF
    elif isinstance(r, str):
        out += b"+"
        out += r.encode()
        out += CRLF
    elif r is None:
        out += _NULL3 if resp3 else _NULL2
    elif isinstance(r, int):
        out += b":%d\r\n" % r
    elif isinstance(r, list):
        out += b"*%d\r\n" % len(r)
        for x in r:
            encode(out, x, resp3)
    elif isinstance(r, RespMap):
        out += (b"%%%d\r\n" % len(r)) if resp3 else (b"*%d\r\n" % (2 * len(r)))
        for k, v in r.items():
            encode(out, k, resp3)
            encode(out, v, resp3)
    elif isinstance(r, Verbatim):
        if resp3:
            out += b"=%d\r\ntxt:" % (len(r.text) + 4)
        else:
            out += b"$%d\r\n" % len(r.text)
        out += r.text
        out += CRLF
    else:
        raise TypeError(f"no RESP encoding for {type(r).__name__}")


def error_line(message: str) -> bytes:
    """A "-CODE message" line: Redis's own code when the message starts with one, else ERR."""
    text = message.replace("\r", " ").replace("\n", " ")
    code = text.split(" ", 1)[0]
    if not (code and code.isupper() and code.isalpha()):
        text = "ERR " + text
    return b"-" + text.encode("utf-8", "replace") + CRLF


def encode_error(out: bytearray, e: SimError) -> None:
    out += error_line(str(e))
