"""A worker: one simulated core, serving memsim.v1.Machine (the allocator), Cache, VM and V8 over gRPC.

The supervisor forks this process before anything gRPC exists (gRPC does not survive a
fork) and imports this module only then, in the child (supervisor.py): this module and the
servicers it imports are the first to import grpc.

Every service goes on the wire through `wire.register` (request decoding, errors, stream
limits) and reads its limits from `limits.py`.

A core runs one operation at a time. gRPC-Python's sync server hands calls to a thread
pool, so every call that touches the heap takes the core's own mutex (`core_lock`), a
plain in-process lock. That is the simulated CPU, not a shared lock: it is never contended
across cores and it is what lets this core's mcache and tiny block go without any lock, as
Go's P does. A batch takes it once for all its operations.

Every worker listens on the shared port (SO_REUSEPORT, which balances connections, not
calls) and on port + 1 + core, so that a client can pin itself to this core; and, unless the
server was started with --no-resp, likewise on the Redis protocol's ports (resp.py).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from concurrent import futures
from importlib.metadata import version

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from memsim.server.cache_servicer import CacheCron, CacheServicer
from memsim.server.gc_helper import GcHelper
from memsim.server.limits import (
    CONTROL_THREADS,
    MAX_CALLS_PER_CONNECTION,
    MAX_MESSAGE,
    MAX_REPLY_BYTES,
    MAX_STREAMS,
    MAXCLIENTS,
    STREAM_IDLE_S,
    UNARY_THREADS,
    PendingReplies,
)
from memsim.server.resp import RespServer
from memsim.server.servicer import MachineServicer
from memsim.server.sessions import LeaseReaper
from memsim.server.v8_servicer import V8Servicer
from memsim.server.vm_servicer import Khugepaged, VmServicer
from memsim.server.wire import StreamGate, register
from memsim.sim.alloc.memstats import MemStats, read_memstats
from memsim.sim.cache.commands import Commands
from memsim.sim.cache.expire import HZ
from memsim.sim.cache.info import ServerFacts, info_text
from memsim.sim.cache.keyspace import Keyspace
from memsim.sim.system import Machine
from memsim.v1 import cache_pb2, cache_pb2_grpc, machine_pb2, machine_pb2_grpc, v8_pb2, v8_pb2_grpc, vm_pb2, vm_pb2_grpc

MAX_THREADS = MAX_STREAMS + UNARY_THREADS


def run_worker(machine: Machine, core: int, host: str, port: int, ready_fd: int, supervisor: int,
               stream_idle_s: float = STREAM_IDLE_S, trace_gc: bool = False, resp_port: int | None = None,
               maxclients: int = MAXCLIENTS, resp_sockets: list[socket.socket] | None = None) -> int:
    heap = machine.heap(core)
    replies = PendingReplies(core)  # one account for the core's three services
    servicer = MachineServicer(machine, heap, core, port, replies=replies)
    ks = machine.keyspace(heap)
    # INFO's tcp_port is the port a Redis client reaches the server on: the Redis protocol's shared port if
    # served (the gRPC port otherwise, and as memsim_grpc_port)
    cmds = cache_commands(machine, ks, core, port, maxclients=maxclients if resp_port is not None else 0,
                          tcp_port=resp_port)
    cache = CacheServicer(cmds, core, servicer.core_lock, replies=replies)
    cron = CacheCron(ks, machine.config.cores, servicer.core_lock)
    # A connection may have MAX_CALLS_PER_CONNECTION calls open at once (HTTP/2's
    # SETTINGS_MAX_CONCURRENT_STREAMS, RFC 9113 6.5.2): gRPC clients queue past it, and a client
    # that ignores it loses the connection, instead of making the core keep every call it opens.
    options = [("grpc.so_reuseport", 1), ("grpc.max_concurrent_streams", MAX_CALLS_PER_CONNECTION),
               ("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
    # gRPC-Python's sync server holds a pool thread per call in progress *and per open stream*.
    # The gate lets streams take MAX_STREAMS threads at most, so UNARY_THREADS remain for unary
    # calls; health checks and lease renewals run on a control pool of their own, which calls
    # waiting for a busy core cannot fill. No maximum_concurrent_rpcs: it counts every call alike,
    # so idle streams would make it refuse health checks too.
    gate = StreamGate(core, idle_s=stream_idle_s)
    control = futures.ThreadPoolExecutor(max_workers=CONTROL_THREADS, thread_name_prefix=f"core{core}-control")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix=f"core{core}"),
                         options=options)
    register(server, machine_pb2_grpc.add_MachineServicer_to_server, servicer, core, gate, control)
    register(server, cache_pb2_grpc.add_CacheServicer_to_server, cache, core, gate, control)
    khugepaged = None
    gc_helper: GcHelper | None = None
    leased: list = [servicer]  # what clients hold on leases; on every core: any core may release any of it
    served = [machine_pb2.DESCRIPTOR.services_by_name["Machine"].full_name,
              cache_pb2.DESCRIPTOR.services_by_name["Cache"].full_name]
    if machine.pool_frames:  # a machine started with --vm-memory
        vm = machine.vm(core)
        vm_servicer = VmServicer(vm, core, servicer.core_lock, replies=replies)
        register(server, vm_pb2_grpc.add_VMServicer_to_server, vm_servicer, core, gate, control)
        leased.append(vm_servicer)
        served.append(vm_pb2.DESCRIPTOR.services_by_name["VM"].full_name)
        if machine.config.v8_isolates:  # the managed heap: isolates live in VM address spaces
            v8_servicer = V8Servicer(machine.v8(core, heap), core, servicer.core_lock, replies=replies,
                                     trace_gc=trace_gc)
            register(server, v8_pb2_grpc.add_V8Servicer_to_server, v8_servicer, core, gate, control)
            gc_helper = GcHelper(v8_servicer.v8, core, servicer.core_lock, machine.doorbells)  # parallel GC jobs
            leased.append(v8_servicer)
            served.append(v8_pb2.DESCRIPTOR.services_by_name["V8"].full_name)
        if core == 0 and machine.config.thp != "never":  # one khugepaged for the machine, on core 0
            khugepaged = Khugepaged(vm, servicer.core_lock, machine.config.khugepaged_ms / 1000)
    health_servicer = health.HealthServicer()
    register(server, health_pb2_grpc.add_HealthServicer_to_server, health_servicer, core, gate, control)
    names = (*served, health.SERVICE_NAME, reflection.SERVICE_NAME)
    register(server, reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
             reflection.ReflectionServicer(names), core, gate, control)
    for p in (port, port + 1 + core):
        if server.add_insecure_port(f"{host}:{p}") == 0:
            print(f"memsim: core {core} could not listen on {host}:{p}", file=sys.stderr)
            return 3
    resp = None
    if resp_port is not None:  # the Redis protocol on the same command table, keyspace and mutex (resp.py)
        resp = RespServer(cmds, core, servicer.core_lock, host, resp_port, maxclients)
        try:
            resp.bind(resp_sockets)
        except OSError as e:
            print(f"memsim: core {core} could not listen on {host}:{resp_port} or :{resp_port + 1 + core} for "
                  f"the Redis protocol: {e.strerror or e}", file=sys.stderr)
            return 3
    server.start()
    if resp is not None:
        resp.start()
    gate.start()
    cron.start()
    if khugepaged is not None:
        khugepaged.start()
    if gc_helper is not None:
        gc_helper.start()
    reaper = LeaseReaper(core, leased)
    reaper.start()
    for svc in ("", *served):
        health_servicer.set(svc, health_pb2.HealthCheckResponse.SERVING)

    stop = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    os.write(ready_fd, f"{core}\n".encode())
    os.close(ready_fd)
    while not stop.wait(0.5):
        if os.getppid() != supervisor:
            # Orphaned (only where PR_SET_PDEATHSIG is missing): the machine is gone with its
            # supervisor, so there is nothing to hand back, and a call in progress may hold the
            # core's mutex for ever. Leave at once.
            os._exit(1)
    for svc in ("", *served):
        health_servicer.set(svc, health_pb2.HealthCheckResponse.NOT_SERVING)
    if resp is not None:
        resp.stop()
    server.stop(grace=1.0).wait(3)
    gate.stop()
    cron.stop()
    if khugepaged is not None:
        khugepaged.stop()
    if gc_helper is not None:
        gc_helper.stop()
    reaper.stop()
    with servicer.core_lock:
        ks.release()
        heap.release_caches()  # give this core's cached objects back, as Go does when a P goes away
    return 0


def cache_commands(machine: Machine, ks: Keyspace, core: int, port: int, maxclients: int = 0,
                   tcp_port: int | None = None) -> Commands:
    """The core's command interpreter, with INFO's view of the machine."""

    def memstats() -> MemStats:
        return read_memstats(machine.arrays, metadata_bytes=machine.meta.size)

    facts = ServerFacts(version=version("memsim"), core=core, cores=machine.config.cores,
                        port=port if tcp_port is None else tcp_port, grpc_port=port,
                        started=time.time(), hz=HZ, heap_inuse=lambda: memstats().HeapInuse,
                        heap_alloc=lambda: memstats().HeapAlloc, locks=ks.heap.locks.snapshot, maxclients=maxclients)
    return Commands(ks, info=lambda sections: info_text(ks, facts, sections), keys_reply_bytes=MAX_REPLY_BYTES)
