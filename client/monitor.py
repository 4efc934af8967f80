"""A capture from a live server: Cache.Monitor (the cache's commands, a record per key) or VM.Monitor
(one space's page accesses) on every core at once, merged by time.

Owns: `Capture`, which asks the machine its core count (Machine.GetInfo), opens one Monitor stream
per core on that core's own port (connection.core_target: each core records what it serves), waits
until every core has said it records (the stream's first, empty message), and collects until the
streams end after `seconds`; `Records`, the merged columns. Touches: the protos, grpc and numpy;
never the server or the simulator.
Invariants: the result is sorted by the server's CLOCK_MONOTONIC stamps (one clock for all its
cores), stably, so one core's records keep their order; `lost` says per core how many records the
server dropped because this reader fell behind its buffer (`limit`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import grpc
import numpy as np
import numpy.typing as npt

from memsim.client.connection import DEFAULT_TIMEOUT, channel_options, core_target
from memsim.client.errors import DeadlineExceeded, MemsimError, from_rpc_error
from memsim.v1 import cache_pb2_grpc, machine_pb2_grpc, vm_pb2_grpc
from memsim.v1 import machine_pb2 as mpb

__all__ = ["Capture", "Records"]

Service = Literal["cache", "vm"]
# the generated stubs are untyped (connection.py), hence Any
_STUBS: dict[str, Callable[[grpc.Channel], Any]] = {"cache": cache_pb2_grpc.CacheStub, "vm": vm_pb2_grpc.VMStub}


@dataclass
class Records:
    """Records of every core, merged by time: column i of each array is one record."""

    time_ns: npt.NDArray[np.int64]
    key: npt.NDArray[np.int64]
    size: npt.NDArray[np.int64]
    op: npt.NDArray[np.int8]
    per_core: dict[int, int] = field(default_factory=dict)  # records each core sent
    lost: dict[int, int] = field(default_factory=dict)  # records each core lost (this reader fell behind)

    def __len__(self) -> int:
        return len(self.key)


class _CoreStream:
    def __init__(self, core: int) -> None:
        self.core = core
        self.parts: list[tuple[list[int], list[int], list[int], list[int]]] = []
        self.lost = 0
        self.ready = threading.Event()
        self.error: MemsimError | None = None
        self.call: Any = None  # the generated stub's response iterator (grpc's _MultiThreadedRendezvous)


class Capture:
    """`with Capture(target, "cache", seconds=5) as cap: ...load...; records = cap.result()`."""

    def __init__(self, target: str, service: Service, *, seconds: float, space: int = 0, limit: int = 0,
                 cores: int | None = None, timeout: float = DEFAULT_TIMEOUT):
        if service not in _STUBS:
            raise ValueError(f"a capture is of 'cache' or 'vm', not {service!r}")
        self.target, self.service, self.seconds, self.space, self.limit = target, service, seconds, space, limit
        self.timeout = timeout
        self.cores = cores
        self._channels: list[grpc.Channel] = []
        self._streams: list[_CoreStream] = []
        self._threads: list[threading.Thread] = []

    def _core_count(self) -> int:
        with grpc.insecure_channel(self.target, options=channel_options()) as ch:
            try:
                info = machine_pb2_grpc.MachineStub(ch).GetInfo(mpb.InfoRequest(), timeout=self.timeout)
            except grpc.RpcError as e:
                raise from_rpc_error(e) from None
        return int(info.cores)

    def start(self) -> Self:
        """Open every core's stream; return once all of them record."""
        n = self.cores if self.cores is not None else self._core_count()
        req = mpb.MonitorRequest(seconds=self.seconds, limit=self.limit, space=self.space)
        for core in range(n):
            ch = grpc.insecure_channel(core_target(self.target, core), options=channel_options())
            self._channels.append(ch)
            s = _CoreStream(core)
            s.call = _STUBS[self.service](ch).Monitor(req, timeout=self.seconds + self.timeout)
            t = threading.Thread(target=self._read, args=(s,), name=f"monitor-core{core}", daemon=True)
            self._streams.append(s)
            self._threads.append(t)
            t.start()
        for s in self._streams:
            if not s.ready.wait(self.timeout):
                self.close()
                raise DeadlineExceeded(f"core {s.core} did not start its monitor within {self.timeout:g} s")
            if s.error is not None:
                self.close()
                raise s.error
        return self

    @staticmethod
    def _read(s: _CoreStream) -> None:
        try:
            first = True
            for batch in s.call:
                if first:
                    first = False
                    s.ready.set()
                if batch.time_ns:
                    s.parts.append((list(batch.time_ns), list(batch.key), list(batch.size), list(batch.op)))
                s.lost += batch.lost
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                s.error = from_rpc_error(e)
        finally:
            s.ready.set()

    def result(self) -> Records:
        """Wait for every stream to end (after `seconds`) and merge the cores' records by time."""
        for t in self._threads:
            t.join(self.seconds + self.timeout)
        for s in self._streams:
            if s.error is not None:
                raise s.error
        cols = [np.concatenate([np.asarray(p[i], np.int64) for s in self._streams for p in s.parts] or
                               [np.zeros(0, np.int64)]) for i in range(4)]
        order = np.argsort(cols[0], kind="stable")
        return Records(time_ns=cols[0][order], key=cols[1][order], size=cols[2][order],
                       op=cols[3][order].astype(np.int8),
                       per_core={s.core: sum(len(p[0]) for p in s.parts) for s in self._streams},
                       lost={s.core: s.lost for s in self._streams})

    def close(self) -> None:
        for s in self._streams:
            if s.call is not None:
                s.call.cancel()
        for ch in self._channels:
            ch.close()
        self._channels = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
