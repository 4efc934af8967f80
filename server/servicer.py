"""memsim.v1.Machine on one core: a thin adapter from gRPC to `server/ops.py` and `sim/`.

Each handler takes the core's mutex around the heap work (see worker.py); a failure becomes its
status code in `wire.py`, through which every method is registered (a SimError its own code
with the simulator's message, anything unexpected INTERNAL, never taking the worker down).
An allocation whose caller has gone by the time it is made (its deadline passed while it
waited for the core, or it cancelled) is freed again before the reply, which could only be
lost: nobody could ever name that object (server/sessions.py). A batch says how long its
caller waits (timeout_ms, from the moment it is sent, so from before it arrives here); one
that ends later has its allocations freed and answers `expired`, while the caller, which
waits a little longer than that, still gets it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import grpc

from memsim.server.limits import MAX_LISTED, PendingReplies, ReplyBudget
from memsim.server.ops import LAYERS, execute_batch
from memsim.server.sessions import caller_gone, caller_id, client_id, metadata_lease
from memsim.server.wire import DeadlineExceeded, batch_stream, call_budget
from memsim.sim.alloc import layout as L
from memsim.sim.alloc.heap import Heap
from memsim.sim.alloc.memstats import read_cache_stats, read_central_stats, read_memstats
from memsim.sim.alloc.owners import TOMBSTONE, Owners, check_client_access
from memsim.sim.alloc.recovery import locked_check
from memsim.sim.alloc.sizeclasses import PAGE_SIZE, table
from memsim.sim.errors import InvalidArgument, ResourceExhausted
from memsim.sim.machine import atomics
from memsim.sim.system import Machine
from memsim.v1 import machine_pb2 as pb
from memsim.v1 import machine_pb2_grpc

log = logging.getLogger("memsim.worker")

RELEASE_CHUNK = 1000  # objects freed per hold of the core's mutex when a client is released
TABLE_FULL_LOG_PERIOD_S = 10.0  # at most one "client table full" line per core this often


def allocated_by(req: pb.OpBatch, reply: pb.BatchReply) -> list[int]:
    """The objects a batch allocated and did not free itself: what to free if its reply is lost.
    (Its frees and writes of older objects cannot be undone; they were the caller's to ask for.)"""
    failed = {e.index for e in reply.errors}
    refs = list(req.ref)
    addrs = list(req.address) or [0] * len(req.kind)
    live: dict[int, None] = {}
    for i, kind in enumerate(req.kind):
        if i in failed:
            continue
        if kind == pb.ALLOC:
            live[reply.address[i]] = None
        elif kind == pb.FREE:
            ref = refs[i] if refs else -1
            live.pop(reply.address[ref] if ref >= 0 else addrs[i], None)
    return list(live)


class MachineServicer(machine_pb2_grpc.MachineServicer):
    def __init__(self, machine: Machine, heap: Heap, core: int, port: int, replies: PendingReplies | None = None):
        self.machine = machine
        self.heap = heap
        self.core = core
        self.port = port
        self.core_lock = threading.Lock()
        self.replies = replies or PendingReplies(core)  # the core's reply bytes not yet sent (limits.py)
        self.owners = Owners(heap)
        self._table_full_logged = -TABLE_FULL_LOG_PERIOD_S

    def _client_entry(self, context: grpc.ServicerContext, keep: bool = False) -> int:
        """The caller's entry in the client table (claimed on its first allocation), or 0 for an
        object that is nobody's: kept, or asked for without a client id (server/sessions.py)."""
        cid = client_id(context)
        lease = metadata_lease(context)
        if keep or not cid:
            return 0
        try:
            return self.owners.claim(cid, lease, time.monotonic())
        except ResourceExhausted:
            # Refusing would let whoever fills the table stop every other client's allocations; a
            # nobody's object (like keep=True) lives until it is freed, which only its caller can do.
            now = time.monotonic()
            if now >= self._table_full_logged + TABLE_FULL_LOG_PERIOD_S:
                self._table_full_logged = now
                log.warning("core %d: the client table is full (%d entries); client %x's allocations are "
                            "recorded as nobody's: its close or lease end will not free them",
                            self.core, L.MAX_CLIENTS - 1, cid)
            return 0

    # -- single operations -----------------------------------------------------------------

    def Alloc(self, request: pb.AllocRequest, context: grpc.ServicerContext) -> pb.AllocReply:
        with self.core_lock:
            r = self.heap.malloc(request.size, self._client_entry(context, request.keep))
            gone = caller_gone(context)
            if gone:
                self.heap.free(r.address)
        if gone:
            raise DeadlineExceeded(f"the deadline passed (or was too close to reply) before the {request.size}-byte "
                                   f"object at {r.address:#x} was allocated; it was freed again")
        return pb.AllocReply(address=r.address, size=r.size, usable_size=r.usable, size_class=r.size_class,
                             layer=LAYERS[r.layer], core=self.core,
                             lock_waits=[pb.LockWait(lock=n, wait_ns=w) for n, w in r.lock_waits])

    def Free(self, request: pb.FreeRequest, context: grpc.ServicerContext) -> pb.FreeReply:
        with self.core_lock:
            check_client_access(self.heap, request.address, "free")
            f = self.heap.free(request.address)
        return pb.FreeReply(layer=LAYERS[f.layer], core=self.core,
                            lock_waits=[pb.LockWait(lock=n, wait_ns=w) for n, w in f.lock_waits])

    def Read(self, request: pb.ReadRequest, context: grpc.ServicerContext) -> pb.ReadReply:
        budget = call_budget(self.replies, context)
        with self.core_lock:
            check_client_access(self.heap, request.address, "read")
            budget.charge(request.length, "a read")
            data = self.heap.read(request.address, request.offset, request.length)
        return pb.ReadReply(data=data, core=self.core)

    def Write(self, request: pb.WriteRequest, context: grpc.ServicerContext) -> pb.WriteReply:
        with self.core_lock:
            check_client_access(self.heap, request.address, "write")
            self.heap.write(request.address, request.offset, request.data)
        return pb.WriteReply(core=self.core)

    def Batch(self, request_iterator: Iterator[pb.OpBatch], context: grpc.ServicerContext) -> Iterator[pb.BatchReply]:
        def execute(req: pb.OpBatch, budget: ReplyBudget, arrived: float) -> pb.BatchReply:
            entry = self._client_entry(context) if pb.ALLOC in req.kind else 0
            reply = execute_batch(self.heap, req, budget, client=entry)
            late = req.timeout_ms and time.monotonic() - arrived > req.timeout_ms / 1000
            if late or not context.is_active():  # the caller has given up: nobody could name these
                for address in allocated_by(req, reply):
                    self.heap.free(address)
                reply = pb.BatchReply(seq=req.seq, core=self.core, expired=True)
            return reply

        yield from batch_stream(request_iterator, self.replies, self.core_lock, execute)

    # -- owners (sim/alloc/owners.py, server/sessions.py) -------------------------------------

    def ListObjects(self, request: pb.ListObjectsRequest, context: grpc.ServicerContext) -> pb.ListObjectsReply:
        limit = request.limit or 1000
        if limit > MAX_LISTED:
            raise InvalidArgument(f"limit {limit} is more than {MAX_LISTED}; `total` counts every match")
        core = request.core if request.HasField("core") else None
        if core is not None and core >= self.machine.config.cores:
            raise InvalidArgument(f"core {core}: the machine has cores 0..{self.machine.config.cores - 1}")
        client = client_id(context) if request.mine else None
        if request.mine and not client:
            raise InvalidArgument("mine lists the caller's objects: send memsim-client-id metadata")
        if request.client:
            if request.mine:
                raise InvalidArgument("give client or mine, not both")
            try:
                client = int(request.client, 16) if len(request.client) <= 16 else -1
            except ValueError:
                client = -1
            if not 0 < client < 1 << 63:
                raise InvalidArgument(f"client {request.client[:40]!r} must be a client id: 1-16 hex digits")
        objects, total = self.owners.live(core=core, client=client, limit=limit)
        return pb.ListObjectsReply(total=total, objects=[
            pb.LiveObject(address=o.address, size=o.size, core=o.core, client=f"{o.client:x}" if o.client else "",
                          kind=o.kind) for o in objects])

    def Renew(self, request: pb.RenewRequest, context: grpc.ServicerContext) -> pb.RenewReply:
        # Without the core's mutex, as VM.Renew: a renewal is one store to shared memory.
        held = self.owners.renew(caller_id(context, "Renew", "objects"), time.monotonic())
        return pb.RenewReply(objects=held)

    def Release(self, request: pb.ReleaseRequest, context: grpc.ServicerContext) -> pb.ReleaseReply:
        cid = caller_id(context, "Release", "objects")
        freed = self.release(self.owners.entry_of(cid), cid, time.monotonic(), expired_only=False)
        return pb.ReleaseReply(objects=freed)

    def release(self, entry: int, cid: int, now: float, expired_only: bool) -> int:
        """Free a client's objects, RELEASE_CHUNK per hold of the core's mutex (others' calls go
        between); returns how many were freed. `cid` TOMBSTONE sweeps a released entry (owners.py)."""
        owners = self.owners
        if not entry:
            return 0
        with self.core_lock:
            if not owners.begin_release(entry, cid, now, expired_only):
                return 0
        # Listed once, without the mutex: a scan of the shared records, none of this core's own
        # state. Listing again per chunk made a release quadratic in the client's objects.
        todo = owners.client_objects(entry)
        freed = 0
        for start in range(0, len(todo), RELEASE_CHUNK):
            with self.core_lock:
                freed += owners.free_listed(entry, todo[start:start + RELEASE_CHUNK])
        with self.core_lock:
            owners.finish_release(entry, now)
        return freed

    def expired(self, now: float) -> list[int]:
        return self.owners.expired(now) + self.owners.tombstones(now)

    def reap(self, now: float) -> list[str]:
        """Free the objects of every client whose lease ran out before `now`, and sweep released
        entries due for it (LeaseReaper)."""
        out = []
        for entry in self.owners.expired(now):
            cid = int(self.machine.arrays.client_id[entry])
            n = self.release(entry, cid, now, expired_only=True)
            if n:
                out.append(f"{n} objects of client {abs(cid):x}")
        for entry in self.owners.tombstones(now):
            n = self.release(entry, TOMBSTONE, now, expired_only=True)
            if n:
                out.append(f"{n} objects allocated under client entry {entry} as its client closed")
        return out

    # -- introspection ---------------------------------------------------------------------

    def GetInfo(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> pb.MachineInfo:
        cfg = self.machine.config
        classes = [pb.SizeClass(index=c.index, size=c.size, npages=c.npages, objects=c.objects,
                                tail_waste=c.tail_waste, max_waste=c.max_waste, batch=c.batch)
                   for c in table().classes]
        return pb.MachineInfo(cores=cfg.cores, memory_bytes=cfg.memory_bytes, frame_size=cfg.frame_size,
                              heap_page_size=PAGE_SIZE, per_core_caches=cfg.per_core_caches,
                              global_lock=cfg.global_lock, core=self.core, port=self.port, size_classes=classes,
                              atomics_backend=atomics.backend(), arena_base=self.heap.base)

    def GetStats(self, request: pb.StatsRequest, context: grpc.ServicerContext) -> pb.Stats:
        a = self.machine.arrays
        ms = read_memstats(a, metadata_bytes=self.machine.meta.size)
        memstats = pb.MemStats(
            Alloc=ms.Alloc, Sys=ms.Sys,
            HeapAlloc=ms.HeapAlloc, HeapSys=ms.HeapSys, HeapIdle=ms.HeapIdle, HeapInuse=ms.HeapInuse,
            HeapReleased=ms.HeapReleased, HeapObjects=ms.HeapObjects, Mallocs=ms.Mallocs, Frees=ms.Frees,
            TotalAlloc=ms.TotalAlloc, TinyAllocs=ms.TinyAllocs, LargeAllocs=ms.LargeAllocs,
            BySize=[pb.BySizeEntry(Size=b.Size, Mallocs=b.Mallocs, Frees=b.Frees) for b in ms.BySize])
        locks = [pb.LockStat(name=s.name, acquisitions=s.acquisitions, contended=s.contended, wait_ns=s.wait_ns,
                             max_wait_ns=s.max_wait_ns, owner_switches=s.owner_switches, hold_ns=s.hold_ns)
                 for s in self.heap.locks.snapshot()]
        caches = [pb.CacheStat(core=c.core, hits=c.hits, refills=c.refills, flushes=c.flushes,
                               central_direct=c.central_direct, tiny_allocs=c.tiny_allocs, bad_frees=c.bad_frees)
                  for c in read_cache_stats(a)]
        centrals = [pb.CentralStat(size=c.size, spans=c.spans, free_objects=c.free_objects,
                                   remove_range=c.remove_range, insert_range=c.insert_range,
                                   span_allocs=c.span_allocs, span_frees=c.span_frees)
                    for c in read_central_stats(a)]
        g = a.heap_gauges
        problems: list[str] = []
        if request.check_heap:
            with self.core_lock:
                problems = locked_check(self.heap)
        return pb.Stats(heap_checked=request.check_heap, heap_problems=problems,
                        memstats=memstats, locks=locks, caches=caches, centrals=centrals,
                        frames=self.machine.memory.frames_by_owner(), core=self.core,
                        recoveries=int(g[L.G_RECOVERIES]), heap_grows=int(g[L.G_GROWS]),
                        scavenged_pages=int(g[L.G_SCAVENGED_TOTAL]))
