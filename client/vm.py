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
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import grpc

from memsim.client.errors import InvalidArgument, MemsimError, client_closed, from_code, from_rpc_error
from memsim.client.session import (
    CLIENT_ID_KEY,
    DEFAULT_LEASE,
    Keepalive,
    check_lease,
    close_session,
    new_client_id,
)
from memsim.client.sync import DEFAULT_TIMEOUT, StreamSession, channel_options, core_target
from memsim.client.sync import build_request as _req  # InvalidArgument for what protobuf cannot carry
from memsim.v1 import machine_pb2 as mpb
from memsim.v1 import vm_pb2 as pb
from memsim.v1 import vm_pb2_grpc

FAULT_NAMES = {0: "none", 1: "minor", 2: "major"}


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
             "kind": r.kind, "name": r.name, "huge_pages": r.huge_pages} for r in m.regions]


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


class VmBatch:
    """Loads, stores and translations for one stream message."""

    def __init__(self, run, space: int):
        self._run = run
        self.space = space
        self.ops: list[int] = []
        self.spaces: list[int] = []
        self.addrs: list[int] = []
        self.lengths: list[int] = []
        self.data: list[bytes] = []

    def _add(self, op: int, addr: int, length: int, space: int | None) -> VmBatch:
        self.ops.append(op)
        self.spaces.append(self.space if space is None else space)
        self.addrs.append(addr)
        self.lengths.append(length)
        return self

    def load(self, addr: int, length: int, space: int | None = None) -> VmBatch:
        return self._add(pb.VM_LOAD, addr, length, space)

    def store(self, addr: int, data: bytes, space: int | None = None) -> VmBatch:
        self.data.append(bytes(data))
        return self._add(pb.VM_STORE, addr, 0, space)

    def translate(self, addr: int, write: bool = False, space: int | None = None) -> VmBatch:
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

    def execute(self) -> VmBatchResult:
        return self._run(self)


class Space:
    """One address space: a handle with the space's calls (all go through its VMClient)."""

    def __init__(self, client: VMClient, stats: pb.SpaceStats):
        self.client = client
        self.id = stats.space
        self.page_table = stats.page_table
        self.bits = stats.bits

    def __repr__(self) -> str:
        return f"<Space {self.id} {self.page_table} {self.bits}-bit>"

    def mmap(self, length: int, prot: str | int = "rw", kind: str = "anon", name: str = "",
             address: int | None = None, huge: bool = False, hugetlb: bool = False) -> int:
        req = _req(pb.MmapRequest, space=self.id, length=length, prot=prot_bits(prot), kind=kind, name=name,
                   fixed=address is not None, address=address or 0, huge=huge, hugetlb=hugetlb)
        return self.client._call("Mmap", req).address

    def munmap(self, address: int, length: int) -> int:
        return self.client._call("Munmap", _req(pb.MunmapRequest, space=self.id, address=address,
                                                            length=length)).pages_freed

    def mprotect(self, address: int, length: int, prot: str | int) -> None:
        self.client._call("Mprotect", _req(pb.MprotectRequest, space=self.id, address=address, length=length,
                                                         prot=prot_bits(prot)))

    def load(self, address: int, length: int) -> bytes:
        return self.client._call("Load", _req(pb.LoadRequest, space=self.id, address=address, length=length)).data

    def store(self, address: int, data: bytes) -> None:
        self.client._call("Store", _req(pb.StoreRequest, space=self.id, address=address, data=bytes(data)))

    def translate(self, address: int, write: bool = False) -> Translation:
        t = self.client._call("Translate", _req(pb.TranslateRequest, space=self.id, address=address, write=write))
        return Translation(t.frame, t.levels, t.tlb_hit, t.fault, t.page_table, t.core)

    def memory_usage(self) -> dict[str, int]:
        return usage_dict(self.client._call("MemoryUsage", _req(pb.SpaceRequest, space=self.id)))

    def memory_map(self) -> list[dict[str, Any]]:
        return map_list(self.client._call("MemoryMap", _req(pb.SpaceRequest, space=self.id)))

    def stats(self) -> pb.SpaceStats:
        return self.client._call("SpaceStat", _req(pb.SpaceRequest, space=self.id))

    def batch(self) -> VmBatch:
        return VmBatch(self.client.execute, self.id)

    def destroy(self) -> None:
        self.client._call("DestroySpace", _req(pb.SpaceRequest, space=self.id))


class VMClient:
    """A connection to a memsim server's virtual memory (any core, or `core=N` for that core's port)."""

    def __init__(self, target: str = "127.0.0.1:50051", *, core: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, lease: float = DEFAULT_LEASE):
        self.target = core_target(target, core)
        self.timeout = timeout
        self.lease = check_lease(lease)
        self.client_id = new_client_id()
        self._metadata = ((CLIENT_ID_KEY, self.client_id),)
        self._channel = grpc.insecure_channel(self.target, options=channel_options())
        self._stub = vm_pb2_grpc.VMStub(self._channel)
        self._batches = StreamSession(self._stub.Batch)
        self._keepalive = Keepalive(self._renew, self.lease)

    def close(self) -> None:
        """Close the connection, destroying the spaces this client made (but not those it kept)."""
        if self._closed:
            return
        self._closed = True
        close_session(self._keepalive, self._batches, functools.partial(self._stub.Release, mpb.ReleaseRequest()),
                      self.timeout, self._metadata, self._channel)

    _closed = False

    def _renew(self) -> bool:
        """Renew this client's lease; whether it still holds any space."""
        return self._stub.Renew(mpb.RenewRequest(), timeout=min(self.timeout, self.lease / 2),
                                metadata=self._metadata).spaces > 0

    def __enter__(self) -> VMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Any) -> Any:
        if self._closed:
            raise client_closed(self)
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def create_space(self, page_table: str = "multilevel", bits: int = 0, levels: int = 0, level_bits: int = 0,
                     name: str = "", keep: bool = False) -> Space:
        """A new space, destroyed when this client closes (or its lease runs out) unless keep=True."""
        req = _req(pb.CreateSpaceRequest, page_table=page_table, bits=bits, levels=levels, level_bits=level_bits,
                   name=name, keep=keep, lease_seconds=self.lease)
        if not keep:
            self._keepalive.start()  # before the call: a space it creates is never without renewal
        return Space(self, self._call("CreateSpace", req))

    def space(self, space_id: int) -> Space:
        return Space(self, self._call("SpaceStat", _req(pb.SpaceRequest, space=space_id)))

    def spaces(self, mine_only: bool = False) -> list[pb.SpaceStats]:
        """Every space on the machine (each with its owner, keep and lease_remaining), or this client's."""
        return list(self._call("ListSpaces", pb.ListSpacesRequest(mine=mine_only)).spaces)

    def vmstat(self) -> dict[str, int]:
        r = self._call("VmStat", pb.VmStatRequest())
        return {**dict(r.counters), "policy": r.policy}

    def execute(self, batch: VmBatch) -> VmBatchResult:
        return batch.decode(self._batches.roundtrip(batch.to_proto, self.timeout))
