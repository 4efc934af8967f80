"""`memsim experiment page-tables --quick`: the linear table's 4 MiB per 32-bit space read off real spaces,
the others' smaller cost, and the walk each kind pays, from the VM's counters."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memsim.tools.experiments import experiments
from memsim.tools.experiments.base import run_experiment


def test_quick_run_measures_every_kind_on_real_spaces(tmp_path: Path) -> None:
    exp = experiments()["page-tables"]
    args = argparse.Namespace(seed=1, quick=True, out=str(tmp_path), no_png=False, replot=None, quiet=True,
                              scheduler=None, workers=2, spaces=0, pages=0, grow=0)
    assert run_experiment(exp, args) == 0
    doc = json.loads((tmp_path / "page-tables.json").read_text())
    assert [c["claim"] for c in doc["checks"] if not c["held"]] == []
    c = doc["data"]["configs"]
    spaces = doc["data"]["spaces"]
    assert c["linear 32-bit"]["totals"] == [n * (4 << 20) for n in spaces]
    ml48 = c["multilevel 48-bit (4 levels, x86-64)"]
    assert ml48["growth"] == sorted(ml48["growth"]) and ml48["growth"][-1] > ml48["growth"][0]  # tables follow use
    assert all(w > 0 for cfg in c.values() for w in cfg["walks"])  # every figure came from real walks
    assert (tmp_path / "page-tables.png").read_bytes()[:4] == b"\x89PNG"
