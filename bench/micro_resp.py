"""The Redis-protocol layer in-process: CPU microseconds per command through RespConnection.data_received.

No socket and no event loop: a machine is made (as micro_cache.py makes one), one core's Commands and
a RespServer over it (never bound nor started), and one RespConnection whose transport only counts
what it is asked to write. Each read is `--pipeline` commands as redis-benchmark sends them
(`*3\\r\\n$3\\r\\nSET\\r\\n$16\\r\\nkey:000000001234\\r\\n$32\\r\\n...` for -d 32 -r KEYS), handed to
data_received whole, so the figure is parse + dispatch + the keyspace + reply encoding + counters;
`keyspace_us` (Commands.execute alone over the same commands) is reported beside it so the RESP
layer's own share is their difference. CPU time is time.process_time_ns, best of `--rounds`.
`--profile CMD` runs that command's reads under cProfile instead and prints the top functions.

    python bench/micro_resp.py [--ops 32000] [--keys 10000] [--value-bytes 32] [--pipelines 1,16]
                               [--rounds 5] [--out bench/results/micro_resp.json] [--profile set]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import threading
import time
from pathlib import Path

from micro_cache import MiB, emit, git_commit, profile, timed

from memsim.server.resp import RespConnection, RespServer
from memsim.sim.cache.commands import Commands
from memsim.sim.system import Machine, MachineConfig

TESTS = ("set", "get", "get_miss", "set_new")


class CountingTransport(asyncio.Transport):
    """What data_received writes to: the bytes are counted and dropped (as a client reading them all)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


def resp_command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def commands(test: str, keys: int, value: bytes, ops: int, fresh: int = 0) -> list[list[bytes]]:
    """redis-benchmark's commands for a test: key:%012d over -r keys, a -d byte value; `set_new`: SETs of
    `ops` keys no other test and no other `fresh` round uses (a cache's first fill: dbAdd and two mallocs)."""
    if test == "set_new":
        return [[b"SET", b"new:%d:%012d" % (fresh, i), value] for i in range(ops)]
    key = [b"key:%012d" % (i * 7919 % keys) for i in range(ops)]
    if test == "set":
        return [[b"SET", k, value] for k in key]
    if test == "get":
        return [[b"GET", k] for k in key]
    return [[b"GET", b"missing:" + k] for k in key]


def reads(cmds: list[list[bytes]], pipeline: int) -> list[bytes]:
    """The commands in reads of `pipeline` commands each, as one client's socket delivers them."""
    return [b"".join(resp_command(*c) for c in cmds[i:i + pipeline]) for i in range(0, len(cmds), pipeline)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=32_000)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--value-bytes", type=int, default=32)
    p.add_argument("--pipelines", default="1,16")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--profile", choices=TESTS, default=None)
    a = p.parse_args()
    depths = [int(x) for x in a.pipelines.split(",")]

    fills = 2 * a.rounds * (1 + len(a.pipelines.split(",")))  # set_new's rounds: keyspace, then each depth
    m = Machine.create(MachineConfig(memory_bytes=64 * MiB + fills * a.ops * 4 * (64 + a.value_bytes), cores=2,
                                     max_keys=4 * a.keys + fills * a.ops))
    try:
        heap = m.heap(0)
        cmds = Commands(m.keyspace(heap))
        value = b"x" * a.value_bytes
        for c in commands("set", a.keys, value, a.keys):  # every key exists: SETs overwrite, GETs hit
            cmds.execute(c)
        srv = RespServer(cmds, core=0, core_lock=threading.Lock(), host="127.0.0.1", port=0)
        conn = RespConnection(srv)
        transport = conn.transport = CountingTransport()
        conn.session = srv.open(conn, "bench", "bench")
        loads = {t: commands(t, a.keys, value, a.ops) for t in TESTS}
        fresh = iter(range(1, fills + 1))
        if a.profile:
            profile(conn.data_received, reads(loads[a.profile], max(depths)))
            return
        best: dict[str, float] = {}
        for _ in range(a.rounds):
            for t, batch in loads.items():
                if t == "set_new":
                    batch = commands(t, a.keys, value, a.ops, next(fresh))
                best[f"{t}_keyspace"] = min(best.get(f"{t}_keyspace", 1e9), timed(cmds.execute, batch))
                for d in depths:
                    if t == "set_new":
                        batch = commands(t, a.keys, value, a.ops, next(fresh))
                    rs = reads(batch, d)
                    t0 = time.process_time_ns()
                    for b in rs:
                        conn.data_received(b)
                    us = (time.process_time_ns() - t0) / 1e3 / len(batch)
                    best[f"{t}_P{d}"] = min(best.get(f"{t}_P{d}", 1e9), us)
        assert transport.written > 0 and not conn.session.closing
        heap.release_caches()
    finally:
        m.destroy()
    per = {k: round(v, 3) for k, v in sorted(best.items())}
    resp_layer = {f"{t}_P{d}": round(best[f"{t}_P{d}"] - best[f"{t}_keyspace"], 3) for t in TESTS for d in depths}
    result = {"bench": "micro_resp", "commit": git_commit(), "python": platform.python_version(),
              "ops": a.ops, "keys": a.keys, "value_bytes": a.value_bytes, "rounds": a.rounds,
              "cpu_us_per_command": per, "resp_layer_us_per_command": resp_layer}
    emit(result, a.out)


if __name__ == "__main__":
    sys.exit(main())
