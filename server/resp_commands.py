"""The Redis protocol's own commands, those about the connection rather than the keyspace.

Owns HELLO, AUTH, CLIENT (SETINFO, SETNAME, GETNAME, ID, LIST, INFO), SELECT, QUIT, RESET, COMMAND
(COMMAND, COMMAND COUNT, INFO, DOCS, LIST: the table's commands and these), and CONFIG GET of the
parameters the front end answers for (save, appendonly, maxclients, port, databases), with Redis
7's replies and error texts (src/networking.c clientCommand and helloCommand, src/server.c
commandCommand, src/db.c selectCommand). Everything else goes to the cache's command table
(sim/cache/commands.py), which both front ends share. Touches one connection's `Session` and reads
the table: nothing shared.

What redis-py, redis-cli and redis-benchmark send first is here: HELLO 3 (answered with a RESP3
map, after which the connection speaks RESP3), CLIENT SETINFO, COMMAND DOCS, CONFIG GET save and
appendonly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from memsim.server.resp_reply import RespMap, Verbatim
from memsim.sim.cache.commands import COMMANDS
from memsim.sim.cache.glob import compile_glob
from memsim.sim.cache.util import E_NOT_INT, string2ll
from memsim.sim.errors import InvalidArgument

REDIS_VERSION = "7.0.0"  # the Redis whose commands and replies these follow (INFO says the same)


@dataclass
class Session:
    """One connection's state, as Redis's client struct keeps it."""

    id: int
    addr: str
    laddr: str
    created: float = field(default_factory=time.time)
    last: float = field(default_factory=time.time)
    resp3: bool = False
    name: bytes = b""
    lib_name: bytes = b""
    lib_ver: bytes = b""
    last_command: str = "NULL"
    closing: bool = False  # QUIT: answer, then close


@dataclass(frozen=True)
class Front:
    """What the connection commands know of the server."""

    core: int
    port: int
    maxclients: int
    sessions: Callable[[], list[Session]]  # this core's connections


Handler = Callable[[Front, Session, list[bytes]], object]
CONNECTION_COMMANDS: dict[bytes, Handler] = {}


def connection_command(name: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        CONNECTION_COMMANDS[name.encode()] = fn
        return fn

    return deco


def _arity(name: str) -> InvalidArgument:
    return InvalidArgument(f"ERR wrong number of arguments for '{name}' command")


def _subcommand(cmd: str, sub: bytes) -> InvalidArgument:
    return InvalidArgument(f"ERR unknown subcommand '{sub.decode('utf-8', 'replace')[:128]}'. Try {cmd} HELP.")


@connection_command("hello")
def _hello(f: Front, s: Session, a: list[bytes]) -> object:
    """HELLO [protover [AUTH username password] [SETNAME clientname]]: the connection's protocol and a map
    about the server; a protocol other than 2 and 3 is NOPROTO, which makes clients stay on RESP2."""
    proto = 3 if s.resp3 else 2
    if len(a) >= 2:
        v = string2ll(a[1])
        if v is None:
            raise InvalidArgument("ERR Protocol version is not an integer or out of range")
        if v not in (2, 3):
            raise InvalidArgument("NOPROTO unsupported protocol version")
        proto = v
    name = None
    i = 2
    while i < len(a):
        opt = a[i].lower()
        if opt == b"auth" and i + 2 < len(a):
            _check_auth(a[i + 1], a[i + 2])
            i += 3
        elif opt == b"setname" and i + 1 < len(a):
            name = _client_name(a[i + 1])
            i += 2
        else:
            raise InvalidArgument(f"ERR Syntax error in HELLO option '{a[i].decode('utf-8', 'replace')[:64]}'")
    if name is not None:
        s.name = name
    s.resp3 = proto == 3
    return RespMap({"server": b"redis", "version": REDIS_VERSION.encode(), "proto": proto, "id": s.id,
                    "mode": b"standalone", "role": b"master", "modules": []})


def _check_auth(user: bytes, password: bytes) -> None:
    """There is no password: the default user is Redis's `nopass`, which accepts any; no other user exists."""
    if user != b"default":
        raise InvalidArgument("WRONGPASS invalid username-password pair or user is disabled.")


@connection_command("auth")
def _auth(f: Front, s: Session, a: list[bytes]) -> object:
    if len(a) == 2:
        raise InvalidArgument("ERR AUTH <password> called without any password configured for the default user. "
                              "Are you sure your configuration is correct?")
    if len(a) != 3:
        raise _arity("auth")
    _check_auth(a[1], a[2])
    return "OK"


def _client_name(name: bytes) -> bytes:
    """Redis's validateClientName: printable ASCII without spaces."""
    if any(c <= 0x20 or c > 0x7E for c in name):
        raise InvalidArgument("ERR Client names cannot contain spaces, newlines or special characters.")
    return bytes(name)


def client_line(s: Session, now: float) -> str:
    """One line of CLIENT LIST, with Redis's fields (those that mean something here)."""
    return (f"id={s.id} addr={s.addr} laddr={s.laddr} fd=-1 name={s.name.decode('ascii', 'replace')} "
            f"age={int(now - s.created)} idle={int(now - s.last)} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 "
            f"watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 tot-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 "
            f"events=r cmd={s.last_command.lower()} user=default redir=-1 resp={3 if s.resp3 else 2} "
            f"lib-name={s.lib_name.decode('ascii', 'replace')} lib-ver={s.lib_ver.decode('ascii', 'replace')}\n")


@connection_command("client")
def _client(f: Front, s: Session, a: list[bytes]) -> object:
    if len(a) < 2:
        raise _arity("client")
    sub, n = a[1].lower(), len(a)
    if sub == b"setinfo" and n == 4:
        attr = a[2].lower()
        if attr not in (b"lib-name", b"lib-ver"):
            raise InvalidArgument(f"ERR Unrecognized option '{a[2].decode('utf-8', 'replace')[:64]}'")
        if any(c < 0x21 or c > 0x7E for c in a[3]):
            raise InvalidArgument(f"ERR {attr.decode()} cannot contain spaces, newlines or special characters.")
        if attr == b"lib-name":
            s.lib_name = bytes(a[3])
        else:
            s.lib_ver = bytes(a[3])
        return "OK"
    if sub == b"setname" and n == 3:
        s.name = _client_name(a[2])
        return "OK"
    if sub == b"getname" and n == 2:
        return s.name or None
    if sub == b"id" and n == 2:
        return s.id
    if sub == b"info" and n == 2:
        return Verbatim(client_line(s, time.time()).encode())
    if sub == b"list" and n == 2:
        now = time.time()
        return Verbatim("".join(client_line(x, now) for x in f.sessions()).encode())
    raise _subcommand("CLIENT", a[1])


@connection_command("select")
def _select(f: Front, s: Session, a: list[bytes]) -> object:
    if len(a) != 2:
        raise _arity("select")
    db = string2ll(a[1])
    if db is None:
        raise InvalidArgument(E_NOT_INT)
    if db != 0:  # one keyspace, as a Redis started with `databases 1`
        raise InvalidArgument("ERR DB index is out of range")
    return "OK"


@connection_command("quit")
def _quit(f: Front, s: Session, a: list[bytes]) -> object:
    s.closing = True
    return "OK"


@connection_command("reset")
def _reset(f: Front, s: Session, a: list[bytes]) -> object:
    """RESET: back to a new connection's state (RESP2, no name), as Redis 6.2's resetCommand."""
    if len(a) != 1:
        raise _arity("reset")
    s.resp3, s.name = False, b""
    return "RESET"


def front_config(f: Front) -> list[tuple[str, str]]:
    """The parameters the front end answers for in CONFIG GET: no persistence (what redis-benchmark
    asks), the client limit, the shared port, one database."""
    return [("save", ""), ("appendonly", "no"), ("maxclients", str(f.maxclients)), ("port", str(f.port)),
            ("databases", "1")]


def config_get_extra(f: Front, patterns: list[bytes], seen: list[bytes]) -> list[bytes]:
    """The front end's parameters some pattern matches, after the table's own (`seen`: its names)."""
    out: list[bytes] = []
    for arg in dict.fromkeys(patterns):
        pattern = compile_glob(bytes(arg), nocase=True)
        for name, value in front_config(f):
            key = name.encode()
            if pattern.matches(key) and key not in seen and key not in out[::2]:
                out += [key, value.encode()]
    return out


# COMMAND's facts the table does not keep: (first key, last key, step) and the group
_NO_KEYS = (0, 0, 0)
_KEYS = {"mget": (1, -1, 1), "mset": (1, -1, 2), "del": (1, -1, 1), "unlink": (1, -1, 1), "exists": (1, -1, 1),
         "object": (2, 2, 1)}
_KEYLESS = {"ping", "echo", "time", "info", "config", "command", "dbsize", "flushall", "flushdb", "keys", "scan"}
_GROUPS = {"string": {"get", "set", "getdel", "mget", "mset", "incr", "decr", "incrby", "decrby", "append", "strlen"},
           "server": {"info", "config", "command", "dbsize", "flushall", "flushdb", "time"},
           "connection": {"ping", "echo", "hello", "auth", "client", "select", "quit", "reset"}}


def _group(name: str) -> str:
    return next((g for g, names in _GROUPS.items() if name in names), "generic")


def _all_names() -> list[str]:
    return sorted({*COMMANDS, *(n.decode() for n in CONNECTION_COMMANDS)})


def _arity_of(name: str) -> int:
    spec = COMMANDS.get(name)
    return spec.arity if spec is not None else -1


def command_info(name: str) -> list[object]:
    """One entry of COMMAND / COMMAND INFO, Redis 7's ten fields."""
    spec = COMMANDS.get(name)
    flags = [b"write", b"denyoom"] if spec is not None and spec.denyoom is not None else [b"fast"]
    first, last, step = _KEYS.get(name, _NO_KEYS if name in _KEYLESS or spec is None else (1, 1, 1))
    return [name.encode(), _arity_of(name), flags, first, last, step, [f"@{_group(name)}".encode()], [], [], []]


def command_docs(name: str) -> RespMap:
    return RespMap({b"summary": f"memsim's {name.upper()}, as Redis's".encode(), b"since": b"1.0.0",
                    b"group": _group(name).encode()})


@connection_command("command")
def _command(f: Front, s: Session, a: list[bytes]) -> object:
    if len(a) == 1:
        return [command_info(n) for n in _all_names()]
    sub, wanted = a[1].lower(), [x.decode("utf-8", "replace").lower() for x in a[2:]]
    known = set(_all_names())
    if sub == b"count" and len(a) == 2:
        return len(known)
    if sub == b"list" and len(a) == 2:
        return [n.encode() for n in sorted(known)]
    if sub == b"info":
        return [command_info(n) if n in known else None for n in (wanted or sorted(known))]
    if sub == b"docs":
        return RespMap({n.encode(): command_docs(n) for n in (wanted or sorted(known)) if n in known})
    raise _subcommand("COMMAND", a[1])
