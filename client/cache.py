"""The cache client: redis-py's API for strings, over memsim.v1.Cache.

    from memsim.client import Cache
    r = Cache("127.0.0.1:50051")                  # or Cache(host="127.0.0.1", port=50051)
    r.set("user:1", "ada", ex=60)                 # True
    r.get("user:1")                               # b'ada' (bytes, as redis-py returns by default)
    r.incr("hits"); r.mset({"a": 1, "b": 2}); r.mget("a", "b")
    with r.pipeline() as p:                       # one stream message for all of them
        p.set("x", 1).incr("x").get("x")
        p.execute()                               # [True, 2, b'2']
    r.info()["used_memory"]; r.config_set("maxmemory-policy", "allkeys-lru")

Arguments are encoded as redis-py encodes them (str in `encoding`, UTF-8 by default, int and
float as their decimal text, bytes as they are) and replies come back as redis-py gives them
(bytes values, True for OK, ints, None for nil), or as str with `decode_responses=True`,
decoded with `encoding` and `encoding_errors` ("strict" by default: bytes that are not UTF-8
raise UnicodeDecodeError, as with redis-py; in a pipeline, in that command's slot). `codec="msgpack"` stores
structured values instead: set/mset/getset pack any msgpack-encodable value, get/mget/getdel
unpack it (counters still want plain decimal text, so INCR on such a value fails as it would
on any non-integer).

Errors are the typed exceptions of `memsim.client.errors`, carrying the server's Redis text
("ERR syntax error", "OOM command not allowed when used memory > 'maxmemory'.").

The command methods live in `CacheCommands`, written once: each builds its arguments and a
reply callback and hands them to `execute_command`, which runs them now (Cache), queues them
(Pipeline) or returns a coroutine (`cache_aio.AsyncCache`), as redis-py's CoreCommands does.
"""

from __future__ import annotations

import codecs
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

import grpc
import msgpack

from memsim.client.errors import (
    DeadlineExceeded,
    InvalidArgument,
    client_closed,
    from_code,
    from_rpc_error,
)
from memsim.client.sync import DEFAULT_TIMEOUT, StreamSession, channel_options, core_target
from memsim.v1 import cache_pb2 as pb
from memsim.v1 import cache_pb2_grpc

MAX_PIPELINE = 10_000  # commands per stream message (the server's limit)
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


def _pairs(r: list) -> dict:
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

    def _outs(self, r: list, names: list[Any] | None = None) -> list:
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


# -- running them ------------------------------------------------------------------------------

def to_batch(commands: list[tuple[tuple[Any, ...], Callback]], seq: int) -> pb.CommandBatch:
    args: list[bytes] = []
    argc: list[int] = []
    for cmd, _ in commands:
        args += [a if isinstance(a, bytes) else encode(a) for a in cmd]
        argc.append(len(cmd))
    return pb.CommandBatch(seq=seq, args=args, argc=argc)


def decode_batch(commands: list[tuple[tuple[Any, ...], Callback]], reply: pb.ReplyBatch) -> list[Any]:
    """Each command's reply through its callback; a failed command's slot holds its exception,
    which says which command it was, as redis-py's does. A reply its callback cannot take (bytes
    that are not UTF-8 under decode_responses) leaves that exception in its slot, not the others'."""
    raw = msgpack.unpackb(reply.replies, raw=False)
    failed = {e.index: (e.code, e.message) for e in reply.errors}
    out: list[Any] = []
    for i, ((args, cb), r) in enumerate(zip(commands, raw, strict=True)):
        if i in failed:
            code, message = failed[i]
            shown = " ".join(a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in args)[:120]
            out.append(from_code(code, f"Command # {i + 1} ({shown}) of pipeline caused error: {message}"))
            continue
        try:
            out.append(cb(r) if cb is not None else r)
        except Exception as e:  # noqa: BLE001 - kept in the command's slot, raised by execute()
            out.append(e)
    return out


def first_error(replies: list[Any]) -> Exception | None:
    return next((r for r in replies if isinstance(r, Exception)), None)


def resolve_target(host: str, port: int, db: int, target: str | None) -> str:
    """redis-py's (host, port, db) or memsim's "host:port" (as the first argument, or target=)."""
    if db != 0:
        raise InvalidArgument(f"db {db}: the machine's cache has one database, db 0")
    if target is not None:
        return target
    if ":" in host and not host.startswith("["):
        return host  # Cache("127.0.0.1:50051")
    return f"{host}:{port}"


def _url_bool(v: str) -> bool:
    return v.lower() not in ("", "0", "false", "f", "no", "n")


# redis-py's URL_QUERY_ARGUMENT_PARSERS, for the arguments Cache takes; any other name is passed on as
# text, and refused by name by the constructor
_URL_QUERY = {"decode_responses": _url_bool, "socket_timeout": float, "socket_connect_timeout": float,
              "socket_keepalive": _url_bool, "health_check_interval": int, "max_connections": int,
              "single_connection_client": _url_bool, "retry_on_timeout": _url_bool, "protocol": int}


def parse_url(url: str) -> dict[str, Any]:
    """redis://[[user]:password@]host:port/0?arg=value or memsim://host:port: redis-py's from_url.
    A password or an argument the cache cannot honour is refused by the constructor, by name."""
    u = urlparse(url)
    if u.scheme not in ("redis", "memsim"):
        raise InvalidArgument(f"url {url!r}: the schemes are redis:// and memsim:// (no TLS, no unix sockets)")
    try:
        port = u.port
    except ValueError:
        raise InvalidArgument(f"url {url!r}: the port must be a number from 0 to 65535") from None
    path = u.path.lstrip("/")
    if path and not path.isdigit():
        raise InvalidArgument(f"url {url!r}: the path is the database number; the cache has one database, db 0")
    out: dict[str, Any] = {"host": u.hostname or "127.0.0.1", "port": port or 50051, "db": int(path or 0)}
    if u.username:
        out["username"] = unquote(u.username)
    if u.password:
        out["password"] = unquote(u.password)
    for name, value in parse_qsl(u.query, keep_blank_values=True):
        try:
            out[name] = _URL_QUERY.get(name, str)(value)
        except ValueError:
            raise InvalidArgument(f"url {url!r}: {name}={value!r} is not a valid value") from None
    return out


# redis-py's Redis() arguments. These change nothing here and are accepted and ignored, whatever
# their value: gRPC connects, keeps alive and multiplexes its own channel, and there is no CLIENT command.
HARMLESS_REDIS_ARGS = frozenset({"socket_connect_timeout", "socket_keepalive", "socket_keepalive_options",
                                 "health_check_interval", "max_connections", "single_connection_client",
                                 "client_name", "lib_name", "lib_version"})
# These are accepted only unset (None, False, "", or as _DEFAULT_OK says): anything else asks for a
# feature the cache does not have, and silently ignoring it would hide that.
_NO_AUTH = "the cache has no authentication (AUTH, ACL users)"
_NO_TLS = "memsim serves plaintext gRPC only (no TLS)"
_NO_RETRY = "calls are not retried; catch memsim.client.Unavailable / DeadlineExceeded to retry"
UNSUPPORTED_REDIS_ARGS: dict[str, str] = {
    "password": _NO_AUTH, "username": _NO_AUTH, "credential_provider": _NO_AUTH,
    "unix_socket_path": "memsim serves gRPC over TCP: give host and port, or 'host:port'",
    "connection_pool": "there is no connection pool: each client has its own gRPC channel",
    "ssl": _NO_TLS, "ssl_keyfile": _NO_TLS, "ssl_certfile": _NO_TLS, "ssl_cert_reqs": _NO_TLS,
    "ssl_ca_certs": _NO_TLS, "ssl_ca_path": _NO_TLS, "ssl_ca_data": _NO_TLS, "ssl_check_hostname": _NO_TLS,
    "ssl_password": _NO_TLS, "ssl_validate_ocsp": _NO_TLS, "ssl_min_version": _NO_TLS, "ssl_ciphers": _NO_TLS,
    "retry_on_timeout": _NO_RETRY, "retry_on_error": _NO_RETRY, "retry": _NO_RETRY,
    "redis_connect_func": "there is no connection callback",
    "protocol": "replies are RESP2-shaped (protocol=2); RESP3 is not supported",
    "cache": "there is no client-side caching", "cache_config": "there is no client-side caching",
    "charset": "use encoding= (redis-py's name since 4.0)",
    "errors": "use encoding_errors= (redis-py's name since 4.0)",
}
_DEFAULT_OK = {"protocol": (2, "2")}


def check_redis_args(cls: str, kw: dict[str, Any], encoding: str, encoding_errors: str) -> None:
    """Refuse, by name, a redis-py argument that would be silently ignored; TypeError for a name
    redis-py does not have either (a typo must not pass)."""
    for name, value in kw.items():
        if name in HARMLESS_REDIS_ARGS:
            continue
        if name not in UNSUPPORTED_REDIS_ARGS:
            raise TypeError(f"{cls}() got an unexpected keyword argument {name!r}")
        if value and value not in _DEFAULT_OK.get(name, ()):  # redis-py too treats password="" as none
            raise InvalidArgument(f"{cls}({name}=...): not supported: {UNSUPPORTED_REDIS_ARGS[name]}")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidArgument(f"{cls}(encoding={encoding!r}): unknown encoding") from None
    try:
        codecs.lookup_error(encoding_errors)
    except LookupError:
        raise InvalidArgument(f"{cls}(encoding_errors={encoding_errors!r}): unknown error handler; the choices "
                              f"include 'strict', 'replace', 'ignore', 'backslashreplace'") from None


class Cache(CacheCommands):
    """A connection to a memsim server's cache (any core, or `core=N` for that core's own port).

    Takes redis-py's (host, port, db=0, socket_timeout=..., decode_responses=..., encoding=...,
    encoding_errors=...) or one "host:port" string. Of redis-py's other arguments, these are
    accepted and ignored, as they change nothing here: socket_connect_timeout, socket_keepalive,
    socket_keepalive_options, health_check_interval, max_connections, single_connection_client,
    client_name, lib_name, lib_version. The rest (password, username, unix_socket_path,
    connection_pool, ssl..., retry..., protocol=3, ...) are refused with InvalidArgument unless
    left unset (None, False, "", or protocol=2), and an unknown name is a TypeError."""

    def __init__(self, host: str = "127.0.0.1", port: int = 50051, db: int = 0, password: str | None = None,
                 socket_timeout: float | None = None, *, target: str | None = None, core: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, decode_responses: bool = False, codec: str | None = None,
                 encoding: str = "utf-8", encoding_errors: str = "strict", **redis_args: Any):
        check_redis_args("Cache", {"password": password, **redis_args}, encoding, encoding_errors)
        if codec not in (None, "msgpack"):
            raise InvalidArgument(f"codec {codec!r}: the choices are None (bytes) and 'msgpack'")
        if socket_timeout is not None:
            timeout = socket_timeout
        self.target = core_target(resolve_target(host, port, db, target), core)
        self.core = core
        self.timeout = timeout
        self.decode_responses = decode_responses
        self.encoding, self.encoding_errors = encoding, encoding_errors
        self.codec = codec
        self._channel = grpc.insecure_channel(self.target, options=channel_options())
        self._stub = cache_pb2_grpc.CacheStub(self._channel)
        self._pipelines = StreamSession(self._stub.Pipeline)

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> Cache:
        return cls(**parse_url(url), **kw)

    def close(self) -> None:
        self._pipelines.close()
        self._channel.close()
        self._closed = True

    _closed = False

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise DeadlineExceeded(f"server at {self.target} not ready within {timeout} s") from None

    def execute_command(self, *args: Any, callback: Callback = None) -> Any:
        if self._closed:
            raise client_closed(self)
        req = pb.CommandRequest(args=[self._encode(a) for a in args])
        try:
            reply = self._stub.Command(req, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return self._finish(args, callback)(msgpack.unpackb(reply.reply, raw=False))

    def pipeline(self, transaction: bool = False) -> Pipeline:
        """Commands queued and sent in one stream message per 10,000 at execute().
        Not a MULTI/EXEC transaction: transaction=True is refused rather than silently ignored."""
        if transaction:
            raise InvalidArgument("transactions (MULTI/EXEC) are not supported; use pipeline(transaction=False)")
        return Pipeline(self)

    def run_pipeline(self, commands: list[tuple[tuple[Any, ...], Callback]]) -> list[Any]:
        if self._closed:
            raise client_closed(self)
        out: list[Any] = []
        for i in range(0, len(commands), MAX_PIPELINE):
            chunk = commands[i:i + MAX_PIPELINE]
            reply = self._pipelines.roundtrip(lambda seq, chunk=chunk: to_batch(chunk, seq), self.timeout)
            out += decode_batch(chunk, reply)
        return out

    def scan_iter(self, match: Any = None, count: int | None = None, _type: str | None = None) -> Iterator[Any]:
        cursor = None
        while cursor != 0:
            cursor, keys = self.scan(cursor or 0, match=match, count=count, _type=_type)
            yield from keys


class Pipeline(CacheCommands):
    """redis-py's Pipeline (transaction=False): commands return the pipeline; execute() returns the replies."""

    def __init__(self, cache: Cache):
        self.cache = cache
        self.codec = cache.codec
        self.decode_responses = cache.decode_responses
        self.encoding, self.encoding_errors = cache.encoding, cache.encoding_errors
        self.commands: list[tuple[tuple[Any, ...], Callback]] = []

    def execute_command(self, *args: Any, callback: Callback = None) -> Pipeline:
        self.commands.append((tuple(self._encode(a) for a in args), self._finish(args, callback)))
        return self

    def __len__(self) -> int:
        return len(self.commands)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()

    def reset(self) -> None:
        self.commands = []

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send everything queued; the replies in order. With raise_on_error (redis-py's default)
        the first failed command's exception is raised after all ran; otherwise it is in the list."""
        commands, self.commands = self.commands, []
        if not commands:
            return []
        out = self.cache.run_pipeline(commands)
        if raise_on_error and (e := first_error(out)) is not None:
            raise e
        return out


__all__ = ["Cache", "CacheCommands", "Pipeline", "check_redis_args", "encode", "parse_info"]
