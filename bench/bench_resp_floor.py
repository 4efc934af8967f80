"""The floor of a Python RESP server on this host: redis-benchmark against a bare uvloop answerer and Redis.

What memsim's RESP port cannot beat without leaving Python: `--cores` processes (as memsim's cores,
sharing one SO_REUSEPORT port) each run a uvloop protocol that answers every command of a read with
"+OK" in one write, without parsing, locking or storing anything; the same redis-benchmark runs
(bench_resp_vs_redis.py's command: -c, -n, -d, -r, SET and GET, each pipeline depth) against it and
against a private redis-server (bench/redis_peer.py, stopped by its PID). Commands are counted by
their "*" headers, which is right for redis-benchmark's reads (keys "key:<digits>", values of "x")
and for nothing else. Reports both, their ratio, as JSON.

    python bench/bench_resp_floor.py [--cores 2] [--requests 50000] [--pipelines 1,16] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from typing import Any

from bench_resp_vs_redis import TESTS, benchmark_command, run_benchmark
from redis_peer import RedisServer, ensure_redis_server, ensure_redis_tools

from memsim.server.listeners import listen
from memsim.server.resp import new_loop
from memsim.server.supervisor import pick_port
from memsim.tools.harness import write_json

OK = b"+OK\r\n"


class Answerer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(OK * data.count(b"*"))  # type: ignore[attr-defined]


def serve(port: int) -> None:
    """One process's loop on the shared port, until SIGTERM."""
    loop = new_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(loop.create_server(Answerer, sock=listen("127.0.0.1", port, reuse_port=True)))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cores", type=int, default=2, help="answering processes (default 2)")
    p.add_argument("--requests", type=int, default=50_000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--pipelines", default="1,16")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--out", default="results/resp_floor.json")
    a = p.parse_args(argv)
    _cli, bench = ensure_redis_tools(quiet=False)
    ensure_redis_server(quiet=False)
    port = pick_port("127.0.0.1", 1)
    pids = []
    for _ in range(a.cores):
        pid = os.fork()
        if pid == 0:
            try:
                serve(port)
            finally:
                os._exit(0)
        pids.append(pid)
    runs: list[dict[str, Any]] = []
    try:
        time.sleep(1.0)
        with RedisServer() as redis:
            assert redis.port is not None
            for depth in (int(x) for x in a.pipelines.split(",")):
                row: dict[str, Any] = {"pipeline": depth}
                for name, at in (("redis", redis.port), ("uvloop_floor", port)):
                    row[name] = run_benchmark(benchmark_command(bench, at, a, depth), a.timeout)
                row["ratio_floor_to_redis"] = {t: round(row["uvloop_floor"][t] / row["redis"][t], 3) for t in TESTS}
                print(f"-P {depth}: floor / Redis = " +
                      ", ".join(f"{t} {row['ratio_floor_to_redis'][t]:.2f}x" for t in TESTS), file=sys.stderr)
                runs.append(row)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        for pid in pids:
            os.waitpid(pid, 0)
    write_json(a.out, {"benchmark": "redis-benchmark against Redis and a bare uvloop answerer", "cores": a.cores,
                       "cpus": os.cpu_count(), "load_average_1m_at_end": round(os.getloadavg()[0], 2),
                       "requests": a.requests, "clients": a.clients, "runs": runs})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
