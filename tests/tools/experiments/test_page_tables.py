"""`memsim experiment page-tables --quick`: the linear table's 4 MiB per 32-bit space read off real spaces,
the others' smaller cost, and the walk each kind pays, from the VM's counters."""

from __future__ import annotations

from pathlib import Path

from tests.tools.experiments.quick import run_quick


def test_quick_run_measures_every_kind_on_real_spaces(tmp_path: Path) -> None:
    doc = run_quick("page-tables", tmp_path, spaces=0, pages=0, grow=0)
    c = doc["data"]["configs"]
    spaces = doc["data"]["spaces"]
    assert c["linear 32-bit"]["totals"] == [n * (4 << 20) for n in spaces]
    ml48 = c["multilevel 48-bit (4 levels, x86-64)"]
    assert ml48["growth"] == sorted(ml48["growth"]) and ml48["growth"][-1] > ml48["growth"][0]  # tables follow use
    assert all(w > 0 for cfg in c.values() for w in cfg["walks"])  # every figure came from real walks
