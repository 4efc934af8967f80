"""The Redis protocol on one core: an asyncio server (uvloop where installed) in a thread of the worker.

Owns this core's Redis-protocol listeners (the shared port, SO_REUSEPORT, and port + 1 + core, as the
gRPC ports), its connections and their counters in ks_core's K_CLIENTS .. K_NET_OUT columns (this
thread is their one writer; INFO sums them over the cores). It runs the cache's command table
(sim/cache/commands.py `Commands.execute`, through cache_servicer.execute_within and its reply
budget), the same keyspace and the same core mutex as the gRPC Cache service.

One read, one lock, one write, as Redis's pipelining: every command of a read runs under one
acquisition of the core's mutex and the replies are written once. The read's leading plain GETs
and SETs (all of them, in a redis-benchmark run) go through one compiled call
(sim/cache/batch.py), which stops at the first command it does not take; the rest is parsed
(resp_parse.py) and run through the command table, each reply encoded after the compiled ones
(resp_reply.py). A command that fails gets its error reply and the next
one runs. A protocol error (resp_parse.py) answers the commands before it, then its
"-ERR Protocol error: ..." line, and closes the connection; it never reaches the keyspace.

Bounds, each before the work it limits:
- a request: resp_parse.py's (bulk length, multibulk count, header and inline lines), and an unfinished
  request may hold at most `QUERY_BUFFER_LIMIT` bytes (Redis's client-query-buffer-limit: the
  connection is closed, with no reply, as Redis does);
- the replies of one read: a `ReplyBudget` of MAX_REPLY_BYTES, charged before values are copied
  (cache_servicer.execute_within), so one read of MGETs cannot build gigabytes;
- replies a client does not read: past `OUTPUT_HIGH_WATER` bytes waiting in its socket buffer the
  connection stops being read (asyncio's pause_writing), so it sends no more work, and past
  `OUTPUT_BUFFER_LIMIT` it is closed (Redis's client-output-buffer-limit hard limit), checked after
  each command of a read, as Redis checks it on each reply it adds: replies the budget does not
  charge (CLIENT LIST, COMMAND, INFO ...) cannot pile up in one read's buffer either;
- connections: `maxclients` on the machine (Redis's maxclients: limits.MAXCLIENTS, or --maxclients),
  counted over every core's connected_clients; past it a new one gets "-ERR max number of clients
  reached" and is closed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
import time
from typing import cast

import hiredis

from memsim.server.cache_servicer import execute_within, payload_bytes
from memsim.server.limits import MAX_MESSAGE, MAX_REPLY_BYTES, MAXCLIENTS, PENDING_REPLY_BYTES, ReplyBudget
from memsim.server.listeners import core_sockets
from memsim.server.resp_commands import CONNECTION_COMMANDS, Front, Session, config_get_extra
from memsim.server.resp_parse import STAR, Partial, fast_parse, parse
from memsim.server.resp_reply import RespMap, Verbatim, encode, error_line
from memsim.sim.alloc.layout import MAX_CORES
from memsim.sim.cache.batch import PlainBatch
from memsim.sim.cache.commands import Commands
from memsim.sim.cache.db import MAX_VALUE_BYTES
from memsim.sim.cache.db_kernels import LAST_GET
from memsim.sim.cache.layout import K_CLIENTS, K_COMMANDS, K_CONNECTIONS, K_NET_IN, K_NET_OUT, K_REJECTED_CONN
from memsim.sim.errors import SimError

log = logging.getLogger("memsim.resp")

QUERY_BUFFER_LIMIT = MAX_MESSAGE  # an unfinished request, as large as one gRPC message may be
OUTPUT_HIGH_WATER = 1 << 20  # replies waiting in a connection's buffer before it is no longer read
OUTPUT_BUFFER_LIMIT = PENDING_REPLY_BYTES  # ... and before it is closed
MAX_CLIENTS_REPLY = b"-ERR max number of clients reached\r\n"

try:  # uvloop where installed: the same asyncio API on libuv, about twice as fast per read
    import uvloop

    def new_loop() -> asyncio.AbstractEventLoop:
        return uvloop.new_event_loop()
except ImportError:  # pragma: no cover - depends on the environment
    def new_loop() -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()


class RespConnection(asyncio.Protocol):
    """One client connection: parse a read, run it under the core's mutex, write the replies once."""

    def __init__(self, server: RespServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.pending: bytearray | None = None  # an unfinished request and what came after it
        self.partial: Partial | None = None  # how far parsing got into it (resp_parse.py)
        self.reader = hiredis.Reader()  # fast_parse's, kept empty between reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = self.transport = cast(asyncio.Transport, transport)
        srv = self.server
        srv.row[K_CONNECTIONS] += 1
        if srv.connected() >= srv.maxclients:
            srv.row[K_REJECTED_CONN] += 1
            srv.row[K_NET_OUT] += len(MAX_CLIENTS_REPLY)
            t.write(MAX_CLIENTS_REPLY)
            t.close()
            return
        t.set_write_buffer_limits(high=OUTPUT_HIGH_WATER)
        sock = t.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.session = srv.open(self, _addr(t.get_extra_info("peername")), _addr(t.get_extra_info("sockname")))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self.server.close(self)
            self.session = None

    def pause_writing(self) -> None:  # the client reads its replies slower than it sends requests
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        s, t = self.session, self.transport
        if s is None or t is None or s.closing:
            return
        srv = self.server
        srv.row[K_NET_IN] += len(data)
        if self.pending is None and type(data) is bytes and data[0] == STAR and srv.cmds.monitor is None and \
                srv.plain.usable():
            with srv.core_lock:  # the compiled commands and the rest of the read: one acquisition
                room = OUTPUT_BUFFER_LIMIT - t.get_write_buffer_size()
                plain = srv.plain
                head: bytes | bytearray
                pos, head, done, last = plain.run(data, 0, room, s.resp3)
                if pos < len(data):
                    out = bytearray(head)
                    budget = ReplyBudget(None, MAX_REPLY_BYTES)
                    while pos < len(data):
                        declined = plain.declined(data)
                        if declined is None or len(out) > room:  # not a plain GET/SET: the ordinary way on
                            self.receive(data[pos:], out, room, True)
                            return
                        pos, args = declined  # one the kernel would not run (a busy stripe ...): here
                        self.execute(args, out, budget)
                        if pos < len(data):
                            pos, more, ran, kind = plain.run(data, pos, room - len(out), s.resp3)
                            out += more
                            if ran:
                                done, last = done + ran, kind
                    head = out
                if done:
                    s.last_command = "get" if last == LAST_GET else "set"
                    s.last = time.time()
            srv.row[K_NET_OUT] += len(head)
            t.write(head)
        else:
            self.receive(data, bytearray(), OUTPUT_BUFFER_LIMIT - t.get_write_buffer_size(), False)

    def receive(self, data: bytes, out: bytearray, room: int, locked: bool) -> None:
        """Parse and run a read (what batch.py's compiled path left of it), after `out`'s replies; `locked`:
        the caller holds the core's mutex."""
        s, t, srv = self.session, self.transport, self.server
        assert s is not None and t is not None
        if self.pending is None and (cmds := fast_parse(self.reader, data)) is not None:
            error = None
        else:
            if self.pending is None and data[:1] == b"*":  # fast_parse declined, and may have kept some of it
                self.reader = hiredis.Reader()
            if self.pending is None:
                buf: bytes | bytearray = data
            else:
                self.pending += data
                buf = self.pending
            parsed = parse(buf, self.partial)
            cmds, error, self.partial = parsed.commands, parsed.error, parsed.partial
            rest = len(buf) - parsed.used
            if error is None and rest > QUERY_BUFFER_LIMIT:
                log.warning("core %d: closing client %d: an unfinished request of %d bytes passed the %d-byte "
                            "query buffer limit", srv.core, s.id, rest, QUERY_BUFFER_LIMIT)
                t.abort()
                return
            if not rest or error is not None:
                self.pending = None
            elif self.pending is None:
                self.pending = bytearray(data[parsed.used:])
            else:
                del self.pending[:parsed.used]
        if cmds:
            if locked:
                self.run_locked(cmds, out, room)
            else:
                with srv.core_lock:
                    self.run_locked(cmds, out, room)
        if len(out) > room:
            log.warning("core %d: closing client %d: %d bytes of replies unread, over the %d-byte output buffer "
                        "limit", srv.core, s.id, OUTPUT_BUFFER_LIMIT - room + len(out), OUTPUT_BUFFER_LIMIT)
            t.abort()
            return
        if error is not None:
            out += error_line(f"ERR Protocol error: {error}")
            s.closing = True
        if out:
            srv.row[K_NET_OUT] += len(out)
            t.write(out)
        if s.closing:
            t.close()

    def run_locked(self, cmds: list[list[bytes]], out: bytearray, room: int) -> None:
        """Every command of one read (the caller holds the core's mutex); a read of several shares one
        KEYS/SCAN matching budget, as a gRPC pipeline message does. Stops once out passes `room` (what
        the output buffer limit leaves): the connection is closed for it."""
        srv = self.server
        if len(cmds) == 1:
            self.execute(cmds[0], out, None)
        else:
            budget = ReplyBudget(None, MAX_REPLY_BYTES)
            with srv.cmds.match_batch():
                for args in cmds:
                    if self.execute(args, out, budget) or len(out) > room:
                        break
        assert self.session is not None
        self.session.last = time.time()  # the read's time: its commands run within microseconds of it

    def execute(self, args: list[bytes], out: bytearray, budget: ReplyBudget | None) -> bool:
        """One command, its reply appended to out; True when nothing after it may run (QUIT).

        The table is called directly; only the commands whose replies copy stored values (cache_servicer's
        value_keys: GET, MGET, GETDEL, SET ... GET) go through the read's reply budget, charged before the copy,
        but for a GET alone in its read: one value (at most MAX_VALUE_BYTES) always fits MAX_REPLY_BYTES."""
        s = self.session
        assert s is not None
        srv = self.server
        name = args[0].lower() if len(args[0]) <= 32 else b"?"  # no command's name is longer
        r: object
        try:
            if (name == b"set" and len(args) == 3) or (name == b"get" and budget is None):  # no value copied, or
                r = srv.cmds.execute(args)  # one GET alone in its read (one value always fits a reply's budget)
            elif name == b"get" and budget is not None and len(args) == 2 and budget.could_take(MAX_VALUE_BYTES):
                # execute_within's path for a GET whose value surely fits: run it, then charge what it copied
                r = srv.cmds.execute(args)
                budget.charge(len(r) if type(r) is bytes else payload_bytes(r), "")
            elif (own := CONNECTION_COMMANDS.get(name)) is not None:
                srv.cmds.stats[K_COMMANDS] += 1  # Redis counts these too (the table counts its own)
                r = own(srv.front, s, args)
            elif name in _VALUE_COMMANDS and (budget is not None or name != b"get") and (
                    name != b"set" or len(args) > 3):
                r = execute_within(srv.cmds, args, budget or ReplyBudget(None, MAX_REPLY_BYTES))
            else:
                r = srv.cmds.execute(args)
                if name in _SHAPED:
                    r = _shape(srv.front, name, args, r)
        except SimError as e:
            out += error_line(str(e))
            r = _FAILED
        if r == "OK":  # SET's (a str: a status)
            out += _OK
        elif r is not _FAILED:
            encode(out, r, s.resp3)
        s.last_command = name.decode("ascii", "replace")
        return s.closing


_FAILED = object()
_OK = b"+OK\r\n"
_VALUE_COMMANDS = {b"get", b"mget", b"getdel", b"set"}  # cache_servicer.value_keys's
assert MAX_VALUE_BYTES <= MAX_REPLY_BYTES
_SHAPED = {b"info", b"config"}


def _shape(front: Front, name: bytes, args: list[bytes], r: object) -> object:
    """The table's replies whose RESP3 type differs from their RESP2 one: INFO is verbatim text, CONFIG GET
    a map (with the front end's own parameters after the table's)."""
    if name == b"info" and isinstance(r, bytes):
        return Verbatim(r)
    if name == b"config" and args[1].lower() == b"get" and isinstance(r, list):
        pairs = r + config_get_extra(front, args[2:], r[::2])
        return RespMap(zip(pairs[::2], pairs[1::2], strict=True))
    return r


def _addr(a: object) -> str:
    if isinstance(a, tuple) and len(a) >= 2:
        return f"{a[0]}:{a[1]}"
    return "?"


class RespServer:
    """One core's Redis-protocol front end: `bind` (to the sockets the supervisor bound for this core before
    forking it, or to its own), `start` (the listener thread), `stop`."""

    def __init__(self, cmds: Commands, core: int, core_lock: threading.Lock, host: str, port: int,
                 maxclients: int = MAXCLIENTS):
        self.cmds = cmds
        self.core = core
        self.core_lock = core_lock
        self.host = host
        self.port = port
        self.maxclients = maxclients
        self.counters = cmds.ks.a.ks_core
        self.row: memoryview = self.counters[core].data  # as db.py's stats: a cell's += is a third of numpy's
        self.connections: dict[int, RespConnection] = {}
        self.plain = PlainBatch(cmds.ks)  # a read's plain GETs and SETs, compiled (sim/cache/batch.py)
        self._ids = itertools.count(1)
        self.front = Front(core=core, port=port, maxclients=maxclients, sessions=self.sessions)
        self.sockets: list[socket.socket] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self._started = threading.Event()

    def bind(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on `sockets` (the supervisor's, bound before the fork: server/listeners.py), or listen on the
        shared port and this core's own here; raises OSError if either is taken."""
        self.sockets = list(sockets) if sockets is not None else core_sockets(self.host, self.port, self.core)

    def start(self) -> None:
        self.row[K_CLIENTS] = 0  # a restarted core holds none of its predecessor's connections
        self.thread = threading.Thread(target=self._run, name=f"core{self.core}-resp", daemon=True)
        self.thread.start()
        self._started.wait(10)

    def _run(self) -> None:
        loop = self.loop = new_loop()
        asyncio.set_event_loop(loop)
        servers = [loop.run_until_complete(loop.create_server(lambda: RespConnection(self), sock=s))
                   for s in self.sockets]
        self._started.set()
        try:
            loop.run_forever()
        finally:
            for srv in servers:
                srv.close()
            for c in list(self.connections.values()):
                if c.transport is not None:
                    c.transport.abort()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def stop(self) -> None:
        loop, thread = self.loop, self.thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
        self.row[K_CLIENTS] = 0

    # -- connections (the listener thread only) ------------------------------------------------------------------
    def connected(self) -> int:
        """connected_clients over the whole machine: every core's Redis-protocol connections."""
        return int(self.counters[:, K_CLIENTS].sum())

    def open(self, conn: RespConnection, addr: str, laddr: str) -> Session:
        sid = next(self._ids) * MAX_CORES + self.core  # unique on the machine, growing as Redis's
        self.connections[sid] = conn
        self.row[K_CLIENTS] += 1
        return Session(id=sid, addr=addr, laddr=laddr)

    def close(self, conn: RespConnection) -> None:
        if conn.session is not None and self.connections.pop(conn.session.id, None) is not None:
            self.row[K_CLIENTS] -= 1

    def sessions(self) -> list[Session]:
        return [c.session for c in self.connections.values() if c.session is not None]
