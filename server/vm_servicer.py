"""memsim.v1.VM on one core: gRPC to `sim/vm/vm.py` (the VM's system-call surface) and back.

Like the other services, every call takes the core's mutex (the simulated CPU, worker.py)
around the VM work; the VM takes its own shared locks (a space's lock, the pool's, the
policy's) inside. A batch message takes the mutex once for all its operations. A SimError
becomes its status code with the simulator's message (which names the address and the
region for a fault) in `wire.py`; anything else becomes INTERNAL without taking the worker down.
A space is held by the client that created it, on a lease (server/sessions.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Concatenate, ParamSpec, TypeVar

import grpc

from memsim.server.limits import MAX_BATCH_OPS, PendingReplies, ReplyBudget
from memsim.server.monitor import monitor_stream
from memsim.server.periodic import Periodic
from memsim.server.sessions import caller_gone, caller_id, client_id, creator
from memsim.server.wire import DeadlineExceeded, batch_stream, call_budget, check_batch_size, run_ops
from memsim.sim.errors import FailedPrecondition, InvalidArgument, NotFound
from memsim.sim.trace.monitor import Subscriber
from memsim.sim.vm.gup import MAX_PIN_PAGES
from memsim.sim.vm.hugepage import collapse_scan
from memsim.sim.vm.kinds import PAGE_TABLE_DEFAULT
from memsim.sim.vm.layout import HUGE_FRAMES
from memsim.sim.vm.lru import policy_name
from memsim.sim.vm.monitor import PageMonitor
from memsim.sim.vm.task_mmu import SpaceStats
from memsim.sim.vm.vm import VM
from memsim.v1 import machine_pb2 as mpb
from memsim.v1 import vm_pb2 as pb
from memsim.v1 import vm_pb2_grpc

log = logging.getLogger("memsim.worker")
Params = ParamSpec("Params")
T = TypeVar("T")
FAULTS = {"none": 0, "minor": 1, "major": 2}
PAGES_TO_SCAN = 4096  # khugepaged's pages per scan (/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan)


def space_stats(d: SpaceStats) -> pb.SpaceStats:
    return pb.SpaceStats(space=d["space"], page_table=d["page_table"], bits=d["bits"], name=d["name"],
                         page_table_bytes=d["page_table_bytes"], rss_pages=d["rss_pages"],
                         swap_pages=d["swap_pages"], minflt=d["minflt"], majflt=d["majflt"],
                         tlb_hits=d["tlb_hits"], tlb_misses=d["tlb_misses"], tlb_hit_ratio=d["tlb_hit_ratio"],
                         accesses=d["accesses"], owner=f"{d['owner']:x}" if d["owner"] else "",
                         keep=not d["owner"],
                         lease_remaining=max(0.0, d["lease_expiry"] - time.monotonic()) if d["owner"] else 0.0)


def run_batch(vm: VM, req: pb.VmBatch, core: int, budget: ReplyBudget | None = None) -> pb.VmBatchReply:
    """The VM service's batch executor (wire.batch_stream): every op in order; a failing op gets an
    OpError (a LOAD that does not fit the reply's budget fails before it reads) and the rest go on."""
    if budget is None:
        budget = ReplyBudget()
    ops = list(req.op)
    n = len(ops)
    check_batch_size(n, MAX_BATCH_OPS)
    spaces = list(req.space) or [0] * n
    addrs = list(req.address)
    lengths = list(req.length) or [0] * n
    payloads = list(req.data)
    if len(spaces) != n or len(addrs) != n or len(lengths) != n:
        raise InvalidArgument(f"bad batch: space, address and length must each have one entry per op ({n})")
    if len(payloads) != ops.count(pb.VM_STORE):
        raise InvalidArgument(f"bad batch: {len(payloads)} payloads for {ops.count(pb.VM_STORE)} STORE ops")
    next_payload = iter(payloads)
    # A STORE's payload is its own whether or not the store succeeds.
    payload_of = [next(next_payload) if op == pb.VM_STORE else b"" for op in ops]
    reply = pb.VmBatchReply(seq=req.seq, core=core)
    data = reply.data
    faults, levels, frames = [0] * n, [0] * n, [0] * n
    hits = [False] * n

    def op(i: int) -> None:
        kind = ops[i]
        if kind == pb.VM_LOAD:
            data.append(b"")  # one slot per LOAD, empty if it fails
            budget.charge(lengths[i], f"op {i} (LOAD)")
            try:
                data[-1] = vm.load(spaces[i], addrs[i], lengths[i])
            except Exception:
                budget.refund(lengths[i])  # nothing was copied
                raise
        elif kind == pb.VM_STORE:
            vm.check_client_may_change(spaces[i], "store")
            vm.store(spaces[i], addrs[i], payload_of[i])
        elif kind == pb.VM_TRANSLATE:
            t = vm.translate(spaces[i], addrs[i], write=bool(lengths[i]))
            faults[i], hits[i], frames[i], levels[i] = FAULTS[t["fault"]], t["tlb_hit"], t["frame"], t["levels"]
        else:
            raise InvalidArgument(f"bad batch: op {i} has kind {kind}")

    reply.errors.extend(run_ops(n, op, core))
    reply.fault.extend(faults)
    reply.levels.extend(levels)
    reply.tlb_hit.extend(hits)
    reply.frame.extend(frames)
    return reply


class VmServicer(vm_pb2_grpc.VMServicer):
    def __init__(self, vm: VM, core: int, core_lock: threading.Lock, replies: PendingReplies | None = None):
        self.vm = vm
        self.core = core
        self.core_lock = core_lock
        self.replies = replies or PendingReplies(core)  # the core's reply bytes not yet sent (limits.py)
        self.pages = PageMonitor(vm)  # VM.Monitor's recorder (server/monitor.py)

    def _call(self, context: grpc.ServicerContext, fn: Callable[Params, T], *args: Params.args,
              **kw: Params.kwargs) -> T:
        """fn on this core (its mutex held); a failure becomes its status code in wire.py."""
        with self.core_lock:
            return fn(*args, **kw)

    def CreateSpace(self, request: pb.CreateSpaceRequest, context: grpc.ServicerContext) -> pb.SpaceStats:
        vm = self.vm

        def create() -> SpaceStats:
            owner, lease = creator(context, request.keep, request.lease_seconds)  # (vm.proto: leases)
            now = time.monotonic()
            vm.reap(now)  # what dead clients left goes back before a new space needs room
            sp = vm.create_space(request.page_table or PAGE_TABLE_DEFAULT, bits=request.bits or None,
                                 levels=request.levels or None, level_bits=request.level_bits or None,
                                 name=request.name, owner=owner, lease=lease, now=now)
            vm.renew(owner, now)  # creating is renewing: the client's other spaces live on too
            return vm.space_stats(sp)

        st = self._call(context, create)
        if caller_gone(context):  # nobody can name this space: undo it (server/sessions.py)
            self._call(context, vm.destroy_if_held, st["space"], st["owner"])
            raise DeadlineExceeded(f"the deadline passed (or was too close to reply) before space {st['space']} "
                                   f"was made; it was destroyed again")
        return space_stats(st)

    def DestroySpace(self, request: pb.SpaceRequest, context: grpc.ServicerContext) -> pb.SpaceStats:
        def destroy() -> SpaceStats:
            self.vm.check_client_may_change(request.space, "destroy")
            st = self.vm.space_stats(request.space)
            self.vm.destroy_space(request.space)
            return st

        return space_stats(self._call(context, destroy))

    def Renew(self, request: mpb.RenewRequest, context: grpc.ServicerContext) -> mpb.RenewReply:
        # Without the core's mutex: a renewal is one store to shared memory (sim/vm/leases.py),
        # and a keepalive must not wait behind a long call on this core until its lease runs out.
        n = self.vm.renew(caller_id(context, "Renew", "spaces"), time.monotonic())
        return mpb.RenewReply(spaces=n)

    def Release(self, request: mpb.ReleaseRequest, context: grpc.ServicerContext) -> mpb.ReleaseReply:
        owner = self._call(context, caller_id, context, "Release", "spaces")
        return mpb.ReleaseReply(spaces=self._call(context, self.vm.release, owner))

    def expired(self, now: float) -> list[int]:
        return self.vm.expired(now)

    def reap(self, now: float) -> list[str]:
        """Destroy the spaces whose lease ran out before `now` (LeaseReaper)."""
        with self.core_lock:
            return [f"space {sp}" for sp in self.vm.reap(now)]

    def ListSpaces(self, request: pb.ListSpacesRequest, context: grpc.ServicerContext) -> pb.ListSpacesReply:
        def listing() -> list[SpaceStats]:
            owner = client_id(context) if request.mine else None
            if owner == 0:  # mine, from a caller with no id: it holds nothing (kept spaces are nobody's)
                return []
            out = []
            for sp in self.vm.spaces(owner):
                with contextlib.suppress(NotFound):  # destroyed meanwhile by another core (a reaped lease)
                    out.append(self.vm.space_stats(sp))
            return out

        stats = self._call(context, listing)
        return pb.ListSpacesReply(spaces=[space_stats(d) for d in stats])

    def _change(self, context: grpc.ServicerContext, what: str, fn: Callable[Concatenate[int, Params], T],
                space: int, *args: Params.args, **kw: Params.kwargs) -> T:
        """A call that changes a space: refused on the machine's own (vm.check_client_may_change)."""
        def change() -> T:
            self.vm.check_client_may_change(space, what)
            return fn(space, *args, **kw)

        return self._call(context, change)

    def Mmap(self, request: pb.MmapRequest, context: grpc.ServicerContext) -> pb.MmapReply:
        addr = self._change(context, "mmap", self.vm.mmap, request.space, request.length, prot=request.prot,
                          kind=request.kind or "anon", name=request.name,
                          addr=request.address if request.fixed else None, huge=request.huge,
                          hugetlb=request.hugetlb)
        return pb.MmapReply(address=addr)

    def Munmap(self, request: pb.MunmapRequest, context: grpc.ServicerContext) -> pb.MunmapReply:
        n = self._change(context, "munmap", self.vm.munmap, request.space, request.address, request.length)
        return pb.MunmapReply(pages_freed=n)

    def Mprotect(self, request: pb.MprotectRequest, context: grpc.ServicerContext) -> pb.MprotectReply:
        self._change(context, "mprotect", self.vm.mprotect, request.space, request.address, request.length,
                     request.prot)
        return pb.MprotectReply()

    def Load(self, request: pb.LoadRequest, context: grpc.ServicerContext) -> pb.LoadReply:
        budget = call_budget(self.replies, context)

        def load() -> bytes:
            budget.charge(request.length, "a load")
            return self.vm.load(request.space, request.address, request.length)

        return pb.LoadReply(data=self._call(context, load), core=self.core)

    def Store(self, request: pb.StoreRequest, context: grpc.ServicerContext) -> pb.StoreReply:
        self._change(context, "store", self.vm.store, request.space, request.address, request.data)
        return pb.StoreReply(core=self.core)

    def Translate(self, request: pb.TranslateRequest, context: grpc.ServicerContext) -> pb.Translation:
        t = self._call(context, self.vm.translate, request.space, request.address, request.write)
        return pb.Translation(frame=t["frame"], levels=t["levels"], tlb_hit=t["tlb_hit"], fault=t["fault"],
                              page_table=t["kind"], core=self.core)

    def PinUserPages(self, request: pb.PinUserPagesRequest, context: grpc.ServicerContext) -> pb.PinUserPagesReply:
        budget = call_budget(self.replies, context)

        def pin(space: int, address: int, npages: int, write: bool, longterm: bool) -> list[int]:
            # (charged before a page is pinned; a count over the per-call bound is the VM's InvalidArgument)
            budget.charge(8 * min(npages, MAX_PIN_PAGES), "a pin's frame list")
            return self.vm.pin_user_pages(space, address, npages, write, longterm)

        frames = self._change(context, "pin_user_pages", pin, request.space, request.address, request.npages,
                              request.write, request.longterm)
        if caller_gone(context):  # nobody will unpin what it never heard of: undo it (server/sessions.py)
            with contextlib.suppress(FailedPrecondition):  # (a destroy came first: its pins went with it)
                self._call(context, self.vm.unpin_user_pages, request.space, frames, request.longterm)
            raise DeadlineExceeded(f"the deadline passed (or was too close to reply) before {len(frames)} pages of "
                                   f"space {request.space} were pinned; they were unpinned again")
        return pb.PinUserPagesReply(frames=frames, core=self.core)

    def UnpinUserPages(self, request: pb.UnpinUserPagesRequest,
                       context: grpc.ServicerContext) -> pb.UnpinUserPagesReply:
        self._call(context, self.vm.unpin_user_pages, request.space, list(request.frames), request.longterm)
        return pb.UnpinUserPagesReply(core=self.core)

    def MemoryUsage(self, request: pb.SpaceRequest, context: grpc.ServicerContext) -> pb.MemoryUsageReply:
        u = self._call(context, self.vm.memory_usage, request.space)
        return pb.MemoryUsageReply(rss=u["rss"], heapTotal=u["heapTotal"], heapUsed=u["heapUsed"],
                                   external=u["external"], page_tables=u["pageTables"], swap=u["swap"])

    def MemoryMap(self, request: pb.SpaceRequest, context: grpc.ServicerContext) -> pb.MemoryMapReply:
        regions = self._call(context, self.vm.memory_map, request.space)
        return pb.MemoryMapReply(regions=[pb.Region(**r) for r in regions])

    def SpaceStat(self, request: pb.SpaceRequest, context: grpc.ServicerContext) -> pb.SpaceStats:
        return space_stats(self._call(context, self.vm.space_stats, request.space))

    def VmStat(self, request: pb.VmStatRequest, context: grpc.ServicerContext) -> pb.VmStatReply:
        counters = self._call(context, self.vm.vmstat)
        return pb.VmStatReply(counters=counters, policy=policy_name(self.vm.a), core=self.core)

    def Batch(self, request_iterator: Iterator[pb.VmBatch], context: grpc.ServicerContext) -> Iterator[pb.VmBatchReply]:
        def execute(req: pb.VmBatch, budget: ReplyBudget, arrived: float) -> pb.VmBatchReply:
            return run_batch(self.vm, req, self.core, budget)

        yield from batch_stream(request_iterator, self.replies, self.core_lock, execute)

    def Monitor(self, request: mpb.MonitorRequest, context: grpc.ServicerContext) -> Iterator[mpb.MonitorBatch]:
        def subscribe(limit: int) -> Subscriber:
            with self.core_lock:
                return self.pages.subscribe(request.space, limit)

        yield from monitor_stream(subscribe, self.pages.unsubscribe, request, context, self.core, self.replies)


class Khugepaged(Periodic):
    """khugepaged: promotes fully populated ranges to huge pages every `period_s` (Linux:
    scan_sleep_millisecs, 10 s by default; pages_to_scan 4096), on one core, under its mutex.
    Only the core that runs it pays its CPU."""

    name = "khugepaged"

    def __init__(self, vm: VM, core_lock: threading.Lock, period_s: float,
                 ranges_per_scan: int = PAGES_TO_SCAN // HUGE_FRAMES):
        super().__init__(vm.core, period_s)
        self.vm = vm
        self.core_lock = core_lock
        self.ranges_per_scan = ranges_per_scan  # huge-page ranges per scan: Linux's pages_to_scan in pages

    def tick(self) -> None:
        with self.core_lock:
            collapse_scan(self.vm, self.ranges_per_scan)
