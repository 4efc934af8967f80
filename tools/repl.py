"""`memsim cli`: redis-cli for the machine's cache.

    memsim cli                          # interactive, "127.0.0.1:50051> " prompt, history in ~/.memsim_cli_history
    memsim cli SET k v                  # one command from the arguments
    echo "INFO memory" | memsim cli     # commands from stdin, one per line

Input lines are split as redis-cli's sdssplitargs() splits them: spaces separate
arguments, "double quotes" take \\n \\r \\t \\xHH escapes, 'single quotes' are literal.
Replies print the way redis-cli prints them: on a terminal with their type ((integer) 5,
(nil), "quoted bulk strings", numbered arrays, (error) ERR ...); with --raw, or when
stdout is not a terminal, bare values one per line, as redis-cli does. Bulk strings that
hold text lines (INFO) print as text.
"""

from __future__ import annotations

import contextlib
import os
import sys
from types import ModuleType
from typing import Any, TextIO

from memsim.client import Cache, MemsimError, Unavailable

HISTORY = os.path.expanduser("~/.memsim_cli_history")


class SplitError(ValueError):
    pass


def _past_closing_quote(line: str, i: int) -> int:
    """The index after the closing quote at i, which sdssplitargs requires be followed by a space or the end."""
    i += 1
    if i < len(line) and not line[i].isspace():
        raise SplitError("Invalid argument(s): closing quote must be followed by a space")
    return i


def split_args(line: str) -> list[bytes]:
    """redis-cli's sdssplitargs()."""
    out: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return out
        cur = bytearray()
        if line[i] == '"':
            i += 1
            while True:
                if i >= n:
                    raise SplitError("Invalid argument(s): unbalanced quotes")
                c = line[i]
                if c == "\\" and i + 3 < n and line[i + 1] == "x" and _hex(line[i + 2:i + 4]):
                    cur.append(int(line[i + 2:i + 4], 16))
                    i += 4
                    continue
                if c == "\\" and i + 1 < n:
                    cur += {"n": b"\n", "r": b"\r", "t": b"\t", "b": b"\b", "a": b"\a"}.get(
                        line[i + 1], line[i + 1].encode())
                    i += 2
                    continue
                if c == '"':
                    i = _past_closing_quote(line, i)
                    break
                cur += c.encode()
                i += 1
        elif line[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise SplitError("Invalid argument(s): unbalanced quotes")
                c = line[i]
                if c == "\\" and i + 1 < n and line[i + 1] == "'":
                    cur += b"'"
                    i += 2
                    continue
                if c == "'":
                    i = _past_closing_quote(line, i)
                    break
                cur += c.encode()
                i += 1
        else:
            while i < n and not line[i].isspace():
                cur += line[i].encode()
                i += 1
        out.append(bytes(cur))


def _hex(s: str) -> bool:
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


def quote(b: bytes) -> str:
    """redis-cli's sdscatrepr(): printable bytes as they are, the rest escaped, in double quotes."""
    out = ['"']
    for ch in b:
        c = chr(ch)
        if c in '\\"':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif 32 <= ch < 127:
            out.append(c)
        else:
            out.append(f"\\x{ch:02x}")
    out.append('"')
    return "".join(out)


def _raw(r: Any) -> Any:
    return r  # the reply as the server sent it: the shell prints RESP's types, not redis-py's


def raw_bytes(r: Any) -> bytes:
    """--raw: bare values, one per line, bulk strings byte for byte (redis-cli's output to a pipe)."""
    if r is None:
        return b""
    if isinstance(r, list):
        return b"\n".join(raw_bytes(x) for x in r)
    if isinstance(r, bytes):
        return r
    return str(r).encode()


def format_reply(r: Any, raw: bool, indent: int = 0) -> str:
    if raw:
        return raw_bytes(r).decode("utf-8", "replace")
    if r is None:
        return "(nil)"
    if isinstance(r, bool):
        return f"(integer) {int(r)}"
    if isinstance(r, int):
        return f"(integer) {r}"
    if isinstance(r, str):
        return r
    if isinstance(r, bytes):
        if b"\r\n" in r:  # INFO and the like: text, as redis-cli shows it
            return r.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n")
        return quote(r)
    if isinstance(r, list):
        if not r:
            return "(empty array)"
        width = len(str(len(r)))
        lines = []
        for i, x in enumerate(r, 1):
            prefix = f"{i:>{width}}) "
            body = format_reply(x, False, indent + len(prefix))
            first, *rest = body.split("\n")
            lines.append(" " * (indent if i > 1 else 0) + prefix + first)
            lines += rest
        return "\n".join(lines)
    return repr(r)


def run_line(cache: Cache, line: str, raw: bool, out: TextIO) -> bool:
    """Run one input line; False if it failed (the error is printed as redis-cli prints it)."""
    try:
        args = split_args(line)
    except SplitError as e:
        print(f"{e}", file=out)
        return False
    if not args:
        return True
    try:
        reply = cache.execute_command(*args, callback=_raw)
    except MemsimError as e:
        msg = str(e)
        print(msg if raw else f"(error) {msg}", file=out)
        return False
    emit(reply, raw, out)
    return True


def emit(reply: Any, raw: bool, out: TextIO) -> None:
    if raw and out is sys.stdout:
        out.flush()
        sys.stdout.buffer.write(raw_bytes(reply) + b"\n")
        sys.stdout.buffer.flush()
    else:
        print(format_reply(reply, raw), file=out)


def _readline() -> ModuleType | None:
    """The line editor, for editing and history; None on a Python built without it (the shell still works).
    Imported only when the shell starts: `memsim cli SET k v` and piped input never load it."""
    try:
        import readline
    except ImportError:  # pragma: no cover - CPython without its readline module
        return None
    return readline


def repl(cache: Cache, prompt: str, raw: bool) -> int:
    readline = _readline()
    if readline is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(HISTORY)
        readline.set_history_length(1000)
    try:
        while True:
            try:
                line = input(f"{prompt}> ")
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print()
                continue
            if line.strip().lower() in ("quit", "exit"):
                return 0
            if line.strip().lower() == "help":
                try:
                    names = cache.execute_command("COMMAND", callback=_raw)
                    print("Commands: " + " ".join(n.decode().upper() for n in names) + ". 'quit' leaves.")
                except MemsimError as e:
                    print(f"(error) {e}")
                continue
            run_line(cache, line, raw, sys.stdout)
    finally:
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(HISTORY)


def main_cli(target: str, command: list[str], raw: bool | None, timeout: float) -> int:
    with Cache(target, timeout=timeout) as cache:
        if raw is None:
            raw = not sys.stdout.isatty()
        if command:  # like redis-cli: arguments are the command, taken as they are (no re-splitting)
            try:
                reply = cache.execute_command(*[os.fsencode(a) for a in command], callback=_raw)
            except Unavailable as e:
                print(f"Could not connect to memsim at {target}: {e}", file=sys.stderr)
                return 1
            except MemsimError as e:
                print(str(e) if raw else f"(error) {e}")
                return 1
            emit(reply, raw, sys.stdout)
            return 0
        if not sys.stdin.isatty():
            ok = True
            for line in sys.stdin:
                if line.strip().lower() in ("quit", "exit"):
                    break
                ok &= run_line(cache, line.rstrip("\n"), raw, sys.stdout)
            return 0 if ok else 1
        try:
            cache.wait_ready(timeout=min(timeout, 5.0))
        except MemsimError:
            print(f"Could not connect to memsim at {target}: is a server running? (memsim serve)", file=sys.stderr)
            return 1
        return repl(cache, target, raw)
