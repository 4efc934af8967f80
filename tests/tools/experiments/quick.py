"""Run one registered experiment at its --quick size the way the command does, for the experiments'
tests: the JSON document it wrote, after checking that every claim held and a PNG was drawn."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from memsim.tools.experiments import experiments
from memsim.tools.experiments.base import run_experiment


def run_quick(name: str, out: Path, **flags: Any) -> dict[str, Any]:
    """`memsim experiment NAME --quick --seed 1 --out OUT` with the experiment's own flags (its run
    replaces them by its quick sizes); its JSON document."""
    args = argparse.Namespace(seed=1, quick=True, out=str(out), no_png=False, replot=None, quiet=True,
                              scheduler=None, workers=2, **flags)
    assert run_experiment(experiments()[name], args) == 0
    doc: dict[str, Any] = json.loads((out / f"{name}.json").read_text())
    assert [c["claim"] for c in doc["checks"] if not c["held"]] == []
    assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    return doc
