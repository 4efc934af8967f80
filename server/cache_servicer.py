"""memsim.v1.Cache on one core: gRPC to `sim/cache/commands.py` and back, plus the core's serverCron.

The cache shares the core with the allocator service: both take the core's mutex (the
simulated CPU, see worker.py), so a core runs one command at a time, as a Redis thread does.
A pipeline message takes it once for all its commands.

Replies are budgeted (limits.py) before the values are copied: GET, GETDEL, SET ... GET and MGET
copy stored values whose lengths the keyspace knows, so their sum is charged first and a reply
that would not fit is refused before anything is read (`execute_within`); a command that then
fails (SET ... GET refused by maxmemory) gives its charge back. A GET that surely fits skips the
measuring, to keep the hot path as it was.

serverCron (`CacheCron`), hz times a second on each core, under the core's mutex:
- one instantaneous_ops_per_sec sample for this core (Redis: trackInstantaneousMetric);
- used_memory_peak;
- eviction down to maxmemory after CONFIG SET lowered it (bounded by tenacity per tick);
- a slow active-expire cycle (sim/cache/expire.py). Redis gives its one thread's cycle 25 %
  of a CPU; here every core runs one, on a shared cursor, with that budget divided by the
  number of cores, so the machine as a whole spends what one Redis would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import grpc
import msgpack

from memsim.server.limits import MAX_PIPELINE, PendingReplies, ReplyBudget
from memsim.server.monitor import monitor_stream
from memsim.server.periodic import Periodic
from memsim.server.wire import batch_stream, call_budget, check_batch_size, run_ops
from memsim.sim.cache.commands import Commands, Reply
from memsim.sim.cache.db import MAX_VALUE_BYTES
from memsim.sim.cache.expire import HZ, active_expire_cycle
from memsim.sim.cache.keyspace import Keyspace
from memsim.sim.cache.monitor import CommandMonitor
from memsim.sim.errors import InvalidArgument, SimError
from memsim.v1 import cache_pb2 as pb
from memsim.v1 import cache_pb2_grpc
from memsim.v1 import machine_pb2 as mpb

log = logging.getLogger("memsim.worker")



def payload_bytes(r: Reply) -> int:
    """What a reply carries, in bytes (a number counts as 8)."""
    if isinstance(r, bytes | str):
        return len(r)
    if isinstance(r, list):
        return sum(payload_bytes(x) for x in r)
    return 8


def _upper(arg: bytes) -> bytes:
    return bytes(arg[:8]).upper()


def value_keys(command: list[bytes]) -> tuple[list[bytes], bool]:
    """The keys whose stored values the command's reply will copy, and whether the command also
    changes something (so must not be refused once it has run): GET, GETDEL, SET ... GET, MGET."""
    if not command:
        return [], False
    name, n = _upper(command[0]), len(command)
    if name == b"GET" and n == 2:
        return [command[1]], False
    if name == b"MGET" and n >= 2:
        return list(command[1:]), False
    if name == b"GETDEL" and n == 2:
        return [command[1]], True
    if name == b"SET" and n >= 4 and any(_upper(a) == b"GET" for a in command[3:]):
        return [command[1]], True
    return [], False


def execute_within(cmds: Commands, command: list[bytes], budget: ReplyBudget) -> Reply:
    """Run one command with its reply charged to budget: the stored lengths of the values it will
    copy first (refused before any copy), then whatever else the reply turned out to hold."""
    keys, changes = value_keys(command)
    known = 0
    if keys and (changes or not budget.could_take(len(keys) * MAX_VALUE_BYTES)):
        known = sum(cmds.ks.strlen(k) for k in keys)
        what = bytes(command[0]).decode("ascii", "replace").upper()
        budget.charge(known, f"{what} of {len(keys)} stored value(s)")
    try:
        r = cmds.execute(command)
    except SimError:
        budget.refund(known)  # refused before it copied anything (OOM, syntax): the rest of a pipeline may use it
        raise
    extra = payload_bytes(r) - known  # a value that grew meanwhile (another core), or a reply of other kinds
    if extra > 0:
        if changes:
            budget.force(extra)  # it has run; its reply must go out
        elif budget.could_take(extra):
            budget.charge(extra, "")  # fits: no message to word (the hot path of every small reply)
        else:
            budget.charge(extra, f"the reply to {bytes(command[0]).decode('ascii', 'replace').upper()}")
    return r


def run_commands(cmds: Commands, args: list[bytes], argc: list[int],
                 budget: ReplyBudget | None = None) -> tuple[list[Reply | None], list[mpb.OpError]]:
    """The Cache service's pipeline executor (wire.batch_stream): a columnar batch of commands in
    order; a failing command gets an OpError and a nil reply, the rest go on."""
    check_batch_size(len(argc), MAX_PIPELINE, "pipeline", "command")
    if sum(argc) != len(args) or any(n == 0 for n in argc):
        raise InvalidArgument(f"bad pipeline: argc sums to {sum(argc)} for {len(args)} arguments "
                              f"(every command needs at least its name)")
    if budget is None:
        budget = ReplyBudget()
    starts = [0] * len(argc)
    for i in range(1, len(argc)):
        starts[i] = starts[i - 1] + argc[i - 1]
    replies: list[Reply | None] = [None] * len(argc)

    def command(i: int) -> None:
        replies[i] = execute_within(cmds, args[starts[i]:starts[i] + argc[i]], budget)

    with cmds.match_batch():  # the mutex is held for them all: their KEYS/SCAN matching shares one budget
        errors = run_ops(len(argc), command, cmds.ks.heap.core)
    return replies, errors


class CacheServicer(cache_pb2_grpc.CacheServicer):
    def __init__(self, commands: Commands, core: int, core_lock: threading.Lock,
                 replies: PendingReplies | None = None):
        self.cmds = commands
        self.core = core
        self.core_lock = core_lock
        self.replies = replies or PendingReplies(core)  # the core's reply bytes not yet sent (limits.py)
        self.monitor = CommandMonitor(commands)  # Cache.Monitor's recorder (server/monitor.py)

    def Command(self, request: pb.CommandRequest, context: grpc.ServicerContext) -> pb.CommandReply:
        budget = call_budget(self.replies, context)
        with self.core_lock:
            r = execute_within(self.cmds, list(request.args), budget)
        return pb.CommandReply(reply=msgpack.packb(r, use_bin_type=True), core=self.core)

    def Pipeline(self, request_iterator: Iterator[pb.CommandBatch],
                 context: grpc.ServicerContext) -> Iterator[pb.ReplyBatch]:
        def execute(req: pb.CommandBatch, budget: ReplyBudget, arrived: float) -> pb.ReplyBatch:
            replies, errors = run_commands(self.cmds, list(req.args), list(req.argc), budget)
            return pb.ReplyBatch(seq=req.seq, core=self.core, replies=msgpack.packb(replies, use_bin_type=True),
                                 errors=errors)

        yield from batch_stream(request_iterator, self.replies, self.core_lock, execute)

    def Monitor(self, request: mpb.MonitorRequest, context: grpc.ServicerContext) -> Iterator[mpb.MonitorBatch]:
        yield from monitor_stream(self.monitor.subscribe, self.monitor.unsubscribe, request, context, self.core,
                                  self.replies)


class CacheCron(Periodic):
    """serverCron for one core's keyspace, hz times a second: see the module doc."""

    name = "servercron"

    def __init__(self, ks: Keyspace, cores: int, core_lock: threading.Lock, hz: int = HZ):
        super().__init__(ks.heap.core, 1.0 / hz)
        self.ks = ks
        self.cores = cores
        self.core_lock = core_lock
        self.hz = hz

    def tick(self) -> None:
        ks = self.ks
        with self.core_lock:
            ks.sample_ops(int(time.time() * 1000))
            ks.used_memory_peak()
            if ks.evictor is not None:  # a lowered maxmemory is reached over a few ticks, as Redis's timer does
                ks.evictor.shrink_to_limit()
            active_expire_cycle(ks, effort=ks.config.expire_effort, hz=self.hz * self.cores)
