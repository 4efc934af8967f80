"""The heap's figures in V8's and Node's names: v8.getHeapStatistics(), v8.getHeapSpaceStatistics(),
process.memoryUsage().

Owns: the names, their order and how each is derived from a plain `HeapSizes` record. Touches no
shared array and no lock: the heap measures its spaces (under the isolate's locker) and hands the
record in. Invariants: every figure is a non-negative int; names and order are exactly V8's
(include/v8-statistics.h, `HeapStatistics` / `HeapSpaceStatistics`, filled by api.cc's
`Isolate::GetHeapStatistics` / `GetHeapSpaceStatistics`) and node's (lib/v8.js,
`process.memoryUsage()` in src/node_process_methods.cc).

V8's per-space figures: space_size = CommittedMemory (pages the space holds), space_used_size =
SizeOfObjects (bytes of objects not yet reclaimed), space_available_size = Available (bytes the
space could still allocate without growing), physical_space_size = CommittedPhysicalMemory (of the
committed pages, those resident). The heap-wide figures are the sums, except total_available_size:
Heap::Available adds MemoryAllocator::Available, the part of the reservation (heap_size_limit)
not committed yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memsim.sim.errors import InvalidArgument

# node 20 (V8 11.3): v8.getHeapSpaceStatistics() lists these, in this order (Heap's space ids).
NODE_SPACES = ("read_only_space", "new_space", "old_space", "code_space", "shared_space",
               "new_large_object_space", "large_object_space", "code_large_object_space",
               "shared_large_object_space")

# v8.getHeapStatistics()'s 14 fields, in node's order (lib/v8.js, getHeapStatistics).
HEAP_STATISTICS = ("total_heap_size", "total_heap_size_executable", "total_physical_size",
                   "total_available_size", "used_heap_size", "heap_size_limit", "malloced_memory",
                   "peak_malloced_memory", "does_zap_garbage", "number_of_native_contexts",
                   "number_of_detached_contexts", "total_global_handles_size", "used_global_handles_size",
                   "external_memory")


@dataclass(frozen=True)
class SpaceSize:
    """One space's four figures, bytes (V8's HeapSpaceStatistics)."""

    size: int = 0  # committed
    used: int = 0  # objects not yet reclaimed
    available: int = 0  # allocatable without committing more
    physical: int = 0  # committed and resident


@dataclass(frozen=True)
class HeapSizes:
    """What the heap measured; bytes. `external` is all memory held outside the heap on behalf of
    its objects (array buffers' backing stores included, as node's `external` counts them);
    `array_buffers` is the part of it that backs ArrayBuffers."""

    new_space: SpaceSize = field(default_factory=SpaceSize)
    old_space: SpaceSize = field(default_factory=SpaceSize)
    large_object_space: SpaceSize = field(default_factory=SpaceSize)
    external: int = 0
    array_buffers: int = 0
    limit: int = 0  # heap_size_limit: V8's Heap::MaxReserved
    global_handles_used: int = 0
    global_handles_total: int = 0
    malloced: int = 0
    peak_malloced: int = 0

    def spaces(self) -> dict[str, SpaceSize]:
        return {"new_space": self.new_space, "old_space": self.old_space,
                "large_object_space": self.large_object_space}

    def check(self) -> None:
        bad = {name: v for name, v in _numbers(self).items() if v < 0}
        if bad:
            raise InvalidArgument(f"heap sizes cannot be negative: {bad}")
        if self.array_buffers > self.external:
            raise InvalidArgument(f"array_buffers ({self.array_buffers}) is part of external ({self.external})")


def _numbers(s: HeapSizes) -> dict[str, int]:
    out = {k: getattr(s, k) for k in ("external", "array_buffers", "limit", "global_handles_used",
                                       "global_handles_total", "malloced", "peak_malloced")}
    for name, sp in s.spaces().items():
        out.update({f"{name}.size": sp.size, f"{name}.used": sp.used, f"{name}.available": sp.available,
                    f"{name}.physical": sp.physical})
    return out


def heap_statistics(sizes: HeapSizes) -> dict[str, int]:
    """v8.getHeapStatistics(): V8's 14 names (no executable code, contexts or zapping here: 0)."""
    sizes.check()
    spaces = sizes.spaces().values()
    committed = sum(s.size for s in spaces)
    stats = {
        "total_heap_size": committed,
        "total_heap_size_executable": 0,
        "total_physical_size": sum(s.physical for s in spaces),
        "total_available_size": sum(s.available for s in spaces) + max(0, sizes.limit - committed),
        "used_heap_size": sum(s.used for s in spaces),
        "heap_size_limit": sizes.limit,
        "malloced_memory": sizes.malloced,
        "peak_malloced_memory": max(sizes.peak_malloced, sizes.malloced),
        "does_zap_garbage": 0,
        "number_of_native_contexts": 0,
        "number_of_detached_contexts": 0,
        "total_global_handles_size": sizes.global_handles_total,
        "used_global_handles_size": sizes.global_handles_used,
        "external_memory": sizes.external,
    }
    return stats


def heap_space_statistics(sizes: HeapSizes) -> list[dict[str, int | str]]:
    """v8.getHeapSpaceStatistics(): node 20's nine spaces in node's order; the ones this heap does not
    have (read-only, code, shared, new large objects) report 0."""
    sizes.check()
    have = sizes.spaces()
    out: list[dict[str, int | str]] = []
    for name in NODE_SPACES:
        s = have.get(name, SpaceSize())
        out.append({"space_name": name, "space_size": s.size, "space_used_size": s.used,
                    "space_available_size": s.available, "physical_space_size": s.physical})
    return out


def memory_usage(rss: int, sizes: HeapSizes) -> dict[str, int]:
    """process.memoryUsage(): rss (resident bytes of the isolate's address space, measured by the
    caller), heapTotal = total_heap_size, heapUsed = used_heap_size, external, arrayBuffers."""
    if rss < 0:
        raise InvalidArgument(f"rss {rss} is negative")
    h = heap_statistics(sizes)
    return {"rss": rss, "heapTotal": h["total_heap_size"], "heapUsed": h["used_heap_size"],
            "external": sizes.external, "arrayBuffers": sizes.array_buffers}
