"""Run a memsim server as a child process (for the demo, the tests and the benchmarks).

The server is started as `python -m memsim.tools serve --port 0 --resp-port 0 ...` (or, started
again after a stop, on the ports it had: a restarted server for clients that know its address) in
its own process (never forked from a process that has gRPC loaded), and is known to be up once it
prints its "serving on" line, which carries the ports it chose (gRPC's, and the Redis protocol's)
and its worker PIDs. Stopping
sends SIGTERM to that PID only and waits; the supervisor stops its own workers and unlinks
its segments.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

READY = re.compile(r"serving on (\S+):(\d+) .* segments (\S+) pids ([\d ]+)")
RESP = re.compile(r" resp on \S+:(\d+) ")


@dataclass
class LocalServer:
    cores: int | None = None  # None: `memsim serve`'s default (MachineConfig's)
    memory: str | None = None  # as --memory takes it, e.g. "64MiB"
    frame_size: int | None = None
    no_caches: bool = False
    global_lock: bool = False
    extra: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    resp: bool = True  # serve the Redis protocol, on free ports (`resp_port` once started)
    resp_port: int | None = None
    proc: subprocess.Popen | None = None
    worker_pids: list[int] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)  # its /dev/shm names, as it reported them
    output: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The supervisor's PID, once started."""
        if self.proc is None:
            raise RuntimeError("this LocalServer is not started")
        return self.proc.pid

    def command(self) -> list[str]:
        # port 0 the first time (the server picks one); the same port again when started after a stop
        cmd = [sys.executable, "-m", "memsim.tools", "serve", "--port", str(self.port), "--host", self.host]
        for flag, value in (("--cores", self.cores), ("--memory", self.memory), ("--frame-size", self.frame_size)):
            if value is not None:
                cmd += [flag, str(value)]
        if self.no_caches:
            cmd.append("--no-caches")
        if self.global_lock:
            cmd.append("--global-lock")
        cmd += ["--resp-port", "0"] if self.resp else ["--no-resp"]
        if not any(flag in self.extra for flag in ("--metrics-port", "--no-metrics")):
            # a free port, also when started again on its gRPC port (a fixed --port would otherwise
            # mean /metrics on 9121, which another server may hold)
            cmd += ["--metrics-port", "0"]
        return cmd + self.extra

    def start(self, timeout: float = 60.0) -> LocalServer:
        if self.proc is not None and self.proc.poll() is None:
            # a second start would orphan the running server (and its shared memory) behind a new one
            raise RuntimeError(f"this LocalServer is running already (pid {self.proc.pid}): stop() it first")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     bufsize=1)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise RuntimeError("memsim server exited before it was ready:\n" + "".join(self.output))
                continue
            self.output.append(line)
            m = READY.search(line)
            if m:
                self.port = int(m.group(2))
                r = RESP.search(line)
                self.resp_port = int(r.group(1)) if r else None
                self.segments = m.group(3).split(",")
                self.worker_pids = [int(p) for p in m.group(4).split()]
                threading.Thread(target=self._pump, daemon=True).start()
                return self
        self.stop()
        raise RuntimeError("memsim server did not become ready in time:\n" + "".join(self.output))

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            m = re.search(r"restarted as pid (\d+)", line)
            if m:
                self.worker_pids.append(int(m.group(1)))

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the supervisor and wait. Returns its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def alive_workers(self) -> list[int]:
        alive = []
        for pid in self.worker_pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split()[2] != "Z":
                        alive.append(pid)
            except OSError:
                continue
        return alive

    def segments_left(self) -> list[str]:
        return [n for n in self.segments if os.path.exists(f"/dev/shm/{n}")]

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
