"""INFO: the cache's figures under Redis's names, as Redis's text ("# Section" and "name:value" lines).

Owns the text (Redis's genRedisInfoString in src/server.c); the figures are stats.py's, db.py's
and config.py's, every one read from shared memory, so any core answers for the whole machine.

What the memory figures mean on this machine (Redis's meaning, translated):
- used_memory: the allocator's usable bytes of every key and value object (size-class
  rounding included) plus the index, ENTRY_BYTES per key: what Redis counts with
  zmalloc_used_memory(), and what maxmemory is compared with.
- used_memory_overhead: the index part of it; used_memory_dataset: the objects.
- used_memory_rss: the machine's physical memory behind the cache: the heap's in-use spans
  (Go's HeapInuse, whole pages from the page heap: size-class tails, partly used spans and
  cached free objects included) plus the index. Redis reads its RSS from the OS; here the
  pages the allocator took from the machine play that part.
- mem_fragmentation_ratio = used_memory_rss / used_memory, as in Redis: 1.0 is a perfectly
  packed heap; above it, pages held but not holding live keys (after many deletes, or
  while cores' caches hold free objects). allocator_frag_ratio = HeapInuse / HeapAlloc is
  the allocator's own share of it.

Sections: server, clients, memory, stats, keyspace (the default), plus `evictions` (evicted keys
per policy) and `keyspacelocks` (the keyspace's lock table, jemalloc's mutex counters), which
`INFO all` / `INFO everything` add.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from memsim.sim.cache.config import POLICY_NAMES
from memsim.sim.cache.db import ENTRY_BYTES
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

DEFAULT_SECTIONS = ("server", "clients", "memory", "stats", "keyspace")
ALL_SECTIONS = (*DEFAULT_SECTIONS, "evictions", "keyspacelocks")


@dataclass(frozen=True)
class ServerFacts:
    """What the server knows and the keyspace does not."""

    version: str
    core: int
    cores: int
    port: int  # INFO's tcp_port: the Redis protocol's shared port where it is served
    started: float  # time.time() at start
    hz: int
    heap_inuse: Callable[[], int]  # Go's HeapInuse, bytes
    heap_alloc: Callable[[], int]  # Go's HeapAlloc, bytes
    locks: Callable[[], list[LockStats]]
    maxclients: int = 0  # the Redis-protocol front end's limit (server/resp.py); 0: none is served
    grpc_port: int = 0  # the gRPC shared port (memsim_grpc_port)


def human(n: int) -> str:
    """Redis's bytesToHuman()."""
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"


def _section(title: str, items: Iterable[tuple[str, object]]) -> str:
    return f"# {title}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in items)


def info_text(ks: Keyspace, facts: ServerFacts, sections: list[str]) -> str:
    # Redis's genInfoSectionDict: a set of names, so a section asked for twice is printed once (and
    # a request of N names costs at most every section once); "all", "everything" and "default" anywhere.
    asked = set(sections) if sections else {"default"}
    wanted = [s for s in ALL_SECTIONS if s in asked or asked & {"all", "everything"}
              or ("default" in asked and s in DEFAULT_SECTIONS)]
    out = []
    for s in wanted:
        builder = _BUILDERS.get(s)
        if builder is not None:  # Redis prints nothing for an unknown section
            out.append(builder(ks, facts))
    return "\r\n".join(out)


def _server(ks: Keyspace, f: ServerFacts) -> str:
    up = int(time.time() - f.started)
    return _section("Server", [
        # redis_version: the Redis whose command semantics this follows (clients check it for features)
        ("redis_version", "7.0.0"), ("memsim_version", f.version), ("redis_mode", "standalone"), ("arch_bits", 64),
        ("process_id", os.getpid()), ("core", f.core), ("cores", f.cores), ("tcp_port", f.port),
        ("memsim_grpc_port", f.grpc_port),
        ("uptime_in_seconds", up), ("uptime_in_days", up // 86400), ("hz", f.hz)])


def _clients(ks: Keyspace, f: ServerFacts) -> str:
    """Redis's "# Clients": connections to the Redis-protocol ports of every core (gRPC's are not counted)."""
    return _section("Clients", [("connected_clients", ks.stat(K_CLIENTS)), ("maxclients", f.maxclients),
                                ("blocked_clients", 0)])


def memory_figures(ks: Keyspace, f: ServerFacts) -> dict[str, int | float | str]:
    used = ks.used_memory()
    keys = ks.dbsize()
    overhead = ENTRY_BYTES * keys
    inuse, alloc = f.heap_inuse(), f.heap_alloc()
    rss = inuse + overhead
    cfg = ks.config
    return {
        "used_memory": used, "used_memory_human": human(used),
        "used_memory_rss": rss, "used_memory_rss_human": human(rss),
        "used_memory_peak": ks.used_memory_peak(), "used_memory_peak_human": human(ks.used_memory_peak()),
        "used_memory_overhead": overhead, "used_memory_dataset": used - overhead,
        "maxmemory": cfg.maxmemory, "maxmemory_human": human(cfg.maxmemory),
        "maxmemory_policy": POLICY_NAMES[cfg.policy],
        "allocator_frag_ratio": round(inuse / alloc, 2) if alloc else 1.0,
        "mem_fragmentation_ratio": round(rss / used, 2) if used else 1.0,
        "mem_allocator": "memsim (Go size classes)",
    }


def _memory(ks: Keyspace, f: ServerFacts) -> str:
    return _section("Memory", memory_figures(ks, f).items())


def _stats(ks: Keyspace, f: ServerFacts) -> str:
    locks = [s for s in f.locks() if s.name.startswith("keyspace/")]
    return _section("Stats", [
        ("total_connections_received", ks.stat(K_CONNECTIONS)),
        ("total_commands_processed", ks.stat(K_COMMANDS)),
        ("instantaneous_ops_per_sec", ks.instantaneous_ops_per_sec()),
        ("total_net_input_bytes", ks.stat(K_NET_IN)),
        ("total_net_output_bytes", ks.stat(K_NET_OUT)),
        ("rejected_connections", ks.stat(K_REJECTED_CONN)),
        ("rejected_calls", ks.stat(K_REJECTED)),
        ("expired_keys", ks.stat(K_EXPIRED)),
        ("evicted_keys", ks.evicted_keys()),
        ("keyspace_hits", ks.stat(K_HITS)),
        ("keyspace_misses", ks.stat(K_MISSES)),
        ("keyspace_read_retries", ks.stat(K_READ_RETRIES)),  # lock-free GETs that fell back to the lock
        ("keyspace_lock_acquisitions", sum(s.acquisitions for s in locks)),
        ("keyspace_lock_contended", sum(s.contended for s in locks)),
        ("keyspace_lock_wait_ns", sum(s.wait_ns for s in locks)),
    ])


def _evictions(ks: Keyspace, f: ServerFacts) -> str:
    per = ks.a.ks_evicted.sum(axis=0)
    return _section("Evictions", [(f"evicted_keys_{name.replace('-', '_')}", int(per[pid]))
                                  for pid, name in sorted(POLICY_NAMES.items())])


def _keyspace(ks: Keyspace, f: ServerFacts) -> str:
    keys = ks.dbsize()
    expires, avg_ttl = ks.expires_summary()
    return _section("Keyspace", [("db0", f"keys={keys},expires={expires},avg_ttl={avg_ttl}")] if keys else [])


def _keyspacelocks(ks: Keyspace, f: ServerFacts) -> str:
    return _section("Keyspacelocks", [
        (s.name.replace("/", "_"), f"acquisitions={s.acquisitions},contended={s.contended},wait_ns={s.wait_ns},"
                                   f"max_wait_ns={s.max_wait_ns},owner_switches={s.owner_switches},"
                                   f"hold_ns={s.hold_ns}")
        for s in f.locks() if s.name.startswith("keyspace/")])


_BUILDERS = {"server": _server, "clients": _clients, "memory": _memory, "stats": _stats, "keyspace": _keyspace,
             "evictions": _evictions, "keyspacelocks": _keyspacelocks}
