"""Every package directory is shipped: pyproject lists packages explicitly (the import names are
mapped onto sim/, server/, client/, tools/), so a new subpackage missing there would vanish from a
non-editable install (the README's demo command) while every test in a checkout passes."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAPPED = {"sim": "memsim.sim", "server": "memsim.server", "client": "memsim.client", "tools": "memsim.tools"}


def test_every_package_directory_is_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in MAPPED.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    for d in (ROOT / "sim").rglob("*.py"):
        assert (d.parent / "__init__.py").exists(), f"{d.parent} has modules but no __init__.py"
    assert found <= listed, f"not in pyproject's packages: {sorted(found - listed)}"
