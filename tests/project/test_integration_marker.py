"""The `integration` marker is checked, not trusted (tests/conftest.py): a test without it cannot
start the memsim program, so `pytest -m "not integration"` never starts a server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.servers import running_server


@pytest.mark.parametrize("argv", [
    [sys.executable, "-m", "memsim.server", "serve", "--port", "0"],
    [sys.executable, "-m", "memsim.tools", "--help"],
    ["memsim", "demo"],
    f"{sys.executable} -m memsim.server --help",
])
def test_an_unmarked_test_cannot_start_memsim(argv):
    with pytest.raises(RuntimeError, match=r"test_an_unmarked_test_cannot_start_memsim.* not marked integration"):
        subprocess.Popen(argv, shell=isinstance(argv, str))


def test_an_unmarked_test_cannot_start_a_server():
    with pytest.raises(RuntimeError, match="not marked integration"), running_server(cores=1, memory="4MiB"):
        pass


def test_other_children_are_left_alone():
    assert subprocess.run([sys.executable, "-c", "print('memsim')"], capture_output=True, text=True,
                          check=True).stdout == "memsim\n"
