"""`memsim bench cache`: a cache load from many client processes, memtier/redis-benchmark style.

Every process runs the same loop against a client with redis-py's API, so the very same code
drives memsim's `Cache` and a real `redis.Redis` (bench/bench_cache_vs_redis.py does both in
one run). Workloads (key choice per operation):

- `uniform`: any of `keys` keys, equally likely;
- `zipf`: Zipf(alpha) over `keys` keys (rank 1 the hottest), as memtier's --key-pattern Z;
- `hotset`: exactly redis-cli --lru-test: cycles of 250 SETs then 250 GETs, keys drawn by
  redis-cli's powerLawRand(1, keys, 6.2), the 80/20 rule; read_ratio does not apply;
- `scan`: Zipf(alpha) over the hot keys, with `scan_fraction` of operations instead walking
  a sequential sweep over 10x as many cold keys, each touched once per sweep (the
  one-hit-wonder pattern that LRU lets flush its cache and that S3-FIFO filters);
- `loop`: keys 0, 1, ..., keys-1, 0, 1, ... (LRU's worst case once keys exceed the cache).

Except for hotset, an operation is a GET with probability read_ratio, else a SET; a GET
that misses is followed by a SET of that key (cache-aside, `fill_on_miss`), so the hit ratio
is what a cache in front of a database would see. Values are random bytes, of a fixed size
or uniform in a range.

Measurement (tools/harness.py): processes are started with `spawn` (gRPC does not survive fork), warm up for
`warmup` seconds, meet at a barrier while the parent reads the server's INFO, run for
`seconds`, meet again for the second INFO reading. Throughput, the client-side hit ratio
and the server's hits/misses/evictions all cover exactly that window. Latency is per round
trip (one command, or one pipeline of `pipeline` commands), into an HdrHistogram per
process, merged by the parent.

`rate` paces the load (each process sends its share on a fixed schedule). It matters for hit
ratios, not only for latency: Redis's LRU clock, and memsim's, tick once a second, so at tens
of thousands of evictions a second every key touched in the same second looks equally idle
and sampled LRU drifts towards random eviction. Two caches compared on hit ratio must see
the same request rate.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from memsim.client import Cache
from memsim.sim.cache.lrutest import power_law_rand  # redis-cli's powerLawRand, shared with the trace model
from memsim.tools import harness
from memsim.tools.harness import Lane
from memsim.tools.loads import CacheLoad, parse_sizes

LRU_TEST_ALPHA = 6.2  # redis-cli's --lru-test
LRU_TEST_CYCLE = 250


class KeyChooser:
    """The workload's key sequence for one process (seeded, so runs repeat)."""

    def __init__(self, load: CacheLoad, index: int):
        self.load = load
        self.rng = random.Random(load.seed * 1000 + index)
        self.np = np.random.default_rng(load.seed * 1000 + index)
        self.pos = index * 7919  # loop/scan sweeps start at different places per process
        self.buf: list[int] = []
        if load.workload in ("zipf", "scan"):
            w = np.arange(1, load.keys + 1, dtype=np.float64) ** -float(load.alpha)
            self.cdf = np.cumsum(w) / w.sum()

    def _zipf(self) -> int:
        if not self.buf:
            self.buf = np.minimum(np.searchsorted(self.cdf, self.np.random(4096), side="right"),
                                  self.load.keys - 1).tolist()
        return self.buf.pop()

    def next(self) -> int:
        w = self.load.workload
        if w == "uniform":
            return self.rng.randrange(self.load.keys)
        if w == "zipf":
            return self._zipf()
        if w == "hotset":
            return power_law_rand(self.rng, 1, self.load.keys, LRU_TEST_ALPHA)
        if w == "loop":
            self.pos += 1
            return self.pos % self.load.keys
        if self.rng.random() < self.load.scan_fraction:  # scan: a cold key of the sweep
            self.pos += 1
            return self.load.keys + self.pos % (10 * self.load.keys)
        return self._zipf()


class PipelineLike(Protocol):
    def get(self, name: bytes) -> object: ...
    def set(self, name: bytes, value: bytes) -> object: ...
    def execute(self, raise_on_error: bool = ...) -> list[Any]: ...


class RedisLike(Protocol):
    """What the load asks of a client; memsim's Cache and redis-py's Redis both have it.
    Replies are Any: a Redis reply is a string, an integer, nil, an array or a map."""

    def get(self, name: bytes) -> Any: ...
    def set(self, name: bytes, value: bytes) -> Any: ...
    def pipeline(self, transaction: bool = ...) -> PipelineLike: ...
    def info(self, section: str | None = ...) -> Any: ...
    def dbsize(self) -> Any: ...
    def config_get(self, pattern: str = ...) -> Any: ...
    def config_set(self, name: str, value: Any) -> Any: ...
    def flushall(self) -> Any: ...
    def close(self) -> None: ...


def make_client(load: CacheLoad, index: int, cores: int) -> RedisLike:
    if load.kind == "redis":
        import redis  # the peer, in the [bench] extra

        host, _, port = load.target.rpartition(":")
        return redis.Redis(host=host, port=int(port))
    return Cache(load.target, core=(index % cores) if load.pin else None, timeout=60)


@dataclass
class Tally:
    ops: int = 0
    gets: int = 0
    hits: int = 0
    sets: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.ops += other.ops
        self.gets += other.gets
        self.hits += other.hits
        self.sets += other.sets
        self.errors += other.errors
        self.error_samples += other.error_samples


@dataclass
class ProcResult:
    tally: Tally
    histogram: bytes  # HdrHistogram encoding
    elapsed: float


class _Runner:
    """One process's loop: choose keys, send commands (one by one or pipelined), count."""

    def __init__(self, load: CacheLoad, lane: Lane, client: RedisLike):
        self.load = load
        self.lane = lane
        self.client = client
        self.keys = KeyChooser(load, lane.index)
        self.rng = random.Random(load.seed * 7 + lane.index)
        self.lo, self.hi = parse_sizes(load.value_size)
        self.payload = os.urandom(max(self.hi, 1) * 2)
        self.tally = Tally()
        self.pending_fills: list[bytes] = []
        self.cycle_pos = 0

    def value(self) -> bytes:
        n = self.lo if self.lo == self.hi else self.rng.randint(self.lo, self.hi)
        off = self.rng.randrange(len(self.payload) - n + 1)
        return self.payload[off:off + n]

    def plan(self, n: int) -> list[tuple[bool, bytes]]:
        """n (is_get, key) operations, misses of the last round's GETs filled first."""
        ops: list[tuple[bool, bytes]] = [(False, k) for k in self.pending_fills[:n]]
        self.pending_fills = self.pending_fills[n:]
        hotset = self.load.workload == "hotset"
        while len(ops) < n:
            if hotset:  # redis-cli --lru-test: 250 SETs, then 250 GETs
                is_get = self.cycle_pos >= LRU_TEST_CYCLE
                self.cycle_pos = (self.cycle_pos + 1) % (2 * LRU_TEST_CYCLE)
            else:
                is_get = self.rng.random() < self.load.read_ratio
            ops.append((is_get, b"key:%d" % self.keys.next()))
        return ops

    def step(self, count: bool) -> None:
        ops = self.plan(self.load.pipeline)
        t0 = time.perf_counter()
        try:
            if self.load.pipeline == 1:
                is_get, key = ops[0]
                results = [self.client.get(key) if is_get else self.client.set(key, self.value())]
            else:
                p = self.client.pipeline(transaction=False)
                for is_get, key in ops:
                    if is_get:
                        p.get(key)
                    else:
                        p.set(key, self.value())
                results = p.execute(raise_on_error=False)
        except Exception as e:  # noqa: BLE001 - a load generator counts failures and goes on
            self._error(e, len(ops), count)
            return
        took = time.perf_counter() - t0
        fill = self.load.fill_on_miss and self.load.workload != "hotset"
        t = self.tally
        for (is_get, key), r in zip(ops, results, strict=True):
            if isinstance(r, Exception):
                self._error(r, 1, count)
                continue
            if is_get and r is None and fill:
                self.pending_fills.append(key)
            if count:
                if is_get:
                    t.gets += 1
                    t.hits += r is not None
                else:
                    t.sets += 1
        if count:
            t.ops += len(ops)
            self.lane.record(took)

    def _error(self, e: BaseException, n: int, count: bool) -> None:
        if count:
            self.tally.errors += n
        if len(self.tally.error_samples) < 5:
            self.tally.error_samples.append(f"{type(e).__name__}: {e}"[:300])


def _worker(lane: Lane, load: CacheLoad, cores: int) -> ProcResult:
    client = make_client(load, lane.index, cores)
    runner = _Runner(load, lane, client)
    try:
        per_step = load.pipeline * load.processes / load.rate if load.rate else 0.0
        end = time.monotonic() + load.warmup
        due = time.monotonic()
        while time.monotonic() < end:
            runner.step(count=False)
            due = _pace(due, per_step)
        lane.meet()  # the parent reads INFO
        t0 = time.monotonic()
        end = t0 + load.seconds
        due = t0
        while time.monotonic() < end:
            runner.step(count=True)
            due = _pace(due, per_step)
            lane.count(runner.tally.ops)
        elapsed = time.monotonic() - t0
        lane.meet()  # the parent reads INFO again
        return ProcResult(runner.tally, lane.hist.encode(), elapsed)
    finally:
        client.close()


def _pace(due: float, per_step: float) -> float:
    """Sleep until the next step's scheduled time (no catching up in bursts after a stall)."""
    if not per_step:
        return due
    due += per_step
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
        return due
    return max(due, now - per_step)


INFO_FIELDS = ("keyspace_hits", "keyspace_misses", "evicted_keys", "expired_keys", "total_commands_processed",
               "used_memory", "rejected_calls")


@dataclass
class ServerInfo:
    """The INFO figures a report differences, read before and after the window."""

    counters: dict[str, int]  # INFO_FIELDS, plus dbsize and used_memory_peak
    evictions_by_policy: dict[str, int]
    config: dict[str, str]


def _server_info(load: CacheLoad) -> ServerInfo:
    c = make_client(load, 0, 1)
    try:
        info = c.info("all") if load.kind == "memsim" else c.info()
        counters = {k: int(info.get(k, 0)) for k in INFO_FIELDS}
        counters["dbsize"] = int(c.dbsize())
        counters["used_memory_peak"] = int(info.get("used_memory_peak", 0))
        evictions = {k.removeprefix("evicted_keys_"): int(v) for k, v in info.items()
                     if k.startswith("evicted_keys_") and int(v)}
        cfg = c.config_get("maxmemory*")
        return ServerInfo(counters, evictions, {_text(k): _text(v) for k, v in cfg.items()})
    finally:
        c.close()


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _prepare(load: CacheLoad) -> tuple[int, dict[str, str]]:
    """FLUSHALL and CONFIG SET before the run. Returns the number of cores (memsim) or 1, and
    the values the CONFIG SETs replaced, for `_restore` after the run."""
    c = make_client(load, 0, 1)
    saved: dict[str, str] = {}
    try:
        for name, value in load.config.items():
            old = c.config_get(name)
            c.config_set(name, value)
            saved.update({_text(k): _text(v) for k, v in old.items()})
        if load.flush:
            c.flushall()
        if load.kind == "memsim":
            return int(c.info("server")["cores"]), saved
        return 1, saved
    except BaseException:
        _restore(load, saved, c)
        raise
    finally:
        c.close()


def _restore(load: CacheLoad, saved: dict[str, str], client: RedisLike | None = None) -> None:
    """Give the server back the configuration the run changed (FLUSHALL's keys cannot be)."""
    if not saved:
        return
    c = client or make_client(load, 0, 1)
    try:
        for name, value in saved.items():
            c.config_set(name, value)
    finally:
        if client is None:
            c.close()


def run_cache_load(load: CacheLoad) -> dict[str, Any]:
    """Run the load; the server's configuration is restored afterwards, even after a failure."""
    load.validate()
    cores, saved = _prepare(load)
    try:
        w = harness.run(_worker, [(load, cores)] * load.processes, lambda: _server_info(load), seconds=load.seconds,
                        timeout=load.warmup + load.seconds + 120, label=f"[bold]{load.kind} {load.workload}",
                        progress=load.progress)
        report = summarize(load, w.results, w.before, w.after)
    finally:
        _restore(load, saved)
    report["restored"] = saved
    return report


def summarize(load: CacheLoad, got: list[ProcResult], before: ServerInfo, after: ServerInfo) -> dict[str, Any]:
    hist = harness.merge(r.histogram for r in got)
    t = Tally()
    for r in got:
        t.add(r.tally)
    elapsed = max(r.elapsed for r in got)
    server: dict[str, Any] = {k: after.counters[k] - before.counters[k] for k in INFO_FIELDS if k != "used_memory"}
    sh, sm = server["keyspace_hits"], server["keyspace_misses"]
    samples = list(dict.fromkeys(t.error_samples))  # distinct messages
    return {
        "load": asdict(load),
        "ops": t.ops, "elapsed_s": round(elapsed, 3), "ops_per_s": round(t.ops / elapsed, 1),
        "rate": {"requested": load.rate, "achieved": round(t.ops / elapsed, 1)} if load.rate else None,
        "gets": t.gets, "sets": t.sets, "hit_ratio": round(t.hits / t.gets, 4) if t.gets else None,
        "errors": t.errors, "error_samples": samples[:5],
        "latency_us": {**harness.latency(hist),
                       "per": "command" if load.pipeline == 1 else f"pipeline of {load.pipeline}"},
        "server": {**server, "hit_ratio": round(sh / (sh + sm), 4) if sh + sm else None,
                   "used_memory": after.counters["used_memory"],
                   "used_memory_peak": after.counters["used_memory_peak"],
                   "dbsize": after.counters["dbsize"], "config": after.config,
                   "evictions_by_policy": {k: v - before.evictions_by_policy.get(k, 0)
                                           for k, v in after.evictions_by_policy.items()
                                           if v - before.evictions_by_policy.get(k, 0)}},
    }


def print_report(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    ld = r["load"]
    reads = "250 SETs + 250 GETs a cycle" if ld["workload"] == "hotset" else f"read ratio {ld['read_ratio']}"
    cfg = r["server"].get("config", {})
    title = (f"{ld['kind']} {ld['workload']}: {ld['processes']} processes, {ld['keys']:,} keys, "
             f"pipeline {ld['pipeline']}, {reads}, values {ld['value_size']} B\n"
             f"maxmemory {cfg.get('maxmemory', '?')}, policy {cfg.get('maxmemory-policy', '?')}")
    t = Table(title=title, show_header=True)
    t.add_column("figure")
    t.add_column("value", justify="right")
    lat = r["latency_us"]
    s = r["server"]
    rows = [("ops/s", f"{r['ops_per_s']:,.0f}"), ("ops", f"{r['ops']:,}"),
            (f"latency p50 / p99 / p99.9 (µs per {lat['per']})", f"{lat['p50']:,} / {lat['p99']:,} / {lat['p99.9']:,}"),
            ("hit ratio (client GETs)", "-" if r["hit_ratio"] is None else f"{r['hit_ratio']:.4f}"),
            ("hit ratio (server keyspace_hits)", "-" if s["hit_ratio"] is None else f"{s['hit_ratio']:.4f}"),
            ("evicted keys", f"{s['evicted_keys']:,}"), ("expired keys", f"{s['expired_keys']:,}"),
            ("used_memory at the end", f"{s['used_memory']:,}"), ("errors", f"{r['errors']:,}")]
    rate = r.get("rate")
    if rate:
        short = rate["achieved"] < 0.95 * rate["requested"]
        rows.insert(1, ("rate achieved / requested (ops/s)", f"{rate['achieved']:,.0f} / {rate['requested']:,.0f}"
                        + (" (short)" if short else "")))
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)
    if rate and rate["achieved"] < 0.95 * rate["requested"]:
        print(f"  the requested rate was not reached: achieved {rate['achieved']:,.0f} ops/s of "
              f"{rate['requested']:,.0f} (the server or these {ld['processes']} client processes are the limit); "
              f"compare hit ratios only at rates both caches reached")
    if r.get("restored"):
        print("  restored after the run: " + ", ".join(f"{k} {v}" for k, v in r["restored"].items()))
    for e in r["error_samples"]:
        print(f"  error: {e}")


def announce(load: CacheLoad) -> list[str]:
    """What the run will do to the server beyond its load, said before it does it."""
    said = []
    if load.flush:
        said.append(f"FLUSHALL on {load.target} first: its keys are deleted (--no-flush keeps them)")
    if load.config:
        said.append(", ".join(f"{k} {v}" for k, v in load.config.items())
                    + " for the run; the previous values are restored after it")
    return said


def run_cache_bench(load: CacheLoad, json_path: str | None = None, quiet: bool = False) -> int:
    for line in announce(load):
        print(f"memsim bench cache: {line}", file=sys.stderr)
    r = run_cache_load(load)
    harness.emit(r, json_path, quiet, print_report)
    return 0 if r["ops"] else 1
