"""`memsim experiment thp --quick`: TLB reach and walk cost by THP mode from the VM's counters, and direct
compaction stalls on a fragmented pool marked from compact_stall."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memsim.tools.experiments import experiments
from memsim.tools.experiments.base import run_experiment


def test_quick_run_shows_reach_and_compaction_stalls(tmp_path: Path) -> None:
    exp = experiments()["thp"]
    args = argparse.Namespace(seed=1, quick=True, out=str(tmp_path), no_png=False, replot=None, quiet=True,
                              scheduler=None, workers=2, region_mib=0, loads=0, huge_pages=0)
    assert run_experiment(exp, args) == 0
    doc = json.loads((tmp_path / "thp.json").read_text())
    assert [c["claim"] for c in doc["checks"] if not c["held"]] == []
    d = doc["data"]
    assert [d["reach"][m]["huge_pages"] for m in ("never", "madvise", "always")] == [0, 2, 4]  # 4 MiB regions
    always = d["spikes"]["always"]
    assert always["event"].count(0) == always["counters"]["compact_stall"]  # each stall marked on its access
    assert d["spikes"]["never"]["counters"]["thp_fault_alloc"] == 0
    assert len(always["latency_us"]) == len(always["at_ms"]) == len(always["event"]) == 6 * 300
    assert (tmp_path / "thp.png").read_bytes()[:4] == b"\x89PNG"
