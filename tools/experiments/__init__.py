"""`memsim experiment NAME`: one command per phenomenon, each writing JSON and a PNG.

Each experiment is one module here with a module-level `EXPERIMENT` (`base.Experiment`); its name
in `MODULES` below makes it a subcommand. Modules import only light things at the top (the
command's parser imports every one of them and must load no gRPC: tests/tools/test_cli_layout.py);
servers, clients and matplotlib are imported inside `run` and `plot`.

To add one: a module with `EXPERIMENT = Experiment(name, help, run, plot, summary, checks,
add_arguments)`, its name in MODULES, and a test in tests/tools/experiments/ that runs it with
`--quick` and asserts its checks.
"""

from __future__ import annotations

import importlib

from memsim.tools.experiments.base import Experiment

MODULES: tuple[str, ...] = ("belady", "thrashing", "page_tables", "thp", "contention", "eviction", "gc")


def experiments() -> dict[str, Experiment]:
    """Every experiment by name, in MODULES' order."""
    found: dict[str, Experiment] = {}
    for module in MODULES:
        exp = importlib.import_module(f"memsim.tools.experiments.{module}").EXPERIMENT
        found[exp.name] = exp
    return found
