"""The cache's commands, redis-py's API, written once for `Cache`, `AsyncCache` and their pipelines.

Owns: encoding arguments as redis-py's Encoder does, the reply callbacks redis-py applies by
command name (its RESPONSE_CALLBACKS, `redis/_parsers/helpers.py`'s parse_info), the msgpack codec,
and `CacheCommands`: each method builds its arguments and a reply callback and hands them to
`execute_command`, which runs them now (Cache), queues them (Pipeline) or returns a coroutine
(AsyncCache), as redis-py's `redis/commands/core.py` does. Replies are typed `Any`, as redis-py's
are (its `ResponseT`): what comes back depends on the command, the codec and decode_responses.
Touches: the typed errors only (no transport: client/cache.py and client/cache_aio.py bring it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from memsim.client.errors import InvalidArgument

Callback = Callable[[Any], Any] | None

# -- encoding ---------------------------------------------------------------------------------

def encode(value: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """redis-py's Encoder.encode: bytes as is, str in the encoding, numbers as decimal text."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode(encoding, errors)
    if isinstance(value, bool):
        raise InvalidArgument("Invalid input of type: 'bool'. Convert to a bytes, string, int or float first.")
    if isinstance(value, int | float):
        return repr(value).encode()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise InvalidArgument(f"Invalid input of type: '{type(value).__name__}'. Convert to a bytes, string, int or "
                          f"float first.")


def _ok(r: Any) -> bool:
    return r == "OK"


def _bool(r: Any) -> bool:
    return bool(r)


def _seconds(t: int | dt.timedelta) -> int:
    return int(t.total_seconds()) if isinstance(t, dt.timedelta) else t


def _millis(t: int | dt.timedelta) -> int:
    return int(t.total_seconds() * 1000) if isinstance(t, dt.timedelta) else t


def _timestamp(t: int | dt.datetime, ms: bool) -> int:
    if isinstance(t, dt.datetime):
        return int(t.timestamp() * (1000 if ms else 1))
    return t


def parse_info(text: bytes | str) -> dict[str, Any]:
    """redis-py's parse_info: numbers become numbers, "keys=1,expires=0" becomes a dict."""
    if isinstance(text, bytes):
        text = text.decode()
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k] = _info_value(v)
    return out


def _info_value(v: str) -> Any:
    if "=" in v and not v.startswith("="):
        return {kk: _info_value(vv) for kk, vv in (p.split("=", 1) for p in v.split(",") if "=" in p)}
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _unpack(value: bytes, name: Any) -> Any:
    """A value stored with codec="msgpack"; one that was not (msgpack's own errors may have no
    message at all) is a ValueError that says which key and what it holds."""
    try:
        return msgpack.unpackb(value, raw=False)
    except (ValueError, msgpack.UnpackException) as e:
        key = f" of {name!r}" if name is not None else ""
        raise ValueError(f"value{key} ({len(value)} bytes, starting {value[:16]!r}) is not msgpack "
                         f"({type(e).__name__}{': ' + str(e) if str(e) else ''}): was it stored without "
                         f"codec='msgpack'?") from None


def _as_redis_py(r: Any, decode: Callable[[bytes], str] | None) -> Any:
    """Replies without a callback as redis-py gives them: status strings as bytes (or str when
    decoding), arrays as lists."""
    if isinstance(r, str):
        return r if decode else r.encode()
    if isinstance(r, bytes):
        return decode(r) if decode else r
    if isinstance(r, list):
        return [_as_redis_py(x, decode) for x in r]
    return r


def _set_reply(r: Any) -> Any:
    return True if r == "OK" else r


# redis-py applies these by command name, also to execute_command (its RESPONSE_CALLBACKS)
CALLBACKS: dict[str, Callable[[Any], Any]] = {
    "SET": _set_reply, "MSET": _ok, "FLUSHALL": _ok, "FLUSHDB": _ok, "PING": lambda r: r == "PONG",
    "EXPIRE": _bool, "PEXPIRE": _bool, "EXPIREAT": _bool, "PEXPIREAT": _bool, "PERSIST": _bool,
    "TIME": lambda r: (int(r[0]), int(r[1])), "INFO": lambda r: parse_info(r),
}


def _pairs(r: list[Any]) -> dict[Any, Any]:
    return {r[i].decode() if isinstance(r[i], bytes) else r[i]: r[i + 1].decode() if isinstance(r[i + 1], bytes)
            else r[i + 1] for i in range(0, len(r), 2)}


# -- the commands, written once ----------------------------------------------------------------

class CacheCommands:
    """redis-py's string, key and server commands. Subclasses define execute_command."""

    codec: str | None = None
    decode_responses: bool = False
    encoding: str = "utf-8"
    encoding_errors: str = "strict"

    def execute_command(self, *args: Any, callback: Callback = None) -> Any:
        raise NotImplementedError

    def _encode(self, value: Any) -> bytes:
        return encode(value, self.encoding, self.encoding_errors)

    def _check_transaction(self, transaction: bool) -> None:
        """pipeline(transaction=True) asks for MULTI/EXEC, which the cache does not have: refused, not ignored."""
        if transaction:
            raise InvalidArgument("transactions (MULTI/EXEC) are not supported; use pipeline(transaction=False)")

    def _decode(self, value: bytes) -> str:
        """redis-py's Encoder.decode: with the default "strict", bytes not in the encoding raise
        UnicodeDecodeError rather than come back altered."""
        return value.decode(self.encoding, self.encoding_errors)

    def _finish(self, args: tuple[Any, ...], callback: Callback) -> Callable[[Any], Any]:
        """The reply's callback: the method's own, else redis-py's for that command name, else
        redis-py's plain conversion."""
        if callback is not None:
            return callback
        name = args[0].upper() if isinstance(args[0], str) else bytes(args[0]).decode("ascii", "replace").upper()
        by_name = CALLBACKS.get(name)
        if by_name is not None:
            return by_name
        decode = self._decode if self.decode_responses else None
        return lambda r: _as_redis_py(r, decode)

    # values through the codec
    def _val(self, value: Any) -> bytes:
        if self.codec == "msgpack":
            return msgpack.packb(value, use_bin_type=True)
        return self._encode(value)

    def _out(self, r: Any, name: Any = None) -> Any:
        if r is None:
            return None
        if self.codec == "msgpack":
            return _unpack(r, name)
        return self._decode(r) if self.decode_responses and isinstance(r, bytes) else r

    def _outs(self, r: list[Any], names: list[Any] | None = None) -> list[Any]:
        return [self._out(x, names[i] if names else None) for i, x in enumerate(r)]

    def _out_of(self, name: Any) -> Callable[[Any], Any]:
        return lambda r: self._out(r, name)

    def _key(self, r: Any) -> Any:
        return self._decode(r) if self.decode_responses and isinstance(r, bytes) else r

    # strings
    def get(self, name: Any) -> Any:
        return self.execute_command("GET", name, callback=self._out_of(name))

    def set(self, name: Any, value: Any, ex: int | dt.timedelta | None = None, px: int | dt.timedelta | None = None,
            nx: bool = False, xx: bool = False, keepttl: bool = False, get: bool = False,
            exat: int | dt.datetime | None = None, pxat: int | dt.datetime | None = None) -> Any:
        args: list[Any] = ["SET", name, self._val(value)]
        if ex is not None:
            args += ["EX", _seconds(ex)]
        if px is not None:
            args += ["PX", _millis(px)]
        if exat is not None:
            args += ["EXAT", _timestamp(exat, ms=False)]
        if pxat is not None:
            args += ["PXAT", _timestamp(pxat, ms=True)]
        if keepttl:
            args.append("KEEPTTL")
        if nx:
            args.append("NX")
        if xx:
            args.append("XX")
        if get:
            args.append("GET")
            return self.execute_command(*args, callback=self._out_of(name))
        return self.execute_command(*args, callback=lambda r: True if r == "OK" else None)

    def setex(self, name: Any, time: int | dt.timedelta, value: Any) -> Any:
        return self.set(name, value, ex=time)

    def psetex(self, name: Any, time_ms: int | dt.timedelta, value: Any) -> Any:
        return self.set(name, value, px=time_ms)

    def setnx(self, name: Any, value: Any) -> Any:
        return self.execute_command("SET", name, self._val(value), "NX", callback=lambda r: r == "OK")

    def getset(self, name: Any, value: Any) -> Any:
        return self.set(name, value, get=True)

    def getdel(self, name: Any) -> Any:
        return self.execute_command("GETDEL", name, callback=self._out_of(name))

    def mget(self, keys: Any, *args: Any) -> Any:
        names = [keys] if isinstance(keys, str | bytes) else list(keys)
        names += args
        return self.execute_command("MGET", *names, callback=lambda r: self._outs(r, names))

    def mset(self, mapping: Mapping[Any, Any]) -> Any:
        flat: list[Any] = []
        for k, v in mapping.items():
            flat += [k, self._val(v)]
        return self.execute_command("MSET", *flat, callback=_ok)

    def incr(self, name: Any, amount: int = 1) -> Any:
        return self.incrby(name, amount)

    def incrby(self, name: Any, amount: int = 1) -> Any:
        return self.execute_command("INCRBY", name, amount)

    def decr(self, name: Any, amount: int = 1) -> Any:
        return self.decrby(name, amount)

    def decrby(self, name: Any, amount: int = 1) -> Any:
        return self.execute_command("DECRBY", name, amount)

    def append(self, key: Any, value: Any) -> Any:
        return self.execute_command("APPEND", key, value)

    def strlen(self, name: Any) -> Any:
        return self.execute_command("STRLEN", name)

    # keys
    def delete(self, *names: Any) -> Any:
        return self.execute_command("DEL", *names)

    def unlink(self, *names: Any) -> Any:
        return self.execute_command("UNLINK", *names)

    def exists(self, *names: Any) -> Any:
        return self.execute_command("EXISTS", *names)

    def _expire_cmd(self, cmd: str, name: Any, when: int, nx: bool, xx: bool, gt: bool, lt: bool) -> Any:
        flags = [f for f, on in (("NX", nx), ("XX", xx), ("GT", gt), ("LT", lt)) if on]
        return self.execute_command(cmd, name, when, *flags, callback=_bool)

    def expire(self, name: Any, time: int | dt.timedelta, nx: bool = False, xx: bool = False, gt: bool = False,
               lt: bool = False) -> Any:
        return self._expire_cmd("EXPIRE", name, _seconds(time), nx, xx, gt, lt)

    def pexpire(self, name: Any, time: int | dt.timedelta, nx: bool = False, xx: bool = False, gt: bool = False,
                lt: bool = False) -> Any:
        return self._expire_cmd("PEXPIRE", name, _millis(time), nx, xx, gt, lt)

    def expireat(self, name: Any, when: int | dt.datetime, nx: bool = False, xx: bool = False, gt: bool = False,
                 lt: bool = False) -> Any:
        return self._expire_cmd("EXPIREAT", name, _timestamp(when, ms=False), nx, xx, gt, lt)

    def pexpireat(self, name: Any, when: int | dt.datetime, nx: bool = False, xx: bool = False, gt: bool = False,
                  lt: bool = False) -> Any:
        return self._expire_cmd("PEXPIREAT", name, _timestamp(when, ms=True), nx, xx, gt, lt)

    def ttl(self, name: Any) -> Any:
        return self.execute_command("TTL", name)

    def pttl(self, name: Any) -> Any:
        return self.execute_command("PTTL", name)

    def persist(self, name: Any) -> Any:
        return self.execute_command("PERSIST", name, callback=_bool)

    def type(self, name: Any) -> Any:
        return self.execute_command("TYPE", name)

    def keys(self, pattern: Any = "*") -> Any:
        """KEYS: every matching key at once (slow on a big keyspace, as in Redis: prefer scan_iter)."""
        return self.execute_command("KEYS", pattern, callback=lambda r: [self._key(k) for k in r])

    def time(self) -> Any:
        return self.execute_command("TIME")

    def dbsize(self) -> Any:
        return self.execute_command("DBSIZE", callback=int)

    def flushall(self, asynchronous: bool = False) -> Any:
        return self.execute_command("FLUSHALL", *(["ASYNC"] if asynchronous else []), callback=_ok)

    def flushdb(self, asynchronous: bool = False) -> Any:
        return self.flushall(asynchronous)

    def scan(self, cursor: int = 0, match: Any = None, count: int | None = None,
             _type: str | None = None) -> Any:
        args: list[Any] = ["SCAN", cursor]
        if match is not None:
            args += ["MATCH", match]
        if count is not None:
            args += ["COUNT", count]
        if _type is not None:
            args += ["TYPE", _type]
        return self.execute_command(*args, callback=lambda r: (int(r[0]), [self._key(k) for k in r[1]]))

    # server
    def ping(self) -> Any:
        return self.execute_command("PING", callback=lambda r: r == "PONG")

    def echo(self, value: Any) -> Any:
        return self.execute_command("ECHO", value, callback=self._key)

    def info(self, section: str | None = None, *sections: str) -> Any:
        args = [s for s in (section, *sections) if s is not None]
        return self.execute_command("INFO", *args, callback=parse_info)

    def config_get(self, pattern: str = "*") -> Any:
        return self.execute_command("CONFIG", "GET", pattern, callback=_pairs)

    def config_set(self, name: str, value: Any) -> Any:
        return self.execute_command("CONFIG", "SET", name, value, callback=_ok)

    def config_resetstat(self) -> Any:
        return self.execute_command("CONFIG", "RESETSTAT", callback=_ok)

    def object(self, infotype: str, key: Any) -> Any:
        """OBJECT FREQ key / OBJECT IDLETIME key."""
        return self.execute_command("OBJECT", infotype, key)
