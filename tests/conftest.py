"""Shared by every test: the `machine` fixture, and the check that keeps the unit tests in-process.

A test that starts a real server (tests/servers.py's running_server, `memsim serve` as a
subprocess) or runs the `memsim` program in another process is an integration test and says so:
`@pytest.mark.integration`, or `pytestmark = pytest.mark.integration` when its whole module does.
`pytest -m "not integration"` then runs the unit tests alone. The marking is checked, not trusted:
an audit hook (PEP 578; CPython raises "subprocess.Popen" before every child it starts) refuses to
start `python -m memsim...` or `memsim` from a test without the marker, naming the test.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Sequence

import pytest

from memsim.sim.system import Machine, MachineConfig

MiB = 1 << 20


@pytest.fixture
def machine(request):
    """An 8 MiB, 4-core machine. Parametrize indirectly with a dict to change its config:
    `@pytest.mark.parametrize("machine", [{"per_core_caches": False}], indirect=True)`."""
    overrides = getattr(request, "param", None) or {}
    config = MachineConfig(**{"memory_bytes": 8 * MiB, "cores": 4, **overrides})
    m = Machine.create(config)
    try:
        yield m
    finally:
        m.destroy()


# -- integration tests are marked, and only they may start memsim in another process ----------------

_running: pytest.Item | None = None  # the test whose setup, call or teardown runs now


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Know the running test across its whole protocol: a module-scoped server fixture is set up
    inside the first test that asks for it and torn down inside the last."""
    global _running
    _running = item
    try:
        return (yield)
    finally:
        _running = None


def command_words(argv: str | bytes | os.PathLike | Sequence[str | bytes | os.PathLike]) -> list[str]:
    """A child's command line, word by word, as subprocess.Popen was given it: a sequence, or one
    string; a shell's `-c` script is split into its words too."""
    if isinstance(argv, str | bytes | os.PathLike):
        argv = [argv]
    return [word for arg in argv for word in os.fsdecode(arg).split()]


def runs_memsim(words: list[str]) -> bool:
    """Whether a command line is the memsim program: `python -m memsim.<anything>`, or `memsim`."""
    if words and os.path.basename(words[0]) == "memsim":
        return True
    return any(a == "-m" and (b == "memsim" or b.startswith("memsim.")) for a, b in itertools.pairwise(words))


def _refuse_memsim_outside_integration_tests(event: str, args: tuple) -> None:
    if event != "subprocess.Popen":
        return
    words = command_words(args[1])
    if not runs_memsim(words):
        return
    if _running is not None and _running.get_closest_marker("integration") is not None:
        return
    who = _running.nodeid if _running is not None else "code outside any test (collection?)"
    raise RuntimeError(f"{who} starts the memsim program ({' '.join(words)}) but is not marked integration: "
                       "add @pytest.mark.integration to the test, or `pytestmark = pytest.mark.integration` "
                       "to its module (tests/conftest.py)")


sys.addaudithook(_refuse_memsim_outside_integration_tests)
