"""The supervisor: owns the machine, forks one worker per core, restarts the dead, cleans up.

Order matters, and this module exists to keep it:
1. create every shared segment and the lock file (`Machine.create`);
2. compile the managed heap's collector kernels (sim/v8/jit.py), so no core compiles on its first
   GC, then fork the workers *before this process imports grpc* (gRPC does not survive fork;
   nothing in this module or its imports touches grpc);
3. serve /metrics (server/exporter.py: started after the first forks; a later fork waits for
   any scrape in progress), run the scavenger and wait for children; a worker that dies
   unexpectedly is recovered (its locks were released by the kernel; `recovery.recover` takes back what it held and
   rebuilds what it may have torn) and forked again on the same core;
4. on SIGINT/SIGTERM or a normal exit, SIGTERM the workers, wait, SIGKILL stragglers, and
   unlink every segment. Only PIDs this process forked are ever signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass

from memsim.server.exporter import DEFAULT_METRICS_PORT, MetricsExporter
from memsim.server.limits import MAXCLIENTS, STREAM_IDLE_S, mib
from memsim.server.listeners import core_sockets, reserve
from memsim.server.metrics import MachineCollector
from memsim.sim.alloc.heap import Heap
from memsim.sim.alloc.pagealloc import warm as warm_page_index
from memsim.sim.alloc.recovery import recover
from memsim.sim.alloc.scavenger import Scavenger
from memsim.sim.cache.batch import warm as warm_cache_kernels
from memsim.sim.cache.keyspace import Keyspace
from memsim.sim.system import Machine, MachineConfig
from memsim.sim.v8.warmup import warm as warm_collectors
from memsim.sim.vm.recovery import recover as recover_vm

STOP_TIMEOUT = 5.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 50051  # 0 = pick free ports
    pin: bool = True  # pin worker c to the c-th CPU (mod their number) this process may use
    scavenge_period: float = 1.0
    scavenge_idle: float = 5.0
    start_timeout: float = 30.0  # seconds a core has to import gRPC, bind and say it is ready
    stream_idle_s: float = STREAM_IDLE_S  # end a stream with no request for this long (limits.py)
    trace_gc: bool = False  # each core prints the --trace-gc line of every GC it runs (server/v8_servicer.py)
    metrics: bool = True  # serve /metrics (server/exporter.py)
    metrics_port: int | None = None  # None: DEFAULT_METRICS_PORT, or a free one with port 0; 0: a free one
    # The Redis protocol's shared port (server/resp.py), core c also on resp_port+1+c; 0 = pick free
    # ports; None = none. Redis's own port by default, so that redis-cli and redis-benchmark find it.
    resp_port: int | None = 6379
    maxclients: int = MAXCLIENTS  # Redis's maxclients over the machine's Redis-protocol connections (resp.py)


def ports_free(host: str, base: int, n: int) -> bool:
    """Whether base .. base+n-1 can be listened on, as the workers will listen.

    The probe sets SO_REUSEADDR as gRPC's own listeners do: without it, a connection the last
    server closed first (an open stream at stop) keeps the port in TIME_WAIT for a minute and
    the probe refuses a port that nothing listens on (Linux still refuses a port that a live
    socket is listening on, SO_REUSEADDR or not; see socket(7)).
    """
    for p in range(base, base + n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, p))
        except OSError:
            return False
        finally:
            s.close()
    return True


def pick_port(host: str, n: int) -> int:
    """A base port such that base .. base+n-1 are all free right now."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((host, 0))
        base = s.getsockname()[1]
        s.close()
        if base + n < 65536 and ports_free(host, base, n):
            return base
    raise RuntimeError("could not find free ports")


class Supervisor:
    def __init__(self, config: MachineConfig, opts: ServeOptions):
        self.config = config
        self.opts = opts
        self.machine: Machine | None = None
        self._keyspace: Keyspace | None = None  # the supervisor's view, made at the first recovery
        self.workers: dict[int, int] = {}  # pid -> core
        self.resp_sockets: dict[int, list[socket.socket]] = {}  # core -> its RESP listeners (listeners.py)
        self.grpc_reserved: list[socket.socket] = []  # the gRPC ports, held while a core is dead (listeners.py)
        self.restarts = 0
        self._stopping = False
        self._pending: dict[int, tuple[int, float]] = {}  # core -> (failed attempts, next try)
        self.exporter: MetricsExporter | None = None
        # Core c is pinned to the c-th CPU this process may run on (not CPU c: a container's
        # cpuset may not include it, and sched_setaffinity would refuse).
        pin = opts.pin and hasattr(os, "sched_getaffinity")
        self._cpus: list[int] = sorted(os.sched_getaffinity(0)) if pin else []

    def _fork_worker(self, core: int) -> int:
        r, w = os.pipe()
        parent = os.getpid()
        with self.exporter.paused if self.exporter else contextlib.nullcontext():  # never mid-scrape
            pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(r)
                if self.exporter is not None:
                    self.exporter.close_in_child()
                for sock in self.grpc_reserved:  # the supervisor's: the worker binds its own
                    sock.close()
                for c, socks in self.resp_sockets.items():  # only its own core's listeners stay in a worker
                    if c != core:
                        for sock in socks:
                            sock.close()
                for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                die_with_parent(parent)
                if self._cpus:
                    os.sched_setaffinity(0, {self._cpus[core % len(self._cpus)]})
                from memsim.server.worker import run_worker

                assert self.machine is not None
                code = run_worker(self.machine, core, self.opts.host, self.opts.port, w, parent,
                                  stream_idle_s=self.opts.stream_idle_s, trace_gc=self.opts.trace_gc,
                                  resp_port=self.opts.resp_port, maxclients=self.opts.maxclients,
                                  resp_sockets=self.resp_sockets.get(core))
            except BaseException as e:  # noqa: BLE001 - a worker must never return into our stack
                print(f"memsim: core {core} failed: {e!r}", file=sys.stderr)
            finally:
                os._exit(code)
        os.close(w)
        self.workers[pid] = core
        try:
            self._await_ready(r, core)
        except RuntimeError:
            self._kill(pid)  # never leave a half-started core behind to be forked twice
            raise
        return pid

    def _kill(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.workers.pop(pid, None)

    def _await_ready(self, fd: int, core: int) -> None:
        deadline = time.monotonic() + self.opts.start_timeout
        buf = b""
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"core {core} did not start within {self.opts.start_timeout:g} s")
                ready, _, _ = select.select([fd], [], [], left)
                if ready:
                    chunk = os.read(fd, 64)
                    if not chunk:
                        raise RuntimeError(f"core {core} exited before it was ready")
                    buf += chunk
        finally:
            os.close(fd)

    def serve(self) -> int:
        """Run until SIGINT/SIGTERM. Returns the exit code."""
        metrics_port = self.opts.metrics_port
        if metrics_port is None:  # before --port 0 is resolved: a server on free ports takes a free one
            metrics_port = 0 if self.opts.port == 0 else DEFAULT_METRICS_PORT
        if self.opts.port == 0:
            self.opts.port = pick_port(self.opts.host, self.config.cores + 1)
        elif not ports_free(self.opts.host, self.opts.port, self.config.cores + 1):
            print(f"memsim: ports {self.opts.port}..{self.opts.port + self.config.cores} are not all free "
                  f"(another server listens there?); choose another --port, or --port 0 to pick free ones",
                  file=sys.stderr)
            return 2
        if self.opts.metrics and metrics_port and not ports_free(self.opts.host, metrics_port, 1):
            print(f"memsim: the metrics port {metrics_port} is not free; choose another --metrics-port, "
                  f"0 to pick a free one, or --no-metrics", file=sys.stderr)
            return 2
        if not self._reserve_grpc_ports() or not self._resp_listen():
            self._close_grpc_reservations()
            return 2
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        machine = self.machine = Machine.create(self.config)
        warm_page_index()  # the page heap's summaries (sim/alloc/pagealloc.py), compiled before the forks
        warm_cache_kernels()  # the same for the Redis protocol's compiled GET/SET (sim/cache/batch.py)
        if self.config.vm_memory:
            warm_collectors()  # compiled (or loaded from numba's cache) once, here, and inherited by every core
        scavenger: Scavenger | None = None
        started = False
        try:
            try:
                for core in range(self.config.cores):
                    self._fork_worker(core)
            except (OSError, RuntimeError) as e:
                print(f"memsim: {e}; {self._start_advice()}", file=sys.stderr)
                return 1
            started = True
            sup_heap = machine.supervisor_heap()
            scavenger = Scavenger(sup_heap, self.opts.scavenge_period, self.opts.scavenge_idle)
            scavenger.start()
            if self.opts.metrics:
                collector = MachineCollector(machine, sup_heap, self._sup_keyspace(machine, sup_heap))
                self.exporter = MetricsExporter(collector, self.opts.host, metrics_port)
                print(f"memsim: metrics on {self.exporter.url}", flush=True)
            c = self.config
            print(f"memsim: serving on {self.opts.host}:{self.opts.port} "
                  f"(cores {c.cores} on ports {self.opts.port + 1}..{self.opts.port + c.cores}, "
                  f"{memory_shares(c)}, "
                  f"per-core caches {'on' if c.per_core_caches else 'off'}, "
                  f"locks {'one global' if c.global_lock else 'per class'}) "
                  f"{self._resp_banner()}"
                  f"segments {','.join(machine.segment_names)} "
                  f"pids {' '.join(str(p) for p in self.workers)}", flush=True)
            while not self._stopping:
                self._reap(machine, sup_heap, scavenger)
                time.sleep(0.05)
        finally:
            if self.exporter is not None:
                self.exporter.stop()
            if scavenger is not None:
                scavenger.stop()
            self._stop_workers()
            self._close_resp_sockets()
            self._close_grpc_reservations()
            machine.destroy()
            if started:
                print("memsim: stopped; shared memory unlinked", flush=True)
        return 0

    def _reserve_grpc_ports(self) -> bool:
        """Hold the gRPC ports for the server's life (listeners.reserve): a core's own port stays taken
        while the core is dead, so its successor can bind it; False, having said why, if one is taken."""
        o = self.opts
        try:
            for p in range(o.port, o.port + self.config.cores + 1):
                self.grpc_reserved.append(reserve(o.host, p))
        except OSError as e:
            print(f"memsim: port {o.port + len(self.grpc_reserved)} was taken before it could be reserved "
                  f"({e.strerror or e}); choose another --port, or --port 0", file=sys.stderr)
            return False
        return True

    def _close_grpc_reservations(self) -> None:
        for sock in self.grpc_reserved:
            sock.close()
        self.grpc_reserved.clear()

    def _resp_listen(self) -> bool:
        """Choose (port 0) the Redis protocol's ports, apart from the gRPC ones, then bind every core's sockets
        here, before any fork, and keep them (server/listeners.py: a core forked again serves on the same
        ones); False, having said why, if one is taken."""
        o, n = self.opts, self.config.cores + 1
        if o.resp_port is None:
            return True
        if o.resp_port == 0:
            grpc_ports = range(o.port, o.port + n)
            while True:  # free, and apart from the gRPC ports (not yet bound, so also seen as free)
                base = pick_port(o.host, n)
                if base + n <= o.port or base > grpc_ports[-1]:
                    break
            o.resp_port = base
        try:
            for core in range(self.config.cores):
                self.resp_sockets[core] = core_sockets(o.host, o.resp_port, core)
        except OSError as e:
            self._close_resp_sockets()
            print(f"memsim: Redis-protocol ports {o.resp_port}..{o.resp_port + n - 1} are not all free (a redis-server "
                  f"or another memsim listens there? {e.strerror or e}); choose another --resp-port, --resp-port 0 "
                  f"to pick free ones, or --no-resp", file=sys.stderr)
            return False
        return True

    def _close_resp_sockets(self) -> None:
        for socks in self.resp_sockets.values():
            for sock in socks:
                sock.close()
        self.resp_sockets.clear()

    def _resp_banner(self) -> str:
        """The Redis protocol's ports in the "serving on" line (tools/local.py reads them)."""
        p = self.opts.resp_port
        if p is None:
            return "resp off "
        return f"resp on {self.opts.host}:{p} (cores on ports {p + 1}..{p + self.config.cores}) "

    def _start_advice(self) -> str:
        """The way out when a core fails to start, usually a busy host."""
        pinned = (f"each worker is pinned to one CPU ({', '.join(map(str, self._cpus))}): try --no-pin to let the "
                  f"kernel place them, " if self._cpus else "")
        return (f"the server did not start and left nothing behind; {pinned}give more --start-timeout than "
                f"{self.opts.start_timeout:g} s, or fewer --cores")

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _sup_keyspace(self, machine: Machine, sup_heap: Heap) -> Keyspace:
        if self._keyspace is None:
            self._keyspace = machine.keyspace(sup_heap)
        return self._keyspace

    def _reap(self, machine: Machine, sup_heap: Heap, scavenger: Scavenger) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            core = self.workers.pop(pid, None)
            if core is None or self._stopping:
                continue
            why = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"
            with scavenger.paused:
                report = recover(sup_heap, core)
                report["keyspace_stripes"] = self._sup_keyspace(machine, sup_heap).recover()
                if machine.pool_frames:  # and virtual memory: a fault or reclaim may have been cut short
                    report.update(recover_vm(machine.supervisor_vm(), core))
            self.restarts += 1
            print(f"memsim: core {core} (pid {pid}) died ({why}); recovered {report}; restarting", flush=True)
            self._pending[core] = (0, time.monotonic())
        self._restart_pending(scavenger)

    def _restart_pending(self, scavenger: Scavenger) -> None:
        """Fork the cores waiting for a restart; a core that fails to start is retried with backoff."""
        now = time.monotonic()
        for core, (attempts, when) in list(self._pending.items()):
            if when > now:
                continue
            try:
                with scavenger.paused:
                    newpid = self._fork_worker(core)
            except (OSError, RuntimeError) as e:
                delay = min(30.0, 0.5 * 2 ** attempts)
                print(f"memsim: core {core} failed to restart ({e}); retrying in {delay:.1f} s", flush=True)
                self._pending[core] = (attempts + 1, now + delay)
                continue
            del self._pending[core]
            print(f"memsim: core {core} restarted as pid {newpid}", flush=True)

    def _stop_workers(self) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                self.workers.pop(pid, None)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.workers and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.workers.pop(pid, None)
            else:
                time.sleep(0.05)
        for pid in list(self.workers):
            self._kill(pid)


def memory_shares(c: MachineConfig) -> str:
    """Who gets which part of physical memory, in the words the README and `memsim stats` use."""
    pool = f"VM pool {mib(c.vm_memory)} ({c.vm_memory // c.frame_size} frames of {c.frame_size} B)"
    if c.heap_in_vm:
        return (f"physical memory {mib(c.memory_bytes)}, of which the {pool} pages address spaces and the "
                f"heap's {mib(c.heap_bytes)} virtual arena for the allocator and the cache")
    return (f"physical memory {mib(c.memory_bytes)} = heap {mib(c.heap_bytes)} for the allocator and the cache "
            f"+ {pool} for address spaces")


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process the moment the supervisor dies (PR_SET_PDEATHSIG).

    A supervisor killed with SIGKILL cannot stop its workers; without this they would go on
    serving a machine nobody will clean up. The signal is SIGKILL, not SIGTERM, because a
    worker may be busy: a call blocked on a lock, or a long C loop that holds the GIL, never
    lets a Python SIGTERM handler run, and a graceful stop would wait for the core's mutex that
    call holds. With the supervisor gone there is nothing a graceful stop could save: the
    machine dies with it. The workers' exit closes the last copies of the resource tracker's
    pipe, and the tracker (multiprocessing.resource_tracker, started by the supervisor's first
    segment) then unlinks both segments. See prctl(2): the signal is sent when the thread that
    forked us exits, which is the supervisor's main thread (it forks every worker).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the worker's own parent check still stops it within a second
    if os.getppid() != parent:  # the supervisor died before the prctl took effect: prctl(2)'s race
        os._exit(1)


def serve(config: MachineConfig, opts: ServeOptions) -> int:
    return Supervisor(config, opts).serve()
