"""memsim.tools sits on top of the other packages: nothing in sim/, server/ or client/ imports it,
server/ does not import the client, and the `memsim` command's parser loads no gRPC (it is built
before `memsim serve` forks its workers, and gRPC's threads do not survive a fork)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
    return names


@pytest.mark.parametrize("package, forbidden", [
    ("sim", "memsim.tools"), ("server", "memsim.tools"), ("client", "memsim.tools"), ("server", "memsim.client"),
])
def test_imports_point_one_way(package, forbidden):
    wrong = {f"{f.relative_to(ROOT)}: {n}" for f in (ROOT / package).rglob("*.py") for n in imported(f)
             if n == forbidden or n.startswith(forbidden + ".")}
    assert not wrong, sorted(wrong)


def test_the_cli_parser_loads_no_grpc():
    code = ("import sys; from memsim.tools.cli import build_parser; build_parser().parse_args(['serve']); "
            "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_python_m_memsim_server_names_the_command():
    out = subprocess.run([sys.executable, "-m", "memsim.server", "serve"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "python -m memsim.tools" in out.stderr
