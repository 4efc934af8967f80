"""The virtual-memory client: address spaces on the machine, their regions, loads and stores.

    from memsim.client import VMClient
    with VMClient("127.0.0.1:50051") as vm:
        sp = vm.create_space(page_table="multilevel")          # or linear, hybrid, inverted; bits=...
        heap = sp.mmap(1 << 20, prot="rw", kind="heap")
        sp.store(heap, b"hello"); sp.load(heap, 5)             # b'hello'
        sp.translate(heap)     # Translation(frame=..., levels=0, tlb_hit=True, fault='none', ...)
        sp.memory_usage()      # {'rss': ..., 'heapTotal': 1048576, 'heapUsed': ..., 'external': ..., ...}
        sp.memory_map()        # smaps-like regions
        b = sp.batch(); b.store(heap, b"x"); b.load(heap, 1); b.translate(heap); b.execute()
        vm.vmstat()            # {'pgfault': ..., 'pgmajfault': ..., 'pswpin': ..., ...}
        sp.destroy()           # or leave it: closing the client destroys what it made

A space belongs to the client that created it: `close()` destroys it, and if the process dies
without closing, the server does once the client's lease (`lease=`, 30 s) runs out
(client/session.py). `create_space(..., keep=True)` makes one that outlives its client, until
someone calls `destroy()` on it (`vm.space(id)` gives a handle from any client).

Protections are "r", "rw", "rx", "rwx", "none" (or R=1 | W=2 | X=4); kinds code, data, heap, stack
(which gets a guard page below it) and anon. Faults come back as the typed errors of
`memsim.client.errors`: OutOfRange for a segmentation fault, FailedPrecondition for a
protection or guard-page fault, NotFound for a space that does not exist.

The methods are written once, in `SpaceCommands` and `VMCommands` (client/rpc.py's `command`):
`Space` and `VMClient` here run them now, client/vm_aio.py's `AsyncSpace` and `AsyncVMClient`
return coroutines. This module also owns the VM's records (Translation, VmBatchResult), the batch
builder and the protection spelling; it touches only the protos and client/connection.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from memsim.client.connection import DEFAULT_TIMEOUT, Connection, Endpoint, build_request
from memsim.client.errors import InvalidArgument, MemsimError, from_code
from memsim.client.rpc import Op, Steps, SyncRunner, command, roundtrip, unary
from memsim.client.session import CLIENT_ID_KEY, DEFAULT_LEASE, check_lease, new_client_id
from memsim.v1 import machine_pb2 as mpb
from memsim.v1 import vm_pb2 as pb
from memsim.v1 import vm_pb2_grpc

FAULT_NAMES = {0: "none", 1: "minor", 2: "major"}
R = TypeVar("R")  # what a bound batch's execute() returns: VmBatchResult, or a coroutine of one
C = TypeVar("C")  # the client a space's calls go through
SpaceT = TypeVar("SpaceT")  # the space handle a client makes: Space, or AsyncSpace


def prot_bits(prot: str | int) -> int:
    """R=1 | W=2 | X=4 from 'rwx' letters ('-' for a missing one, as /proc/<pid>/maps prints them),
    or from 'none': PROT_NONE, Linux's spelling of a mapping no access may touch."""
    if isinstance(prot, int):
        return prot
    if isinstance(prot, str) and prot.lower() == "none":
        return 0
    if not isinstance(prot, str) or not set(prot) <= set("rwx-"):
        raise InvalidArgument(f"protection {prot!r}: use letters r, w, x (e.g. 'rw'), 'none' for no access, "
                              f"or R=1 | W=2 | X=4")
    return ("r" in prot) * 1 | ("w" in prot) * 2 | ("x" in prot) * 4


def usage_dict(u: pb.MemoryUsageReply) -> dict[str, int]:
    """memory_usage() as Node's process.memoryUsage() names it (shared by the sync and asyncio clients)."""
    return {"rss": u.rss, "heapTotal": u.heapTotal, "heapUsed": u.heapUsed, "external": u.external,
            "pageTables": u.page_tables, "swap": u.swap}


def map_list(m: pb.MemoryMapReply) -> list[dict[str, Any]]:
    """memory_map()'s regions as dicts, smaps-like."""
    return [{"start": r.start, "end": r.end, "size": r.size, "rss": r.rss, "swap": r.swap, "perms": r.perms,
             "kind": r.kind, "name": r.name, "huge_pages": r.huge_pages, "pinned": r.pinned} for r in m.regions]


@dataclass(frozen=True)
class Translation:
    frame: int
    levels: int
    tlb_hit: bool
    fault: str
    page_table: str
    core: int


@dataclass
class VmBatchResult:
    results: list[Any]  # per op: bytes (load), None (store), Translation (translate), or the exception
    errors: list[tuple[int, MemsimError]] = field(default_factory=list)

    def __getitem__(self, i: int) -> Any:
        return self.results[i]

    def raise_first(self) -> VmBatchResult:
        if self.errors:
            raise self.errors[0][1]
        return self


class VmBatch(Generic[R]):
    """Loads, stores and translations for one stream message."""

    def __init__(self, run: Callable[[VmBatch[R]], R], space: int):
        self._run = run
        self.space = space
        self.ops: list[pb.VmOp] = []
        self.spaces: list[int] = []
        self.addrs: list[int] = []
        self.lengths: list[int] = []
        self.data: list[bytes] = []

    def _add(self, op: pb.VmOp, addr: int, length: int, space: int | None) -> VmBatch[R]:
        self.ops.append(op)
        self.spaces.append(self.space if space is None else space)
        self.addrs.append(addr)
        self.lengths.append(length)
        return self

    def load(self, addr: int, length: int, space: int | None = None) -> VmBatch[R]:
        return self._add(pb.VM_LOAD, addr, length, space)

    def store(self, addr: int, data: bytes, space: int | None = None) -> VmBatch[R]:
        self.data.append(bytes(data))
        return self._add(pb.VM_STORE, addr, 0, space)

    def translate(self, addr: int, write: bool = False, space: int | None = None) -> VmBatch[R]:
        return self._add(pb.VM_TRANSLATE, addr, int(write), space)

    def __len__(self) -> int:
        return len(self.ops)

    def to_proto(self, seq: int) -> pb.VmBatch:
        return pb.VmBatch(seq=seq, op=self.ops, space=self.spaces, address=self.addrs, length=self.lengths,
                          data=self.data)

    def decode(self, reply: pb.VmBatchReply) -> VmBatchResult:
        errors = {e.index: from_code(e.code, e.message) for e in reply.errors}
        out: list[Any] = []
        loads = iter(reply.data)
        for i, op in enumerate(self.ops):
            data = next(loads) if op == pb.VM_LOAD else None
            if i in errors:
                out.append(errors[i])
            elif op == pb.VM_LOAD:
                out.append(data)
            elif op == pb.VM_TRANSLATE:
                out.append(Translation(reply.frame[i], reply.levels[i] if reply.levels else 0, reply.tlb_hit[i],
                                       FAULT_NAMES[reply.fault[i]], "", reply.core))
            else:
                out.append(None)
        return VmBatchResult(out, sorted(errors.items()))

    def execute(self) -> R:
        return self._run(self)


class SpaceCommands(Generic[C]):
    """One address space's calls (a handle: each goes through the client that made it)."""

    def __init__(self, client: C, stats: pb.SpaceStats):
        self.client = client
        self.id = stats.space
        self.page_table = stats.page_table
        self.bits = stats.bits

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.page_table} {self.bits}-bit>"

    @command
    def mmap(self, length: int, prot: str | int = "rw", kind: str = "anon", name: str = "",
             address: int | None = None, huge: bool = False, hugetlb: bool = False) -> Steps[int]:
        req = build_request(pb.MmapRequest, space=self.id, length=length, prot=prot_bits(prot), kind=kind, name=name,
                            fixed=address is not None, address=address or 0, huge=huge, hugetlb=hugetlb)
        return (yield from unary("Mmap", req, pb.MmapReply)).address

    @command
    def munmap(self, address: int, length: int) -> Steps[int]:
        req = build_request(pb.MunmapRequest, space=self.id, address=address, length=length)
        return (yield from unary("Munmap", req, pb.MunmapReply)).pages_freed

    @command
    def mprotect(self, address: int, length: int, prot: str | int) -> Steps[None]:
        req = build_request(pb.MprotectRequest, space=self.id, address=address, length=length, prot=prot_bits(prot))
        yield from unary("Mprotect", req, pb.MprotectReply)

    @command
    def load(self, address: int, length: int) -> Steps[bytes]:
        req = build_request(pb.LoadRequest, space=self.id, address=address, length=length)
        return (yield from unary("Load", req, pb.LoadReply)).data

    @command
    def store(self, address: int, data: bytes) -> Steps[None]:
        yield from unary("Store", build_request(pb.StoreRequest, space=self.id, address=address, data=bytes(data)),
                         pb.StoreReply)

    @command
    def translate(self, address: int, write: bool = False) -> Steps[Translation]:
        req = build_request(pb.TranslateRequest, space=self.id, address=address, write=write)
        t = yield from unary("Translate", req, pb.Translation)
        return Translation(t.frame, t.levels, t.tlb_hit, t.fault, t.page_table, t.core)

    @command
    def pin_user_pages(self, address: int, npages: int, write: bool = True,
                       longterm: bool = False) -> Steps[tuple[list[int], int]]:
        """Fault in and pin npages pages (Linux's pin_user_pages): their machine-wide frames, and the core
        that holds the pins; unpin on that core (a client made with core=...). longterm=True (FOLL_LONGTERM):
        the space's pins, which outlive the core and any core unpins (with longterm=True)."""
        req = build_request(pb.PinUserPagesRequest, space=self.id, address=address, npages=npages, write=write,
                            longterm=longterm)
        reply = yield from unary("PinUserPages", req, pb.PinUserPagesReply)
        return list(reply.frames), reply.core

    @command
    def unpin_user_pages(self, frames: list[int], longterm: bool = False) -> Steps[None]:
        req = build_request(pb.UnpinUserPagesRequest, space=self.id, frames=list(frames), longterm=longterm)
        yield from unary("UnpinUserPages", req, pb.UnpinUserPagesReply)

    @command
    def memory_usage(self) -> Steps[dict[str, int]]:
        return usage_dict((yield from unary("MemoryUsage", self._request(), pb.MemoryUsageReply)))

    @command
    def memory_map(self) -> Steps[list[dict[str, Any]]]:
        return map_list((yield from unary("MemoryMap", self._request(), pb.MemoryMapReply)))

    @command
    def stats(self) -> Steps[pb.SpaceStats]:
        return (yield from unary("SpaceStat", self._request(), pb.SpaceStats))

    @command
    def destroy(self) -> Steps[None]:
        yield from unary("DestroySpace", self._request(), pb.SpaceStats)

    def _request(self) -> pb.SpaceRequest:
        return build_request(pb.SpaceRequest, space=self.id)


class VMCommands(Endpoint, Generic[SpaceT]):
    """The VM service's calls on a client; `_space` makes the client's kind of space handle."""

    client_id: str

    def __init__(self, target: str = "127.0.0.1:50051", *, core: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, lease: float = DEFAULT_LEASE):
        lease = check_lease(lease)
        self.client_id = new_client_id()
        # The lease rides in CreateSpaceRequest.lease_seconds, so the metadata names only the client.
        self._connect(target, core, timeout, vm_pb2_grpc.VMStub, "Batch", ((CLIENT_ID_KEY, self.client_id),),
                      lease=lease, what="VM batch")

    def _space(self, stats: pb.SpaceStats) -> SpaceT:
        raise NotImplementedError

    def _held(self, reply: mpb.RenewReply) -> bool:
        return reply.spaces > 0

    @command
    def create_space(self, page_table: str = "multilevel", bits: int = 0, levels: int = 0, level_bits: int = 0,
                     name: str = "", keep: bool = False) -> Steps[SpaceT]:
        """A new space, destroyed when this client closes (or its lease runs out) unless keep=True."""
        req = build_request(pb.CreateSpaceRequest, page_table=page_table, bits=bits, levels=levels,
                            level_bits=level_bits, name=name, keep=keep, lease_seconds=self.lease)
        if not keep:
            self._start_keepalive()  # before the call: a space it creates is never without renewal
        return self._space((yield from unary("CreateSpace", req, pb.SpaceStats)))

    @command
    def space(self, space_id: int) -> Steps[SpaceT]:
        """A handle on an existing space (any client's)."""
        return self._space((yield from unary("SpaceStat", build_request(pb.SpaceRequest, space=space_id),
                                             pb.SpaceStats)))

    @command
    def spaces(self, mine_only: bool = False) -> Steps[list[pb.SpaceStats]]:
        """Every space on the machine (each with its owner, keep and lease_remaining), or this client's."""
        return list((yield from unary("ListSpaces", pb.ListSpacesRequest(mine=mine_only), pb.ListSpacesReply)).spaces)

    @command
    def vmstat(self) -> Steps[dict[str, int | str]]:
        """The machine's VM counters, as /proc/vmstat names them, and "policy": the replacement policy's name."""
        r = yield from unary("VmStat", pb.VmStatRequest(), pb.VmStatReply)
        return {**dict(r.counters), "policy": r.policy}

    @command
    def execute(self, batch: VmBatch[Any]) -> Steps[VmBatchResult]:
        return batch.decode((yield from roundtrip(batch.to_proto, pb.VmBatchReply, self.timeout)))


class Space(SpaceCommands["VMClient"], SyncRunner):
    """One address space: a handle with the space's calls (all go through its VMClient)."""

    def _perform(self, op: Op) -> Any:
        return self.client._perform(op)

    def batch(self) -> VmBatch[VmBatchResult]:
        return VmBatch(self.client.execute, self.id)


class VMClient(VMCommands[Space], Connection):
    """A connection to a memsim server's virtual memory (any core, or `core=N` for that core's port)."""

    def _space(self, stats: pb.SpaceStats) -> Space:
        return Space(self, stats)
