"""The asyncio virtual-memory client: `VMClient`'s calls as coroutines.

    async with AsyncVMClient("127.0.0.1:50051") as vm:
        sp = await vm.create_space(page_table="inverted")
        a = await sp.mmap(65536, kind="heap")
        await sp.store(a, b"hi"); await sp.load(a, 2)
        b = sp.batch(); b.load(a, 2); await b.execute()

Spaces are released as `VMClient`'s are (client/vm.py): at close, or when the lease runs out.
"""

from __future__ import annotations

import functools
from typing import Any

import grpc

from memsim.client.aio import AsyncStreamSession
from memsim.client.errors import client_closed, from_rpc_error
from memsim.client.session import (
    CLIENT_ID_KEY,
    DEFAULT_LEASE,
    AsyncKeepalive,
    check_lease,
    close_session_async,
    new_client_id,
)
from memsim.client.sync import DEFAULT_TIMEOUT, channel_options, core_target
from memsim.client.sync import build_request as _req  # InvalidArgument for what protobuf cannot carry
from memsim.client.vm import Translation, VmBatch, VmBatchResult, map_list, prot_bits, usage_dict
from memsim.v1 import machine_pb2 as mpb
from memsim.v1 import vm_pb2 as pb
from memsim.v1 import vm_pb2_grpc


class AsyncSpace:
    def __init__(self, client: AsyncVMClient, stats: pb.SpaceStats):
        self.client = client
        self.id = stats.space
        self.page_table = stats.page_table
        self.bits = stats.bits

    async def mmap(self, length: int, prot: str | int = "rw", kind: str = "anon", name: str = "",
                   address: int | None = None, huge: bool = False, hugetlb: bool = False) -> int:
        r = await self.client._call("Mmap", _req(pb.MmapRequest, space=self.id, length=length, prot=prot_bits(prot),
                                                           kind=kind, name=name, fixed=address is not None,
                                                           address=address or 0, huge=huge, hugetlb=hugetlb))
        return r.address

    async def munmap(self, address: int, length: int) -> int:
        return (await self.client._call("Munmap", _req(pb.MunmapRequest, space=self.id, address=address,
                                                                   length=length))).pages_freed

    async def mprotect(self, address: int, length: int, prot: str | int) -> None:
        await self.client._call("Mprotect", _req(pb.MprotectRequest, space=self.id, address=address, length=length,
                                                               prot=prot_bits(prot)))

    async def load(self, address: int, length: int) -> bytes:
        req = _req(pb.LoadRequest, space=self.id, address=address, length=length)
        return (await self.client._call("Load", req)).data

    async def store(self, address: int, data: bytes) -> None:
        await self.client._call("Store", _req(pb.StoreRequest, space=self.id, address=address, data=bytes(data)))

    async def translate(self, address: int, write: bool = False) -> Translation:
        t = await self.client._call("Translate", _req(pb.TranslateRequest, space=self.id, address=address, write=write))
        return Translation(t.frame, t.levels, t.tlb_hit, t.fault, t.page_table, t.core)

    async def memory_usage(self) -> dict[str, int]:
        return usage_dict(await self.client._call("MemoryUsage", _req(pb.SpaceRequest, space=self.id)))

    async def memory_map(self) -> list[dict[str, Any]]:
        return map_list(await self.client._call("MemoryMap", _req(pb.SpaceRequest, space=self.id)))

    async def stats(self) -> pb.SpaceStats:
        return await self.client._call("SpaceStat", _req(pb.SpaceRequest, space=self.id))

    def batch(self) -> VmBatch:
        return VmBatch(self.client.execute, self.id)

    async def destroy(self) -> None:
        await self.client._call("DestroySpace", _req(pb.SpaceRequest, space=self.id))


class AsyncVMClient:
    def __init__(self, target: str = "127.0.0.1:50051", *, core: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT, lease: float = DEFAULT_LEASE):
        self.target = core_target(target, core)
        self.timeout = timeout
        self.lease = check_lease(lease)
        self.client_id = new_client_id()
        self._metadata = ((CLIENT_ID_KEY, self.client_id),)
        self._channel = grpc.aio.insecure_channel(self.target, options=channel_options())
        self._stub = vm_pb2_grpc.VMStub(self._channel)
        self._batches = AsyncStreamSession(self._stub.Batch, "VM batch")
        self._keepalive = AsyncKeepalive(self._renew, self.lease)

    async def close(self) -> None:
        """Close the connection, destroying the spaces this client made (but not those it kept)."""
        if self._closed:
            return
        self._closed = True
        await close_session_async(self._keepalive, self._batches,
                                  functools.partial(self._stub.Release, mpb.ReleaseRequest()), self.timeout,
                                  self._metadata, self._channel)

    _closed = False

    async def _renew(self) -> bool:
        reply = await self._stub.Renew(mpb.RenewRequest(), timeout=min(self.timeout, self.lease / 2),
                                       metadata=self._metadata)
        return reply.spaces > 0

    async def __aenter__(self) -> AsyncVMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: str, request: Any) -> Any:
        if self._closed:
            raise client_closed(self)
        try:
            return await getattr(self._stub, method)(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def create_space(self, page_table: str = "multilevel", bits: int = 0, levels: int = 0,
                           level_bits: int = 0, name: str = "", keep: bool = False) -> AsyncSpace:
        """A new space, destroyed when this client closes (or its lease runs out) unless keep=True."""
        req = _req(pb.CreateSpaceRequest, page_table=page_table, bits=bits, levels=levels, level_bits=level_bits,
                   name=name, keep=keep, lease_seconds=self.lease)
        if not keep:
            self._keepalive.start()
        st = await self._call("CreateSpace", req)
        return AsyncSpace(self, st)

    async def space(self, space_id: int) -> AsyncSpace:
        return AsyncSpace(self, await self._call("SpaceStat", _req(pb.SpaceRequest, space=space_id)))

    async def spaces(self, mine_only: bool = False) -> list[pb.SpaceStats]:
        return list((await self._call("ListSpaces", pb.ListSpacesRequest(mine=mine_only))).spaces)

    async def vmstat(self) -> dict[str, int]:
        r = await self._call("VmStat", pb.VmStatRequest())
        return {**dict(r.counters), "policy": r.policy}

    async def execute(self, batch: VmBatch) -> VmBatchResult:
        return batch.decode(await self._batches.roundtrip(batch.to_proto, self.timeout))
