"""The cache's command path in-process: CPU microseconds per SET, GET and INCR through Commands.execute.

No server and no wire: a machine is made here (as the tests' `machine` fixture makes one), one
core's Keyspace and Commands over it, and each command is run `--ops` times over `--keys`
distinct keys (a first pass of SETs creates them, untimed, so the timed SETs overwrite keys of
the same value length, a cache's common case). CPU time is process time (time.process_time_ns),
so a busy host's other processes do not count; the best of `--rounds` rounds is reported.
`--profile CMD` runs that command's loop under cProfile instead and prints its top functions.

    python bench/micro_cache.py [--ops 20000] [--keys 10000] [--value-bytes 32] [--rounds 3]
                                [--out bench/results/micro_cache.json] [--profile set]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from memsim.sim.cache.commands import Commands
from memsim.sim.system import Machine, MachineConfig

MiB = 1 << 20


def workloads(keys: list[bytes], value: bytes, ops: int) -> dict[str, list[list[bytes]]]:
    """Each measured command's argument lists, built before timing."""
    n = len(keys)
    return {
        "set": [[b"SET", keys[i % n], value] for i in range(ops)],
        "get": [[b"GET", keys[i % n]] for i in range(ops)],
        "get_miss": [[b"GET", b"missing:" + keys[i % n]] for i in range(ops)],
        "incr": [[b"INCR", b"counter:%d" % (i % n)] for i in range(ops)],
    }


T = TypeVar("T")


def timed(run: Callable[[list[bytes]], object], batch: list[list[bytes]]) -> float:
    """CPU microseconds per command of one pass over batch."""
    t0 = time.process_time_ns()
    for args in batch:
        run(args)
    return (time.process_time_ns() - t0) / 1e3 / len(batch)


def profile(run: Callable[[T], object], items: list[T]) -> None:
    """cProfile over one pass of run(item), the 25 costliest functions by own time printed."""
    prof = cProfile.Profile()
    prof.enable()
    for item in items:
        run(item)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def emit(result: dict[str, object], out: Path | None) -> None:
    """Print the result's JSON, and write it to `out` if given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=20_000)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--value-bytes", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--profile", choices=["set", "get", "get_miss", "incr"], default=None)
    args = p.parse_args()

    m = Machine.create(MachineConfig(memory_bytes=64 * MiB, cores=2, max_keys=4 * args.keys))
    try:
        heap = m.heap(0)
        cmds = Commands(m.keyspace(heap))
        keys = [b"key:%08d" % i for i in range(args.keys)]
        value = b"v" * args.value_bytes
        loads = workloads(keys, value, args.ops)
        for k in keys:  # the keys exist before timing: timed SETs overwrite, timed GETs hit
            cmds.execute([b"SET", k, value])
        if args.profile:
            profile(cmds.execute, loads[args.profile])
            return
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, batch in loads.items():
                us = timed(cmds.execute, batch)
                best[name] = min(best.get(name, us), us)
        heap.release_caches()
    finally:
        m.destroy()
    result = {"bench": "micro_cache", "commit": git_commit(), "python": platform.python_version(),
              "ops": args.ops, "keys": args.keys, "value_bytes": args.value_bytes, "rounds": args.rounds,
              "cpu_us_per_op": {k: round(v, 3) for k, v in best.items()}}
    emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
