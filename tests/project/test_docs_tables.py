"""The README names what the tables hold: every maxmemory-policy and CONFIG parameter
(sim/cache/config.py), every replacement policy of the package (sim/policies), every page-table
kind of the package and THP mode (sim/vm/kinds.py). A name added to a table and not to the docs
fails here, so the docs read the same one table as the CLI's choices, the defaults and the config
layer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memsim.sim.cache.config import CONFIG_PARAMS, maxmemory_name
from memsim.sim.cache.evict import REDIS_POLICIES
from memsim.sim.policies import POLICIES
from memsim.sim.vm.kinds import PAGE_TABLES, THP_MODES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def builtin(table: dict[str, type]) -> list[str]:
    """The package's own entries: a policy or a kind a test registers is not the README's to name."""
    return [name for name, cls in table.items() if cls.__module__.startswith("memsim.sim.")]


TABLES = {
    "maxmemory-policy": [*REDIS_POLICIES, *(maxmemory_name(n) for n in builtin(POLICIES))],
    "CONFIG parameter": [p.name for p in CONFIG_PARAMS],
    "replacement policy (--vm-policy)": builtin(POLICIES),
    "page-table kind": builtin(PAGE_TABLES),
    "THP mode": list(THP_MODES),
}


@pytest.mark.parametrize("table", TABLES)
def test_the_readme_names_every_entry(table):
    missing = [n for n in TABLES[table] if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", README)]
    assert not missing, f"README.md does not mention these {table} names: {missing}"
