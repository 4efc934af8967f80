"""`memsim experiment eviction`: hit ratio against memory for Redis's sampled policies, memsim's
exact ones and Belady's OPT, on the live cache; and Redis's own eviction-order test.

Two parts, each policy on a server of its own (one core), all servers at once:

1. Hit ratio against maxmemory, for two workloads, each the same key sequence for every policy:
   - `lru-test`: redis-cli --lru-test (src/redis-cli.c, LRUTestMode): cycles of 250 SETs then 250
     GETs, pipelined, keys drawn by powerLawRand(1, keys, 6.2), the 80/20 rule (sim/cache/lrutest.py);
     the hit ratio is the GETs'; a GET that misses stores nothing;
   - `zipf`: cache-aside GETs of Zipf(alpha) keys (sim/policies/simulate.py's zipf_trace); a miss is
     filled with a SET, sent right after the pipeline that missed.
   Policies: allkeys-random; allkeys-lru with maxmemory-samples 3, 5 and 10; allkeys-lfu; and the
   exact ones of `sim/policies` by their maxmemory-policy names (sim/cache/config.py): exact-lru,
   sieve, s3fifo. OPT is computed offline on the same sequence with the same capacity in keys:
   sim/policies/simulate.py's `belady` for Zipf, Belady with bypass for the lru-test
   (`opt_hit_ratio` says why). Every key and value
   is the same size, so maxmemory holds a whole number of keys (measured on each server).
   Hit ratios count from the first request, cold cache included, for OPT as for the live cache.

2. Redis's eviction-order test, the figure of Redis's "Key eviction" page
   (https://redis.io/docs/latest/develop/reference/eviction/, "Approximated LRU algorithm"):
   fill the cache with `order-keys` keys, read them first to last, add half as many again, and see
   which of the old keys were evicted. Exact LRU evicts exactly the older half; random eviction
   takes from both halves alike; sampled LRU lies between, closer to exact as samples grow.

Clock. Redis's LRU clock, and memsim's, ticks once a second (evict.py's LRU_CLOCK_RESOLUTION_MS):
keys touched within one second look equally idle to sampled LRU. Redis turns its cache over in
tens of seconds; a load that turns it over within a second makes sampled LRU random. So every
policy's requests are paced at the same rate, spreading each run over `--seconds-per-size`
seconds, and the order test's read pass over `--order-seconds`. This, not CPU, sets the run time.

May touch: only the servers it starts (one per policy, stopped at the end).
"""

from __future__ import annotations

import argparse
import heapq
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memsim.tools.experiments.base import JSON, Check, Context, Experiment, Figure
from memsim.tools.flags import SECONDS, real, whole

if TYPE_CHECKING:  # the parser imports this module and must load no gRPC (tests/tools/test_cli_layout.py)
    from multiprocessing.queues import Queue

    from matplotlib.axes import Axes

    from memsim.client import Cache

    Reports = Queue[tuple[str, str, Any]]  # (what, lane, its figures): "order", "size", "end" or "error"

# (label, maxmemory-policy, maxmemory-samples): the lanes, one server each
POLICIES: tuple[tuple[str, str, int], ...] = (
    ("random", "allkeys-random", 5),
    ("LRU, 3 samples", "allkeys-lru", 3),
    ("LRU, 5 samples", "allkeys-lru", 5),
    ("LRU, 10 samples", "allkeys-lru", 10),
    ("exact LRU", "exact-lru", 5),
    ("LFU", "allkeys-lfu", 5),
    ("SIEVE", "sieve", 5),
    ("S3-FIFO", "s3fifo", 5),
)
QUICK_POLICIES = POLICIES[:5]  # what the checks compare
ORDER_TEST = {"random", "LRU, 3 samples", "LRU, 5 samples", "LRU, 10 samples", "exact LRU"}
WORKLOADS = ("lru-test", "zipf")
OPT = "OPT (offline)"
VALUE = b"vvvvv"  # redis-cli's lru-test values are 5 random letters: only the size matters here
LRU_TEST_CYCLE = 250  # SETs, then as many GETs (redis-cli's LRU_CYCLE_PIPELINE_SIZE)
ZIPF_PIPELINE = 25
STYLE = {"random": ("tab:gray", "--"), "LRU, 3 samples": ("#9ecae1", "-"), "LRU, 5 samples": ("#4292c6", "-"),
         "LRU, 10 samples": ("#08519c", "-"), "exact LRU": ("black", "-"), "LFU": ("tab:green", "-."),
         "SIEVE": ("tab:purple", "-."), "S3-FIFO": ("tab:orange", "-."), OPT: ("tab:red", ":")}

Op = tuple[int, bool]  # (key id, is a read)


def key(k: int) -> bytes:
    return b"k%07d" % k  # one length for every key: every key costs the same bytes


def fractions(text: str) -> list[float]:
    """--sizes: a comma list of fractions strictly between 0 and 1."""
    try:
        got = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        got = []
    if not got or not all(0 < x < 1 for x in got):
        raise argparse.ArgumentTypeError(f"{text!r}: give fractions between 0 and 1, e.g. 0.1,0.2,0.4")
    return sorted(set(got))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", type=whole(10), default=500, help="keys of the workloads (default 500; --quick 200)")
    p.add_argument("--requests", type=whole(500), default=4000,
                   help="requests per workload and size (default 4000; --quick 1000)")
    p.add_argument("--sizes", type=fractions, default=[0.1, 0.2, 0.3, 0.4],
                   help="maxmemory as fractions of the keys' footprint, a comma list (default 0.1,0.2,0.3,0.4; "
                        "--quick 0.2,0.4)")
    p.add_argument("--alpha", type=real(0), default=1.0, help="the Zipf workload's exponent (default 1.0)")
    p.add_argument("--seconds-per-size", type=SECONDS, default=12.0,
                   help="each size's requests are paced over this many seconds (default 12; --quick 2.5)")
    p.add_argument("--order-keys", type=whole(10), default=1000,
                   help="keys of the eviction-order test (default 1000; --quick 200)")
    p.add_argument("--order-seconds", type=float, default=10.0,
                   help="its read pass, first key to last, lasts this long (default 10; --quick 3)")


@dataclass(frozen=True)
class Plan:
    """What every lane runs: the sizes, the sequences, the pacing."""

    keys: int
    capacities: list[int]  # in keys, one per size
    traces: dict[str, list[Op]]
    seconds_per_size: float
    order_keys: int
    order_seconds: float


@dataclass(frozen=True)
class LaneSpec:
    label: str
    policy: str
    samples: int
    order_test: bool


def _plan(ctx: Context) -> Plan:
    from memsim.sim.cache.lrutest import lru_test_trace
    from memsim.sim.policies.simulate import zipf_trace

    a = ctx.args
    keys, requests, sizes = a.keys, a.requests, a.sizes
    per_size, order_keys, order_seconds = a.seconds_per_size, a.order_keys, a.order_seconds
    if ctx.quick:
        keys, requests, sizes = min(keys, 200), min(requests, 1000), [0.2, 0.4]
        per_size, order_keys, order_seconds = min(per_size, 2.5), min(order_keys, 200), min(order_seconds, 3.0)
    cycles = max(1, requests // (2 * LRU_TEST_CYCLE))
    # lru_test_trace: (key 1..keys, is a write); its seed and Zipf's from the run's seed
    lru = [(k, not write) for k, write in lru_test_trace(keys, cycles, LRU_TEST_CYCLE, seed=ctx.seed)]
    zipf = [(k, True) for k in zipf_trace(requests, keys, a.alpha, seed=ctx.seed)]
    return Plan(keys, [max(2, round(keys * s)) for s in sizes], {"lru-test": lru, "zipf": zipf}, per_size,
                order_keys, order_seconds)


# -- Belady's OPT -------------------------------------------------------------------------------

def versions(ops: Sequence[Op]) -> list[int]:
    """The lru-test's ops as Belady's trace: each SET names a new version of its key (a fresh id,
    so it is never a hit), each GET the key's current version. A superseded version is never
    requested again, so OPT drops it first: as good as the SET overwriting it in place."""
    current: dict[int, int] = {}
    fresh = 0
    out: list[int] = []
    for k, is_read in ops:
        if not is_read or k not in current:
            current[k] = fresh
            fresh += 1
        out.append(current[k])
    return out


def belady_bypass_hits(trace: Sequence[int], capacity: int) -> int:
    """Hits of Belady's MIN with bypass: on a miss, of the resident keys and the requested one, the
    one whose next request is farthest is left out (evicted, or not admitted). With unit sizes
    this is the most hits any cache can have when it may decline to store a miss (Belady's
    exchange argument, IBM Systems Journal 5(2), 1966, holds with the new key among the candidates)."""
    n = len(trace)
    next_use = [0] * n
    upcoming: dict[int, int] = {}
    for i in range(n - 1, -1, -1):
        next_use[i] = upcoming.get(trace[i], n + i)
        upcoming[trace[i]] = i
    resident: dict[int, int] = {}
    heap: list[tuple[int, int]] = []
    hits = 0
    for i, k in enumerate(trace):
        if k in resident:
            hits += 1
        elif len(resident) >= capacity:
            while -heap[0][0] != resident.get(heap[0][1]):
                heapq.heappop(heap)  # stale
            if -heap[0][0] < next_use[i]:
                continue  # the new key's next request is the farthest: do not store it
            del resident[heapq.heappop(heap)[1]]
        resident[k] = next_use[i]
        heapq.heappush(heap, (-next_use[i], k))
    return hits


def opt_hit_ratio(workload: str, ops: list[Op], capacity: int) -> float:
    """OPT as GET hits over GETs. Zipf (cache-aside: the live cache stores every miss): Belady's OPT,
    sim/policies/simulate.py's `belady`. The lru-test (every SET stored, no GET miss storable):
    Belady with bypass over the `versions`, the optimum of a cache freer than the live one (it may
    also skip a SET and fill a GET's miss), so a bound above every policy run on redis-cli's sequence."""
    from memsim.sim.policies.simulate import belady

    if workload == "zipf":
        return belady([k for k, _ in ops], capacity).hits / len(ops)
    return belady_bypass_hits(versions(ops), capacity) / sum(1 for _, r in ops if r)


# -- one lane: a server, one policy, every size and the order test ----------------------------------

class _Pacer:
    """Sleep so that request i goes at start + i / rate (no bursts to catch up after a stall)."""

    def __init__(self, rate: float):
        self.rate = rate
        self.start = time.monotonic()
        self.late = 0.0

    def wait(self, sent: int) -> None:
        due = self.start + sent / self.rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            self.late = max(self.late, now - due)


def _replay(cache: Cache, workload: str, ops: list[Op], seconds: float) -> dict[str, Any]:
    """Send ops paced over `seconds`; count the GETs and their hits (as the client saw them)."""
    pacer = _Pacer(len(ops) / seconds)
    evicted = int(cache.info("stats")["evicted_keys"])
    hits = reads = 0
    chunk = LRU_TEST_CYCLE if workload == "lru-test" else ZIPF_PIPELINE
    t0 = time.monotonic()
    for lo in range(0, len(ops), chunk):
        pacer.wait(lo)
        part = ops[lo:lo + chunk]
        p = cache.pipeline(transaction=False)
        for k, is_read in part:
            if is_read:
                p.get(key(k))
            else:
                p.set(key(k), VALUE)
        replies = p.execute()
        missed = [k for (k, is_read), r in zip(part, replies, strict=True) if is_read and r is None]
        reads += sum(1 for _, is_read in part if is_read)
        hits += sum(1 for _, is_read in part if is_read) - len(missed)
        if workload == "zipf" and missed:  # cache-aside: fill what the pipeline missed
            fill = cache.pipeline(transaction=False)
            for k in missed:
                fill.set(key(k), VALUE)
            fill.execute()
    elapsed = time.monotonic() - t0
    evicted = int(cache.info("stats")["evicted_keys"]) - evicted
    return {"hit_ratio": hits / reads if reads else 0.0, "reads": reads, "seconds": round(elapsed, 2),
            "late_s": round(pacer.late, 2), "keys_at_end": int(cache.dbsize()), "evicted": evicted}


def _limit(cache: Cache, per_key: int, capacity: int) -> None:
    """FLUSHALL and a maxmemory that holds exactly `capacity` keys."""
    cache.config_set("maxmemory", "0")
    cache.flushall()
    cache.config_set("maxmemory", str(per_key * capacity + per_key // 2))


def _bytes_per_key(cache: Any) -> int:
    cache.config_set("maxmemory", "0")
    cache.flushall()
    before = int(cache.info("memory")["used_memory"])
    p = cache.pipeline(transaction=False)
    for k in range(64):
        p.set(key(k), VALUE)
    p.execute()
    per = (int(cache.info("memory")["used_memory"]) - before) // 64
    cache.flushall()
    return per


def _order_test(cache: Cache, per_key: int, n: int, seconds: float) -> list[int]:
    """Redis's eviction-order test: which of n keys, read first to last, survive n/2 new ones (1 = kept)."""
    _limit(cache, per_key, n)
    step = 50
    for lo in range(0, n, step):
        p = cache.pipeline(transaction=False)
        for k in range(lo, min(n, lo + step)):
            p.set(key(k), VALUE)
        p.execute()
    time.sleep(1.0)  # the fill's second is behind every read's
    pacer = _Pacer(n / seconds)
    for lo in range(0, n, 10):
        pacer.wait(lo)
        p = cache.pipeline(transaction=False)
        for k in range(lo, min(n, lo + 10)):
            p.get(key(k))
        p.execute()
    time.sleep(1.0)  # the last reads' second is behind the new keys'
    for lo in range(n, n + n // 2, step):
        p = cache.pipeline(transaction=False)
        for k in range(lo, min(n + n // 2, lo + step)):
            p.set(key(k), VALUE)
        p.execute()
    p = cache.pipeline(transaction=False)
    for k in range(n):
        p.exists(key(k))
    return [int(x) for x in p.execute()]


def _lane(spec: LaneSpec, plan: Plan, out: Reports) -> None:
    """One policy on its own server: the order test, then every workload at every size."""
    from memsim.client import Cache
    from memsim.tools.local import LocalServer

    try:
        with LocalServer(cores=1) as srv:
            cache = Cache(srv.target, timeout=60)
            try:
                cache.config_set("maxmemory-policy", spec.policy)
                cache.config_set("maxmemory-samples", str(spec.samples))
                per_key = _bytes_per_key(cache)
                if spec.order_test:
                    kept = _order_test(cache, per_key, plan.order_keys, plan.order_seconds)
                    out.put(("order", spec.label, kept))
                for workload, ops in plan.traces.items():
                    for cap in plan.capacities:
                        _limit(cache, per_key, cap)
                        got = _replay(cache, workload, ops, plan.seconds_per_size)
                        out.put(("size", spec.label, {"workload": workload, "capacity": cap,
                                                      "bytes": per_key * cap, **got}))
            finally:
                cache.close()
        out.put(("end", spec.label, None))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which names the lane
        out.put(("error", spec.label, f"{type(e).__name__}: {e}"))


def run(ctx: Context) -> JSON:
    from memsim.tools import harness

    plan = _plan(ctx)
    lanes = [LaneSpec(label, pol, s, label in ORDER_TEST) for label, pol, s in
             (QUICK_POLICIES if ctx.quick else POLICIES)]
    mp = harness.context()  # spawn: this process may have imported gRPC
    out: Reports = mp.Queue()
    procs = [mp.Process(target=_lane, args=(spec, plan, out), daemon=True) for spec in lanes]
    sizes: dict[str, dict[str, list[dict[str, Any]]]] = {w: {} for w in WORKLOADS}
    order: dict[str, list[int]] = {}
    steps = len(WORKLOADS) * len(plan.capacities) * len(lanes) + sum(s.order_test for s in lanes)
    budget = 120 + 3 * (plan.order_seconds + len(WORKLOADS) * len(plan.capacities) * plan.seconds_per_size)
    try:
        for p in procs:
            p.start()
        ended = 0
        with ctx.progress(steps, "policies × sizes (paced: the LRU clock ticks once a second)") as bar:
            deadline = time.monotonic() + budget
            while ended < len(lanes):
                try:
                    kind, label, item = out.get(timeout=max(1.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise RuntimeError("eviction: the lanes did not finish in time") from None
                if kind == "error":
                    raise RuntimeError(f"eviction: lane {label!r} failed: {item}")
                if kind == "end":
                    ended += 1
                    continue
                if kind == "order":
                    order[label] = item
                else:
                    sizes[item["workload"]].setdefault(label, []).append(item)
                bar.advance()
        for p in procs:
            p.join(timeout=30)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    order_of = [label for label, *_ in POLICIES]
    for workload in WORKLOADS:
        sizes[workload] = {lab: sizes[workload][lab] for lab in order_of if lab in sizes[workload]}
    for workload, ops in plan.traces.items():
        sizes[workload][OPT] = [{"workload": workload, "capacity": c, "hit_ratio": opt_hit_ratio(workload, ops, c)}
                                for c in plan.capacities]
        for rows in sizes[workload].values():
            rows.sort(key=lambda r: r["capacity"])
    return {"keys": plan.keys, "requests": {w: len(t) for w, t in plan.traces.items()},
            "capacities": plan.capacities, "seconds_per_size": plan.seconds_per_size,
            "bytes_per_key": next((r["bytes"] // r["capacity"] for rows in sizes["zipf"].values() for r in rows
                                   if "bytes" in r), 0),
            "order_keys": plan.order_keys, "order_seconds": plan.order_seconds,
            "hit_ratio": sizes, "order": {label: order[label] for label in order_of if label in order}}


# -- reading the results ----------------------------------------------------------------------------

def curve(data: JSON, workload: str, label: str) -> list[float]:
    return [r["hit_ratio"] for r in data["hit_ratio"][workload][label]]


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def older_half_share(kept: list[int]) -> float:
    """Of the keys evicted, the share that came from the older (first-read) half: 1.0 is exact LRU."""
    half = len(kept) // 2
    evicted = [i for i, k in enumerate(kept) if not k]
    return sum(1 for i in evicted if i < half) / len(evicted) if evicted else 0.0


def checks(data: JSON) -> list[Check]:
    share = {label: older_half_share(kept) for label, kept in data["order"].items()}
    rnd, s3, s5, s10, exact = (share[lab] for lab in ("random", "LRU, 3 samples", "LRU, 5 samples",
                                                        "LRU, 10 samples", "exact LRU"))
    out = [Check(f"sampled LRU (5 samples) sits between random and exact LRU (evictions from the older half: "
                 f"{rnd:.0%} < {s5:.0%} < {exact:.0%})", rnd < s5 < exact),
           Check(f"10 samples evict closer to exact LRU than 3 ({s10:.0%} against {s3:.0%} from the older half)",
                 s3 < s10 <= exact)]
    for w in WORKLOADS:
        r, e = mean(curve(data, w, "random")), mean(curve(data, w, "exact LRU"))
        out.append(Check(f"{w}: exact LRU hits more than random eviction (mean over the sizes {e:.3f} against "
                         f"{r:.3f})", e > r))
    beaten = [(w, lab, i) for w in WORKLOADS for lab in data["hit_ratio"][w] if lab != OPT
              for i, (h, o) in enumerate(zip(curve(data, w, lab), curve(data, w, OPT), strict=True)) if h > o + 1e-9]
    out.append(Check("OPT is the best at every size, on both workloads"
                     + (f" (beaten: {beaten[:3]})" if beaten else ""), not beaten))
    return out


def turnover_seconds(data: JSON) -> list[float]:
    """How long each sampled-LRU run took to evict a cache's worth of keys (the LRU clock ticks once a second)."""
    return [r["capacity"] * r["seconds"] / r["evicted"] for w in WORKLOADS
            for r in data["hit_ratio"][w].get("LRU, 5 samples", []) if r.get("evicted")]


def summary(data: JSON) -> list[Any]:
    from rich.table import Table

    caps = data["capacities"]
    tables: list[Any] = []
    for w in WORKLOADS:
        t = Table(title=f"{w}: hit ratio by maxmemory ({data['keys']} keys, {data['requests'][w]} requests per size, "
                        f"paced over {data['seconds_per_size']:g} s)")
        t.add_column("policy")
        for c in caps:
            t.add_column(f"{c} keys\n{c * data['bytes_per_key'] / 1024:.1f} KiB", justify="right")
        for label, rows in data["hit_ratio"][w].items():
            t.add_row(label, *(f"{r['hit_ratio']:.3f}" for r in rows))
        tables.append(t)
    o = Table(title=f"Redis's eviction-order test: {data['order_keys']} keys read first to last over "
                    f"{data['order_seconds']:g} s, then {data['order_keys'] // 2} new keys")
    o.add_column("policy")
    o.add_column("evictions from the older half", justify="right")
    for label, kept in data["order"].items():
        o.add_row(label, f"{older_half_share(kept):.0%}")
    tables.append(o)
    late = max((r.get("late_s", 0.0) for w in WORKLOADS for rows in data["hit_ratio"][w].values() for r in rows),
               default=0.0)
    turn = turnover_seconds(data)
    tables.append(f"Sampled LRU ranks keys by a clock that ticks once a second. At the smallest size a cache's "
                  f"worth of keys was evicted every {min(turn, default=0):.1f} s here, so many keys share a tick and "
                  "the hit ratios of 3, 5 and 10 samples differ little (Redis turns a production cache over in "
                  "minutes). The eviction-order test reads its keys over many ticks and shows what the samples buy."
                  + (f" The pacing fell {late:.1f} s behind at worst (a busy host)." if late > 1 else ""))
    return tables


def plot(data: JSON, fig: Figure) -> None:
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.1]})
    caps = data["capacities"]
    for ax, w in zip(axes[:2], WORKLOADS, strict=True):
        for label in data["hit_ratio"][w]:
            colour, ls = STYLE[label]
            ax.plot(caps, curve(data, w, label), color=colour, ls=ls, marker="o", ms=3, lw=1.6, label=label)
        ax.set_xticks(caps, [f"{c}\n{c * data['bytes_per_key'] / 1024:.1f} KiB" for c in caps], fontsize="small")
        ax.set_xlabel("maxmemory (keys that fit, and bytes)")
        ax.set_ylabel("hit ratio (GETs that hit)")
        ax.set_title(f"{w}: hit ratio against memory", fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="x-small", loc="lower right")
    _draw_order(axes[2], data)
    fig.suptitle("Eviction on the live cache. Left: hit ratio against maxmemory, OPT above every policy. Right: "
                 "Redis's eviction-order test:\nexact LRU evicts exactly the older half, random evicts anywhere, "
                 "sampled LRU gets closer to exact LRU as samples grow")


def _draw_order(ax: Axes, data: JSON) -> None:
    """Each policy's keys as a strip, oldest read on the left: evicted light, kept dark (Redis's figure)."""
    import numpy as np

    labels = list(data["order"])
    n = data["order_keys"]
    grid = np.array([data["order"][lab] for lab in labels], dtype=float)
    ax.imshow(grid, aspect="auto", cmap="Greys", vmin=-0.6, vmax=1.0, interpolation="nearest",
              extent=(0, n, len(labels) - 0.5, -0.5))
    ax.axvline(n / 2, color="tab:red", lw=1, ls="--")
    ax.set_yticks(range(len(labels)),
                  [f"{lab}\n{older_half_share(data['order'][lab]):.0%} from older half" for lab in labels],
                  fontsize="small")
    ax.set_xlabel(f"key, in the order read ({n} keys; red: the older half ends)")
    ax.set_title("which keys were evicted (light) or kept (dark)", fontsize="medium")


EXPERIMENT = Experiment(name="eviction", help="hit ratio against maxmemory for Redis's sampled LRU (3/5/10 samples), "
                                              "LFU, random, exact LRU, SIEVE, S3-FIFO and OPT on the live cache, "
                                              "and Redis's eviction-order test",
                        run=run, plot=plot, summary=summary, checks=checks, add_arguments=add_arguments,
                        figsize=(17.0, 6.0))
