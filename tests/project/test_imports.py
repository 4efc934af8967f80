"""Data flows one way between memsim's packages, and no module imports itself back.

sim/ is the machine and knows nothing of the wire; server/ serves it (sim and the protos, never the
client); client/ is the library a user imports and talks to a server only through the protos;
tools/ (the CLI, benches, demo, REPL, reports) may import any of them, and nothing imports tools.
A cycle, even through a function-local import, means two modules are one mechanism cut in the
wrong place. Every import statement of every module is read (tests/project/sources.py).
"""

from __future__ import annotations

import ast
from collections import defaultdict

import pytest

from tests.project.sources import PACKAGES, ROOT, Import, Module, all_imports, modules, resolve

# importer's package -> the packages it must not import, and why
FORBIDDEN = {
    "memsim.client": (("memsim.server", "memsim.sim", "memsim.tools"),
                      "the client library talks to a server only through the protos (memsim.v1)"),
    "memsim.sim": (("memsim.server", "memsim.client", "memsim.tools"),
                   "sim/ is the machine: it knows nothing of gRPC, its server, its clients or the tools"),
    "memsim.server": (("memsim.client", "memsim.tools"),
                      "the server imports sim/ and the protos, never the client or the tools"),
}


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_every_package_is_read():
    names = set(modules())
    for package in PACKAGES:
        assert package in names, f"{package}'s __init__.py not found"
    assert len(names) > 50 and len(all_imports()) > 100


@pytest.mark.parametrize("importer", sorted(FORBIDDEN))
def test_imports_go_one_way(importer):
    forbidden, why = FORBIDDEN[importer]
    wrong = [imp for imp in all_imports()
             if within(imp.importer.name, importer) and any(within(imp.target, p) for p in forbidden)]
    if wrong:
        pytest.fail(f"{importer} must import none of {', '.join(forbidden)} ({why}):\n" +
                    "\n".join(f"  {imp}" for imp in wrong), pytrace=False)


def test_nothing_but_tools_imports_tools():
    wrong = [imp for imp in all_imports()
             if within(imp.target, "memsim.tools") and not within(imp.importer.name, "memsim.tools")]
    if wrong:
        pytest.fail("only memsim.tools may import memsim.tools:\n" + "\n".join(f"  {imp}" for imp in wrong),
                    pytrace=False)


def cycles(edges: dict[str, dict[str, Import]]) -> list[list[Import]]:
    """One cycle (as the imports that make it) per strongly connected component of more than one
    module or a module importing itself (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    components.append(component)
    return [shortest_cycle(edges, component) for component in components]


def shortest_cycle(edges: dict[str, dict[str, Import]], component: set[str]) -> list[Import]:
    """The shortest way from the component's first module back to itself, inside the component."""
    start = min(component)
    came_from: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child, imp in sorted(edges[node].items()):
                if child not in component or child in came_from:
                    continue
                came_from[child] = imp
                if child == start:
                    path = [imp]
                    while path[0].importer.name != start:
                        path.insert(0, came_from[path[0].importer.name])
                    return path
                following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_no_import_cycles():
    edges: dict[str, dict[str, Import]] = defaultdict(dict)
    for name in modules():
        edges[name] = {}
    for imp in all_imports():
        if imp.target in edges:
            edges[imp.importer.name].setdefault(imp.target, imp)
    found = cycles(edges)
    if found:
        pytest.fail(f"{len(found)} import cycle(s), each with the imports that close it:\n" + "".join(
            " -> ".join([cycle[0].importer.name, *(imp.target for imp in cycle)]) + "\n" +
            "".join(f"    {imp}\n" for imp in cycle) for cycle in found), pytrace=False)


# -- the checker itself -----------------------------------------------------------------------------

def test_relative_and_local_imports_are_resolved(tmp_path):
    known = {"memsim.sim.cache", "memsim.sim.cache.keyspace", "memsim.sim.vm", "memsim.sim.vm.vm"}
    vm = Module("memsim.sim.vm.vm", tmp_path / "vm.py")
    package = Module("memsim.sim.vm", tmp_path / "__init__.py")

    def targets(module: Module, source: str) -> list[str]:
        return [t for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import | ast.ImportFrom)
                for t in resolve(module, node, known)]

    assert targets(vm, "from ..cache import keyspace") == ["memsim.sim.cache.keyspace"]
    assert targets(vm, "from ..cache.keyspace import Keyspace") == ["memsim.sim.cache.keyspace"]
    assert targets(vm, "from . import vm") == ["memsim.sim.vm.vm"]
    assert targets(package, "from .vm import VM") == ["memsim.sim.vm.vm"]
    assert targets(vm, "def f():\n    import memsim.client.cache\n") == ["memsim.client.cache"]
    assert targets(vm, "if TYPE_CHECKING:\n    from memsim.sim.cache import Keyspace\n") == ["memsim.sim.cache"]


def test_a_cycle_is_found_and_named():
    a, b, c = (Module(f"m.{n}", ROOT / f"{n}.py") for n in "abc")
    edges = {"m.a": {"m.b": Import(a, 1, "m.b")}, "m.b": {"m.c": Import(b, 2, "m.c"), "m.a": Import(b, 3, "m.a")},
             "m.c": {}}
    [cycle] = cycles(edges)
    assert [(imp.importer.name, imp.target) for imp in cycle] == [("m.a", "m.b"), ("m.b", "m.a")]
    assert cycles({"m.a": {"m.b": Import(a, 1, "m.b")}, "m.b": {}}) == []
    assert cycles({"m.c": {"m.c": Import(c, 1, "m.c")}}) != []
