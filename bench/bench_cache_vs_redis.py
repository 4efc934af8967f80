"""memsim's cache against a real Redis, in one run on the same machine, as ratios memsim / Redis.

Starts Debian's redis-server on loopback (installing the package if it is missing, see
redis_peer.py) and a memsim server, and drives both with the same client processes and the
same code (memsim.tools.cachebench: memsim's `Cache` and redis-py's `Redis` have one API).

1. Single operations: SET, then GET, one command per round trip, `--procs` processes.
2. Pipelined/batched: the same with pipelines of 100 (redis-py pipeline(transaction=False),
   memsim's pipeline on its stream).
3. Bytes per key: used_memory after minus before 100,000 SETs of b"key:%06d" -> 8 random
   bytes. Redis's figure includes its hash table's growth (it resizes with the key count);
   memsim's bucket array is allocated at start for max-keys and not in used_memory, so its
   share per key at this size is reported beside it.
4. Hit ratios on redis-cli --lru-test's 80/20 workload (100,000 keys, cycles of 250 SETs and
   250 GETs, one process), with maxmemory set so that 22 % of the keys fit (few enough that the
   policy decides the hit ratio):
   calibrated on each server by running the workload and scaling maxmemory until it holds
   22,000 keys (the two count bytes differently, and Redis also counts its own startup
   memory and client buffers, so equal bytes would not compare the policies),
   paced at the same request rate for every run (the LRU clock ticks once a second, so the
   rate changes sampled LRU's hit ratio; see cachebench.py): Redis allkeys-lru and
   allkeys-lfu; memsim allkeys-lru and allkeys-lfu, and allkeys-lru with Redis's maxmemory in
   bytes (what the same setting buys); memsim's exact-lru, SIEVE and S3-FIFO. Then a
   Zipf(1.0) workload (90 % GETs, a GET miss is filled, 10 % of the keys fit) with Redis's
   allkeys-lru and memsim's allkeys-lru, SIEVE and S3-FIFO. Every hit-ratio run warms up
   (fills the cache) before its measured window.

    python bench/bench_cache_vs_redis.py [--seconds 5] [--out bench/results/cache_vs_redis.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_peer import RedisServer, ensure_redis_py, ensure_redis_server, redis_version

from memsim.client.cache import Cache
from memsim.tools.cachebench import run_cache_load
from memsim.tools.harness import write_json
from memsim.tools.loads import CacheLoad
from memsim.tools.local import LocalServer

KEYS = 100_000
FIT = 0.22  # share of the keys that fit: small enough that what the policy keeps decides the hit ratio
ZIPF_FIT = 0.10  # Zipf(1.0) touches few distinct keys; at 22 % the cache would barely evict


def preload(client, n: int, value_size: int = 8) -> None:
    for start in range(0, n, 1000):
        p = client.pipeline(transaction=False)
        for i in range(start, min(n, start + 1000)):
            p.set(b"key:%d" % i, os.urandom(value_size))
        p.execute()


def bytes_per_key(client) -> float:
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    for start in range(0, KEYS, 1000):
        p = client.pipeline(transaction=False)
        for i in range(start, start + 1000):
            p.set(b"key:%06d" % i, os.urandom(8))
        p.execute()
    after = int(client.info("memory")["used_memory"])
    assert int(client.dbsize()) == KEYS
    client.flushall()
    return (after - before) / KEYS


def throughput(kind: str, target: str, seconds: float, procs: int, pin: bool) -> dict:
    out = {}
    for pipeline in (1, 100):
        for op, ratio in (("set", 0.0), ("get", 1.0)):
            load = CacheLoad(target=target, kind=kind, processes=procs, seconds=seconds, warmup=1.0,
                             workload="uniform", keys=KEYS, read_ratio=ratio, value_size="32", pipeline=pipeline,
                             fill_on_miss=False, flush=False, pin=pin, progress=False)
            r = run_cache_load(load)
            out[f"{op}_pipeline{pipeline}"] = {"ops_per_s": r["ops_per_s"], "latency_us": r["latency_us"],
                                               "errors": r["errors"], "hit_ratio": r["hit_ratio"]}
            print(f"  {kind:6s} {op} pipeline {pipeline:3d}: {r['ops_per_s']:>10,.0f} ops/s", flush=True)
    return out


def hit_run(kind: str, target: str, workload: str, config: dict, seconds: float, warmup: float, rate: float) -> dict:
    if workload == "hotset":
        load = CacheLoad(target=target, kind=kind, processes=1, seconds=seconds, warmup=warmup, workload="hotset",
                         keys=KEYS, value_size="8", pipeline=250, config=config, rate=rate, progress=False)
    else:
        load = CacheLoad(target=target, kind=kind, processes=1, seconds=seconds, warmup=warmup, workload="zipf",
                         alpha=1.0, keys=KEYS, read_ratio=0.9, value_size="8", pipeline=100, config=config,
                         rate=rate, progress=False)
    r = run_cache_load(load)
    return {"hit_ratio": r["hit_ratio"], "server_hit_ratio": r["server"]["hit_ratio"], "ops": r["ops"],
            "ops_per_s": r["ops_per_s"], "evicted_keys": r["server"]["evicted_keys"], "errors": r["errors"],
            "config": config}


def keys_held(client) -> int:
    return int(client.dbsize())


def calibrate(kind: str, target: str, client, workload: str, want: int, guess: int, floor: int) -> int:
    """maxmemory at which this server holds `want` keys of this workload (floor: its fixed memory)."""
    m = guess
    for _ in range(6):
        hit_run(kind, target, workload, {"maxmemory-policy": "allkeys-lru", "maxmemory": str(m)}, 1.0, 8.0, 0.0)
        held = keys_held(client)
        if abs(held - want) <= want // 500:
            break
        m = floor + int((m - floor) * want / max(1, held))
    client.config_set("maxmemory", 0)
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per throughput figure")
    ap.add_argument("--hit-seconds", type=float, default=20.0, help="measured seconds per hit-ratio run")
    ap.add_argument("--rate", type=float, default=20_000, help="request rate of the hit-ratio runs (ops/s)")
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds of load before each hit-ratio window")
    ap.add_argument("--procs", type=int, default=2, help="client processes for the throughput figures")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cache_vs_redis.json"))
    args = ap.parse_args()

    ensure_redis_server(quiet=False)
    ensure_redis_py()
    result: dict = {"host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "redis": redis_version()}, "args": vars(args)}
    t_start = time.time()
    with RedisServer() as rs, LocalServer(cores=2, memory="256MiB", extra=["--max-keys", "262144"]) as ms:
        rc = rs.client()
        mc = Cache(ms.target, timeout=60)
        print("bytes per key (100k keys, 8-byte values)", flush=True)
        bpk = {"redis": bytes_per_key(rc), "memsim": bytes_per_key(mc)}
        buckets = 1 << max(4, (262144 - 1).bit_length())
        bpk["memsim_bucket_array_per_key"] = buckets * 4 / KEYS
        bpk["ratio"] = bpk["memsim"] / bpk["redis"]
        result["bytes_per_key"] = bpk
        print(f"  redis {bpk['redis']:.1f} B, memsim {bpk['memsim']:.1f} B: ratio {bpk['ratio']:.3f}", flush=True)

        print("throughput", flush=True)
        preload(rc, KEYS, 32)
        preload(mc, KEYS, 32)
        tp = {"redis": throughput("redis", f"127.0.0.1:{rs.port}", args.seconds, args.procs, pin=False),
              "memsim": throughput("memsim", ms.target, args.seconds, args.procs, pin=True)}
        tp["ratios"] = {k: tp["memsim"][k]["ops_per_s"] / tp["redis"][k]["ops_per_s"] for k in tp["redis"]}
        result["throughput"] = tp

        print("hit ratios", flush=True)
        rc.flushall()
        mc.flushall()
        startup_r = int(rc.info("memory")["used_memory"])  # an empty Redis's own memory counts toward maxmemory
        fit, zfit = int(KEYS * FIT), int(KEYS * ZIPF_FIT)
        rtarget = f"127.0.0.1:{rs.port}"
        max_r = calibrate("redis", rtarget, rc, "hotset", fit, startup_r + int(fit * bpk["redis"]), startup_r)
        max_m = calibrate("memsim", ms.target, mc, "hotset", fit, int(fit * bpk["memsim"]), 0)
        zmax_r = calibrate("redis", rtarget, rc, "zipf", zfit, startup_r + int(zfit * bpk["redis"]), startup_r)
        zmax_m = calibrate("memsim", ms.target, mc, "zipf", zfit, int(zfit * bpk["memsim"]), 0)
        result["maxmemory"] = {"redis_startup": startup_r, "hotset": {"redis": max_r, "memsim": max_m},
                               "zipf": {"redis": zmax_r, "memsim": zmax_m}}
        warm = args.warmup
        runs: dict[str, dict] = {}
        plan = [
            ("hotset", "redis", "allkeys-lru", max_r), ("hotset", "redis", "allkeys-lfu", max_r),
            ("hotset", "memsim", "allkeys-lru", max_m), ("hotset", "memsim", "allkeys-lfu", max_m),
            ("hotset", "memsim", "exact-lru", max_m), ("hotset", "memsim", "sieve", max_m),
            ("hotset", "memsim", "s3fifo", max_m), ("hotset", "memsim", "allkeys-lru@redis-bytes", max_r),
            ("zipf", "redis", "allkeys-lru", zmax_r), ("zipf", "memsim", "allkeys-lru", zmax_m),
            ("zipf", "memsim", "sieve", zmax_m), ("zipf", "memsim", "s3fifo", zmax_m),
        ]
        for workload, kind, policy, maxmemory in plan:
            name = f"{workload} {kind} {policy}"
            cfg = {"maxmemory-policy": policy.split("@")[0], "maxmemory": str(maxmemory)}
            target = rtarget if kind == "redis" else ms.target
            r = hit_run(kind, target, workload, cfg, args.hit_seconds, warm, args.rate)
            r["keys_held"] = keys_held(rc if kind == "redis" else mc)
            runs[name] = r
            print(f"  {name:40s} hit {r['hit_ratio']:.4f}  keys held {r['keys_held']:,}  "
                  f"{r['ops_per_s']:,.0f} ops/s", flush=True)
            (rc if kind == "redis" else mc).config_set("maxmemory", 0)
        result["hit_ratio"] = runs
        h = {k: v["hit_ratio"] for k, v in runs.items()}
        result["hit_ratio_summary"] = {
            "memsim_lru_minus_redis_lru_points": 100 * (h["hotset memsim allkeys-lru"] - h["hotset redis allkeys-lru"]),
            "memsim_lfu_minus_redis_lfu_points": 100 * (h["hotset memsim allkeys-lfu"] - h["hotset redis allkeys-lfu"]),
            "hotset_sieve_minus_lru_points": 100 * (h["hotset memsim sieve"] - h["hotset memsim allkeys-lru"]),
            "hotset_s3fifo_minus_lru_points": 100 * (h["hotset memsim s3fifo"] - h["hotset memsim allkeys-lru"]),
            "zipf_sieve_minus_lru_points": 100 * (h["zipf memsim sieve"] - h["zipf memsim allkeys-lru"]),
            "zipf_s3fifo_minus_lru_points": 100 * (h["zipf memsim s3fifo"] - h["zipf memsim allkeys-lru"]),
        }
        mc.close()
        rc.close()
    result["elapsed_s"] = round(time.time() - t_start, 1)
    write_json(args.out, result)
    print(json.dumps({"bytes_per_key_ratio": result["bytes_per_key"]["ratio"],
                      "throughput_ratios": result["throughput"]["ratios"],
                      "hit_ratio_summary": result["hit_ratio_summary"]}, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
