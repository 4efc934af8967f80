"""The `memsim` command's flag types and its parser class, shared by every subcommand.

Each type refuses a bad value while argparse parses, so a command never starts with one: the
error is one line naming the flag and `--help` (`Parser.error`), exit code 2. Imports no gRPC
(server/supervisor.py does not either): the parser is built before `memsim serve` forks its workers.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import NoReturn

from memsim.server.supervisor import ServeOptions

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def parse_bytes(text: str) -> int:
    """A size in bytes, binary units: 4096, 64MiB, 1GiB (k, m, g and kb, mb, gb are binary too)."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 64MiB, 4096, 1GiB)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def size_text(n: int) -> str:
    """A size as parse_bytes reads it back, in the largest unit that divides it (64MiB, 4096)."""
    for unit in ("GiB", "MiB", "KiB"):
        scale = _UNITS[unit.lower()]
        if n and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def whole(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer flag between lo and hi (inclusive)."""
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {_bounds(lo, hi)}")
        return value
    parse.__name__ = "whole number"
    return parse


def real(lo: float, hi: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """A finite number flag, at least lo (or strictly above it) and at most hi."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < lo or (above and value == lo) or (hi is not None and value > hi):
            want = (f"a number above {lo:g}" + ("" if hi is None else f" and at most {hi:g}")) if above \
                else _bounds(lo, hi)
            raise argparse.ArgumentTypeError(f"{text} is out of range: give {want}")
        return value
    parse.__name__ = "number"
    return parse


def _bounds(lo: float, hi: float | None) -> str:
    return f"at least {lo:g}" if hi is None else f"{lo:g} to {hi:g}"


def out_file(text: str) -> str:
    """A file a command writes when it is done ('-': stdout): its directory must exist and be writable
    now, so that a typo fails at once and not with a traceback after the work."""
    if text == "-":
        return text
    where = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a directory; name a file")
    if not os.path.isdir(where):
        raise argparse.ArgumentTypeError(f"{text}: there is no directory {where}")
    if not os.access(where, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: the directory {where} is not writable")
    return text


def target(text: str) -> str:
    """HOST:PORT of a server."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:50051)")
    return text


def one_of(names: Iterable[str], default: str | None = None) -> str:
    """A help text's list of choices, read from their table: "a, b (default), c"."""
    return ", ".join(f"{n} (default)" if n == default else n for n in names)


target.__name__ = "HOST:PORT"
parse_bytes.__name__ = "size"
SERVE = ServeOptions()  # `memsim serve`'s own defaults (server/supervisor.py)
DEFAULT_HOST = SERVE.host  # where the client commands look for a server: where `memsim serve` listens
DEFAULT_PORT = SERVE.port
DEFAULT_TARGET = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
TARGET_HELP = f"the server's HOST:PORT (default {DEFAULT_TARGET})"
COUNT = whole(1)  # processes, clients, cores, slots, keys, pages, batch and pipeline lengths
SECONDS = real(0, above=True)  # durations and timeouts
FRACTION = real(0, 1)  # shares and ratios
PORT = whole(0, 65535)
CLIENT_PORT = whole(1, 65535)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line that names the way out (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def usage_error(args: argparse.Namespace, message: str) -> int:
    """A bad combination of flags, found after parsing: one line, as argparse's own errors."""
    print(f"{args.prog}: {message} (see {args.prog} --help)", file=sys.stderr)
    return 2


def server_error(command: str, target: str, e: Exception, code: str, *, hint: bool = True) -> int:
    """A server that answered with an error (or did not answer): one line, and where to point instead."""
    print(f"memsim {command}: {target}: {code}: {e}", file=sys.stderr)
    if hint and code == "UNAVAILABLE":
        print("is a server running there? point at it with --target HOST:PORT", file=sys.stderr)
    return 1
