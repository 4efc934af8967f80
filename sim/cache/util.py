"""Redis's integer parsing (src/util.c string2ll): the one parser of every integer argument and stored
counter; and the one reading of a command's option word (`upper`) and Redis's shared syntax error.

Owns no state and touches nothing shared.
"""

from __future__ import annotations

import re

from memsim.sim.errors import InvalidArgument

_INT64_TEXT = re.compile(rb"0|-?[1-9][0-9]*")  # Redis string2ll: no "-0", no leading zeros
# Redis's string2ll refuses LONG_STR_SIZE (21) bytes or more before looking at a digit: the longest
# 64-bit decimal is "-9223372036854775808". Checked first, so that no parse costs more than 20 bytes
# (Python's int() would take quadratic time on a 16 MiB value, and refuses 4,300 digits with a ValueError).
MAX_INT64_CHARS = 20
E_NOT_INT = "ERR value is not an integer or out of range"
E_SYNTAX = "ERR syntax error"  # Redis's shared.syntaxerr


def upper(arg: bytes) -> str:
    """A command name or option word as text, upper-cased ("?" if it is not ASCII: it matches none)."""
    try:
        return bytes(arg).decode("ascii").upper()
    except UnicodeDecodeError:
        return "?"


def string2ll(value: bytes) -> int | None:
    """Redis's string2ll (src/util.c): a canonical decimal (no spaces, '+', "-0" or leading zeros)
    within 64 bits, else None."""
    value = bytes(value)
    if len(value) > MAX_INT64_CHARS or not _INT64_TEXT.fullmatch(value):  # int() would take "1_0", " 1", "+1"
        return None
    n = int(value)
    return n if -(1 << 63) <= n < (1 << 63) else None


def parse_int64(value: bytes) -> int:
    """string2ll, or Redis's "value is not an integer or out of range"."""
    n = string2ll(value)
    if n is None:
        raise InvalidArgument(E_NOT_INT)
    return n
