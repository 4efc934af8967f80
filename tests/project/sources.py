"""memsim's modules as files, and what each imports: read with ast, nothing imported.

Shared by test_imports.py (the directions between packages, no cycles) and test_module_sizes.py.
Every import statement counts: at the top, inside a function (a "hidden" import made to dodge a
cycle is still an edge), and under `if TYPE_CHECKING:` (a type is a dependency too).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# pyproject's [tool.setuptools.package-dir]: the folder each of memsim's packages lives in
PACKAGES = {"memsim.sim": "sim", "memsim.server": "server", "memsim.client": "client", "memsim.tools": "tools"}


@dataclass(frozen=True)
class Module:
    name: str  # memsim.sim.vm.vm; a package is its __init__.py: memsim.sim.vm
    path: Path

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def where(self) -> str:
        return str(self.path.relative_to(ROOT))


@dataclass(frozen=True)
class Import:
    importer: Module
    line: int
    target: str  # the module imported, resolved: `from ..cache import keyspace` -> memsim.sim.cache.keyspace

    def __str__(self) -> str:
        return f"{self.importer.where}:{self.line} ({self.importer.name}) imports {self.target}"


@cache
def modules() -> dict[str, Module]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            found[name] = Module(name, path)
    return found


def resolve(importer: Module, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The modules an import statement names. `from p import x` names p.x when that is a module
    (a submodule imported by name), else p itself (a name defined in p)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = importer.name.split(".")
        if not importer.is_package:
            package = package[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]


def imports_of(module: Module, known: set[str]) -> list[Import]:
    tree = ast.parse(module.path.read_text(), str(module.path))
    found = {Import(module, node.lineno, target)
             for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
             for target in resolve(module, node, known)}
    return sorted(found, key=lambda imp: (imp.line, imp.target))


@cache
def all_imports() -> list[Import]:
    known = set(modules())
    return [imp for module in modules().values() for imp in imports_of(module, known)]
