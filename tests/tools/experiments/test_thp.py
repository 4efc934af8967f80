"""`memsim experiment thp --quick`: TLB reach and walk cost by THP mode from the VM's counters, and direct
compaction stalls on a fragmented pool marked from compact_stall."""

from __future__ import annotations

from pathlib import Path

from tests.tools.experiments.quick import run_quick


def test_quick_run_shows_reach_and_compaction_stalls(tmp_path: Path) -> None:
    doc = run_quick("thp", tmp_path, region_mib=0, loads=0, huge_pages=0)
    d = doc["data"]
    assert [d["reach"][m]["huge_pages"] for m in ("never", "madvise", "always")] == [0, 2, 4]  # 4 MiB regions
    always = d["spikes"]["always"]
    assert always["event"].count(0) == always["counters"]["compact_stall"]  # each stall marked on its access
    assert d["spikes"]["never"]["counters"]["thp_fault_alloc"] == 0
    assert len(always["latency_us"]) == len(always["at_ms"]) == len(always["event"]) == 6 * 300
