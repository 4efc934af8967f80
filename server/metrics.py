"""The machine's Prometheus metrics: one custom collector that reads the shared arrays at scrape time.

Owns the metric names, their types and labels, and how each is derived. Touches the machine's shared
arrays read-only and takes no lock of the machine (every figure is a racy read of counters that have one
writer each, as INFO's and MemStats' already are: sim/cache/stats.py, sim/alloc/memstats.py), so a scrape
never waits for a core and no core ever waits for a scrape; nothing is added to any operation's path.
prometheus_client's documented custom-collector pattern: `collect()` builds Metric families each time
it is called, the collector is registered on its own CollectorRegistry (never the process-wide default,
which would add the supervisor's own process_* and python_gc_* figures), and exposition is
prometheus_client's (server/exporter.py serves it).

Names, so that a user's existing dashboards and alerts read them (every one prefixed `memsim_`):
- allocator: Go's runtime/metrics names (runtime/metrics/description.go) as client_golang exposes them:
  `/memory/classes/heap/objects:bytes` -> `memsim_go_memory_classes_heap_objects_bytes`, and the other
  memory classes, which partition `/memory/classes/total:bytes` exactly as Go's do;
  `/gc/heap/allocs:bytes` -> `memsim_go_gc_heap_allocs_bytes_total`, allocs/frees/tiny objects likewise.
  Per core, the mcache's own counters (Go keeps them per P and exports none): `memsim_mcache_*_total{core}`.
- locks: jemalloc's mutex counters (num_ops, num_wait, total_wait_time, max_wait_time, owner_switch)
  per lock, `{lock="mheap"}`, `{lock="keyspace/3"}`...: the machine's fixed lock table
  (sim/machine/locks.py), so the label set is bounded; a lock never taken yet is left out.
- cache: redis_exporter's names (oliver006/redis_exporter, exporter/exporter.go's metricMapCounters and
  metricMapGauges, exporter/info.go's keyspace line): `memsim_keyspace_hits_total`,
  `memsim_memory_used_bytes`, `memsim_db_keys{db="db0"}` ...; no key ever becomes a label.
- virtual memory: node_exporter's vmstat collector exports every /proc/vmstat field as an untyped
  `node_vmstat_<field>`; here `memsim_vmstat_<field>`, untyped too. Linux's names where Linux has the
  figure (pgfault, pgmajfault, pswpin, pswpout, thp_*, compact_*, nr_foll_pin_*; every page of the VM is
  anonymous memory, so reclaim's pgscan/pgsteal are Linux's pgscan_anon/pgsteal_anon), memsim's own
  vm_stat names for the rest (tlb_hit, pt_walks ...). The pool's gauges: `memsim_vm_*`.
- managed heap: Node's prom-client names (its lib/metrics/heapSizeAndUsed.js and gc.js) per isolate:
  `memsim_nodejs_heap_size_used_bytes{isolate}`, `memsim_nodejs_gc_duration_seconds{isolate,kind}` with
  kind minor (Scavenge) or major (Mark-Compact), as prom-client labels V8's collectors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from importlib.metadata import version

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    UnknownMetricFamily,
)

from memsim.sim.alloc import layout as AL
from memsim.sim.alloc.heap import Heap
from memsim.sim.alloc.memstats import MemStats, read_cache_stats, read_memstats
from memsim.sim.cache.config import POLICY_NAMES
from memsim.sim.cache.expire import HZ
from memsim.sim.cache.info import ServerFacts, memory_figures
from memsim.sim.cache.keyspace import Keyspace
from memsim.sim.cache.layout import (
    K_CLIENTS,
    K_COMMANDS,
    K_CONNECTIONS,
    K_EXPIRED,
    K_HITS,
    K_MISSES,
    K_NET_IN,
    K_NET_OUT,
    K_READ_RETRIES,
    K_REJECTED,
    K_REJECTED_CONN,
)
from memsim.sim.machine.locks import LockStats
from memsim.sim.system import Machine
from memsim.sim.v8 import layout as V8L
from memsim.sim.v8 import tracer as TR
from memsim.sim.vm import layout as VML
from memsim.sim.vm import task_mmu
from memsim.sim.vm.vm import VM

NS = 1e-9
# vm_stat columns exported under another of Linux's /proc/vmstat names (mm/vmstat.c's vmstat_text).
VMSTAT_LINUX = {"pgscan": "pgscan_anon", "pgsteal": "pgsteal_anon"}
# The GC pause histogram's buckets: the tracer's own bucket bounds at every other octave, 10 us * 2^j
# for odd j (20 us .. 5.24 s), so that each cumulative count is exact (sim/v8/tracer.py's header).
GC_OCTAVES = tuple(range(1, 20, 2))
# The pool's gauges (task_mmu.vmstat's keys beyond the counters): key -> (memsim_vm_<name>, help).
VM_GAUGES = {
    "page_size": ("page_size_bytes", "Bytes of one frame (a base page)."),
    "pool_frames": ("pool_frames", "Frames of the VM's pool."),
    "free_frames": ("free_frames", "Free frames of the pool."),
    "swap_slots": ("swap_slots", "Slots of the swap file, one frame each."),
    "swap_used": ("swap_used_slots", "Swap slots in use."),
    "ipt_frames": ("ipt_frames", "Frames held by inverted page tables."),
    "spaces": ("spaces", "Address spaces."),
    "huge_pages": ("huge_pages", "Transparent huge pages mapped."),
    "hugetlb_pages_total": ("hugetlb_pages", "Explicit huge pages set aside (vm.nr_hugepages)."),
    "hugetlb_pages_free": ("hugetlb_pages_free", "Explicit huge pages not mapped."),
    "pinned_frames": ("pinned_frames", "Frames held by pin_user_pages."),
    "pin_limit_frames": ("pin_limit_frames", "The most frames the machine lets be pinned."),
}
GC_KIND_LABELS = ("minor", "major")  # prom-client's kind for V8's Scavenge and Mark-Compact (TR.KINDS)


class MachineCollector:
    """prometheus_client's custom collector over one machine's shared arrays (see the module header).

    Built in the process that maps the machine (the supervisor, or a test's): `heap` and `keyspace` are
    that process's views, used only for their read-only figures."""

    def __init__(self, machine: Machine, heap: Heap, keyspace: Keyspace):
        self.machine = machine
        self.heap = heap
        self.ks = keyspace
        self.started = time.time()
        self.paused = threading.Lock()  # held for a whole scrape (and by a fork: server/exporter.py)
        self.version = version("memsim")
        self.vm: VM | None = machine.supervisor_vm() if machine.pool_frames else None
        self.v8: V8L.V8Arrays | None = (V8L.V8Arrays.from_region(machine.meta.arrays)
                                        if machine.pool_frames and machine.config.v8_isolates else None)

    def collect(self) -> Iterable[Metric]:
        with self.paused:
            return self._collect()

    def _collect(self) -> list[Metric]:
        ms = read_memstats(self.machine.arrays, metadata_bytes=self.machine.meta.size)
        locks = self.heap.locks.snapshot()
        out = [*self._allocator(ms), *self._locks(locks), *self._cache(ms, locks)]
        if self.vm is not None:
            out += self._vm(self.vm)
        if self.v8 is not None:
            out += self._v8(self.v8)
        return out

    # -- the allocator: Go's runtime/metrics -----------------------------------------------------------

    def _allocator(self, ms: MemStats) -> Iterator[Metric]:
        cs = self.machine.arrays.core_stats.sum(axis=0)
        classes = {  # Go's /memory/classes/heap/... and /memory/classes/metadata/other: their sum is Sys
            "heap_objects": (ms.HeapAlloc, "Memory occupied by live objects and dead objects not yet freed."),
            "heap_unused": (ms.HeapInuse - ms.HeapAlloc,
                            "Memory reserved for heap objects but not in use (size-class tails, free slots)."),
            "heap_free": (ms.HeapIdle - ms.HeapReleased, "Free and idle memory not yet returned to the machine."),
            "heap_released": (ms.HeapReleased, "Free memory returned to the machine by the scavenger."),
            "metadata_other": (ms.Sys - ms.HeapSys, "Memory of the shared metadata that describes the heap."),
            "total": (ms.Sys, "All memory the heap took from the machine: the sum of the other classes."),
        }
        for name, (value, doc) in classes.items():
            yield GaugeMetricFamily(f"memsim_go_memory_classes_{name}_bytes", doc, value=value)
        tiny_frees = int(cs[AL.S_TINY_FREES])
        yield CounterMetricFamily("memsim_go_gc_heap_allocs_bytes", "Cumulative bytes allocated (size-class "
                                  "sizes; tiny blocks as 16 B).", value=ms.TotalAlloc)
        yield CounterMetricFamily("memsim_go_gc_heap_allocs_objects", "Cumulative objects allocated, tiny "
                                  "objects excluded (Go's /gc/heap/allocs:objects).", value=ms.Mallocs - ms.TinyAllocs)
        yield CounterMetricFamily("memsim_go_gc_heap_frees_objects", "Cumulative objects freed, tiny objects "
                                  "excluded.", value=ms.Frees - tiny_frees)
        yield CounterMetricFamily("memsim_go_gc_heap_tiny_allocs_objects", "Cumulative tiny objects allocated "
                                  "into tiny blocks.", value=ms.TinyAllocs)
        yield GaugeMetricFamily("memsim_go_gc_heap_objects_objects", "Live objects, tiny ones included.",
                                value=ms.HeapObjects)
        per_core = {"hits": "Allocations served by the core's mcache.",
                    "refills": "mcache refills from mcentral.",
                    "flushes": "Spans flushed from the mcache back to mcentral.",
                    "central_direct": "Allocations that bypassed the mcache (--no-caches)."}
        stats = read_cache_stats(self.machine.arrays)
        for field, doc in per_core.items():
            fam = CounterMetricFamily(f"memsim_mcache_{field}", doc, labels=["core"])
            for s in stats:
                fam.add_metric([str(s.core)], getattr(s, field))
            yield fam

    # -- the lock table: jemalloc's mutex counters -----------------------------------------------------

    def _locks(self, locks: list[LockStats]) -> Iterator[Metric]:
        taken = [s for s in locks if s.acquisitions or s.contended]
        counters = (("acquisitions", "Acquisitions (jemalloc's num_ops).", 1.0),
                    ("contended", "Acquisitions that had to wait (num_wait).", 1.0),
                    ("wait_seconds", "Time spent waiting (total_wait_time).", NS),
                    ("hold_seconds", "Time held.", NS),
                    ("owner_switches", "Acquisitions by another process than the last one (owner_switch).", 1.0))
        fields = {"acquisitions": "acquisitions", "contended": "contended", "wait_seconds": "wait_ns",
                  "hold_seconds": "hold_ns", "owner_switches": "owner_switches"}
        for name, doc, scale in counters:
            fam = CounterMetricFamily(f"memsim_lock_{name}", doc, labels=["lock"])
            for s in taken:
                fam.add_metric([s.name], getattr(s, fields[name]) * scale)
            yield fam
        fam_max = GaugeMetricFamily("memsim_lock_max_wait_seconds", "Longest wait (max_wait_time).",
                                    labels=["lock"])
        for s in taken:
            fam_max.add_metric([s.name], s.max_wait_ns * NS)
        yield fam_max

    # -- the cache: redis_exporter's names -------------------------------------------------------------

    def _cache(self, ms: MemStats, locks: list[LockStats]) -> Iterator[Metric]:
        ks, cfg = self.ks, self.machine.config
        facts = ServerFacts(version=self.version, core=0, cores=cfg.cores, port=0, started=self.started,
                            hz=HZ, heap_inuse=lambda: ms.HeapInuse, heap_alloc=lambda: ms.HeapAlloc,
                            locks=lambda: locks)
        mem = memory_figures(ks, facts)
        for stat, col, doc in (("keyspace_hits", K_HITS, "Lookups that found their key."),
                               ("keyspace_misses", K_MISSES, "Lookups that did not."),
                               ("expired_keys", K_EXPIRED, "Keys deleted because their TTL passed."),
                               ("commands_processed", K_COMMANDS, "Commands run, on every core."),
                               ("rejected_calls", K_REJECTED, "Commands refused (OOM, bad arguments)."),
                               ("keyspace_read_retries", K_READ_RETRIES,
                                "Lock-free reads that fell back to the stripe lock.")):
            yield CounterMetricFamily(f"memsim_{stat}", doc, value=ks.stat(col))
        # the Redis-protocol front end's connections (server/resp.py), as redis_exporter names Redis's
        yield GaugeMetricFamily("memsim_connected_clients", "Redis-protocol connections open now.",
                                value=ks.stat(K_CLIENTS))
        for stat, col, doc in (("connections_received", K_CONNECTIONS, "Redis-protocol connections accepted."),
                               ("rejected_connections", K_REJECTED_CONN, "Connections refused at maxclients."),
                               ("net_input_bytes", K_NET_IN, "Bytes read from Redis-protocol clients."),
                               ("net_output_bytes", K_NET_OUT, "Bytes written to Redis-protocol clients.")):
            yield CounterMetricFamily(f"memsim_{stat}", doc, value=ks.stat(col))
        yield CounterMetricFamily("memsim_evicted_keys", "Keys evicted to stay under maxmemory.",
                                  value=ks.evicted_keys())
        by_policy = ks.a.ks_evicted.sum(axis=0)
        fam = CounterMetricFamily("memsim_evicted_keys_by_policy", "Evicted keys by the policy that chose them.",
                                  labels=["policy"])
        for pid, name in sorted(POLICY_NAMES.items()):
            fam.add_metric([name], int(by_policy[pid]))
        yield fam
        fam = CounterMetricFamily("memsim_core_commands_processed", "Commands run by each core.", labels=["core"])
        for core, n in enumerate(ks.a.ks_core[:, K_COMMANDS]):
            fam.add_metric([str(core)], int(n))
        yield fam
        for field, name, doc in (("used_memory", "memory_used_bytes", "Bytes of keys, values and the index."),
                                 ("used_memory_rss", "memory_used_rss_bytes", "Heap pages behind the cache."),
                                 ("used_memory_peak", "memory_used_peak_bytes", "Peak of used_memory."),
                                 ("used_memory_overhead", "memory_used_overhead_bytes", "The index's bytes."),
                                 ("used_memory_dataset", "memory_used_dataset_bytes", "The objects' bytes."),
                                 ("maxmemory", "memory_max_bytes", "maxmemory (0 = no limit)."),
                                 ("mem_fragmentation_ratio", "mem_fragmentation_ratio", "rss / used_memory."),
                                 ("allocator_frag_ratio", "allocator_frag_ratio", "HeapInuse / HeapAlloc.")):
            yield GaugeMetricFamily(f"memsim_{name}", doc, value=float(mem[field]))
        expires, avg_ttl_ms = ks.expires_summary()
        for name, value, doc in (("db_keys", ks.dbsize(), "Keys in the database."),
                                 ("db_keys_expiring", expires, "Keys with a TTL."),
                                 ("db_avg_ttl_seconds", avg_ttl_ms / 1000, "Mean TTL of the keys with one.")):
            fam_db = GaugeMetricFamily(f"memsim_{name}", doc, labels=["db"])
            fam_db.add_metric(["db0"], value)
            yield fam_db
        yield GaugeMetricFamily("memsim_uptime_in_seconds", "Seconds since the server started.",
                                value=int(time.time() - self.started))
        yield GaugeMetricFamily("memsim_start_time_seconds", "When the server started, Unix time.",
                                value=self.started)
        info = InfoMetricFamily("memsim_instance", "The server's version and settings.")
        info.add_metric([], {"memsim_version": facts.version, "redis_version": "7.0.0", "redis_mode": "standalone",
                             "maxmemory_policy": str(mem["maxmemory_policy"]), "cores": str(cfg.cores)})
        yield info

    # -- virtual memory: node_exporter's vmstat ----------------------------------------------------------

    def _vm(self, vm: VM) -> Iterator[Metric]:
        st = task_mmu.vmstat(vm)
        for name in VML.VMSTAT:
            linux = VMSTAT_LINUX.get(name, name)
            yield UnknownMetricFamily(f"memsim_vmstat_{linux}", f"/proc/vmstat information field {linux}.",
                                      value=st[name])
        yield UnknownMetricFamily("memsim_vmstat_nr_free_pages", "/proc/vmstat information field nr_free_pages.",
                                  value=st["free_frames"])
        for key, (name, doc) in VM_GAUGES.items():
            yield GaugeMetricFamily(f"memsim_vm_{name}", doc, value=st[key])
        rows = vm.a.vm_stat[: self.machine.config.cores]
        for col, name, doc in (("tlb_hit", "tlb_hits", "TLB hits of each core's own TLB."),
                               ("tlb_miss", "tlb_misses", "TLB misses of each core's own TLB."),
                               ("pgfault", "page_faults", "Page faults taken on each core.")):
            fam = CounterMetricFamily(f"memsim_core_{name}", doc, labels=["core"])
            for core, n in enumerate(rows[:, VML.S[col]]):
                fam.add_metric([str(core)], int(n))
            yield fam

    # -- the managed heap: prom-client's nodejs_* ------------------------------------------------------

    def _v8(self, a: V8L.V8Arrays) -> Iterator[Metric]:
        states = np.bincount(a.iso_state.astype(np.int64), minlength=len(V8L.STATE_NAMES))
        fam = GaugeMetricFamily("memsim_v8_isolates", "Isolates by state.", labels=["state"])
        for s, name in enumerate(V8L.STATE_NAMES):
            fam.add_metric([name], int(states[s]))
        yield fam
        live = [int(i) for i in np.flatnonzero(a.iso_state == V8L.LIVE)]
        used = GaugeMetricFamily("memsim_nodejs_heap_size_used_bytes", "Bytes of objects in the isolate's heap "
                                 "(v8.getHeapStatistics().used_heap_size).", labels=["isolate"])
        total = GaugeMetricFamily("memsim_nodejs_heap_size_total_bytes", "Committed bytes of the isolate's heap "
                                  "(total_heap_size).", labels=["isolate"])
        gc = HistogramMetricFamily("memsim_nodejs_gc_duration_seconds", "Garbage collection pauses by kind "
                                   "(minor: Scavenge, major: Mark-Compact).", labels=["isolate", "kind"])
        for i in live:
            top, cfg, ctr = a.iso_top[i], a.iso_cfg[i], a.tracer.iso_ctr[i]
            used.add_metric([str(i)], int(top[V8L.T_NEW_USED]) + int(a.pg_allocated[i].sum())
                            + int(top[V8L.T_LO_BYTES]))
            total.add_metric([str(i)], 2 * int(cfg[V8L.C_SEMI]) + int(top[V8L.T_OLD_COMMITTED]))
            floats = ctr.view(np.float64)
            for k, short in enumerate(TR.KIND_SHORT):
                hist = ctr[TR.HIST0 + k * TR.HIST_BUCKETS: TR.HIST0 + (k + 1) * TR.HIST_BUCKETS]
                # bucket b holds [10 us * 2^(b/4), 10 us * 2^((b+1)/4)): those below 10 us * 2^j are 0 .. 4j-1
                buckets = [(f"{TR.HIST_BASE_MS / 1000 * 2 ** j:g}", int(hist[: 4 * j].sum())) for j in GC_OCTAVES]
                buckets.append(("+Inf", int(ctr[TR.C[f"count.{short}"]])))
                gc.add_metric([str(i), GC_KIND_LABELS[k]], buckets,
                              sum_value=float(floats[TR.C[f"pause_sum.{short}"]]) / 1000)
        yield used
        yield total
        yield gc
