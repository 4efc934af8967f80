"""The `memsim` command's parser loads no gRPC (it is built before `memsim serve` forks its workers,
and gRPC's threads do not survive a fork), and `python -m memsim.server` points at the command
(the import directions themselves are tests/project/test_imports.py's)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_the_cli_parser_loads_no_grpc():
    code = ("import sys; from memsim.tools.cli import build_parser; build_parser().parse_args(['serve']); "
            "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.integration  # runs `python -m memsim.server` in another process
def test_python_m_memsim_server_names_the_command():
    out = subprocess.run([sys.executable, "-m", "memsim.server", "serve"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "python -m memsim.tools" in out.stderr
