"""Node's and V8's statistics (sim/v8/stats.py): v8.getHeapStatistics()'s 14 names, node 20's nine
spaces in node's order, process.memoryUsage(), from one plain HeapSizes record."""

from __future__ import annotations

import pytest

from memsim.sim.errors import InvalidArgument
from memsim.sim.v8.stats import (
    HEAP_STATISTICS,
    NODE_SPACES,
    HeapSizes,
    SpaceSize,
    heap_space_statistics,
    heap_statistics,
    memory_usage,
)

SIZES = HeapSizes(new_space=SpaceSize(size=2 << 20, used=700_000, available=348_576, physical=2 << 20),
                  old_space=SpaceSize(size=4 << 20, used=3_000_000, available=1_000_000, physical=3 << 20),
                  large_object_space=SpaceSize(size=1 << 20, used=600_000, available=0, physical=1 << 20),
                  external=300_000, array_buffers=200_000, limit=10 << 20, global_handles_used=4096,
                  global_handles_total=8192, malloced=65536, peak_malloced=131072)


def test_heap_statistics_names_and_sums():
    h = heap_statistics(SIZES)
    assert tuple(h) == HEAP_STATISTICS and len(h) == 14
    assert h["total_heap_size"] == 7 << 20
    assert h["used_heap_size"] == 4_300_000
    assert h["total_physical_size"] == 6 << 20
    # Heap::Available: the spaces' available bytes plus the reservation not committed yet.
    assert h["total_available_size"] == 1_348_576 + (3 << 20)
    assert h["heap_size_limit"] == 10 << 20 and h["external_memory"] == 300_000
    assert (h["malloced_memory"], h["peak_malloced_memory"]) == (65536, 131072)
    assert (h["used_global_handles_size"], h["total_global_handles_size"]) == (4096, 8192)
    for zero in ("total_heap_size_executable", "does_zap_garbage", "number_of_native_contexts",
                 "number_of_detached_contexts"):
        assert h[zero] == 0
    assert all(isinstance(v, int) for v in h.values())


def test_space_statistics_are_node_20s_nine_spaces_in_order():
    spaces = heap_space_statistics(SIZES)
    assert [s["space_name"] for s in spaces] == list(NODE_SPACES)
    assert NODE_SPACES[:3] == ("read_only_space", "new_space", "old_space") and len(NODE_SPACES) == 9
    by = {s["space_name"]: s for s in spaces}
    assert by["old_space"] == {"space_name": "old_space", "space_size": 4 << 20, "space_used_size": 3_000_000,
                               "space_available_size": 1_000_000, "physical_space_size": 3 << 20}
    assert by["large_object_space"]["space_used_size"] == 600_000
    for absent in ("read_only_space", "code_space", "shared_space", "new_large_object_space",
                   "code_large_object_space", "shared_large_object_space"):
        assert [by[absent][k] for k in ("space_size", "space_used_size", "space_available_size",
                                        "physical_space_size")] == [0, 0, 0, 0]
    assert sum(int(s["space_used_size"]) for s in spaces) == heap_statistics(SIZES)["used_heap_size"]


def test_memory_usage_is_nodes_five_fields():
    m = memory_usage(9 << 20, SIZES)
    assert m == {"rss": 9 << 20, "heapTotal": 7 << 20, "heapUsed": 4_300_000, "external": 300_000,
                 "arrayBuffers": 200_000}
    assert memory_usage(0, HeapSizes()) == {"rss": 0, "heapTotal": 0, "heapUsed": 0, "external": 0,
                                            "arrayBuffers": 0}


def test_bad_sizes():
    with pytest.raises(InvalidArgument):
        memory_usage(-1, SIZES)
    with pytest.raises(InvalidArgument, match=r"old_space\.used"):
        heap_statistics(HeapSizes(old_space=SpaceSize(used=-5)))
    with pytest.raises(InvalidArgument, match="part of external"):
        heap_space_statistics(HeapSizes(external=1, array_buffers=2))
