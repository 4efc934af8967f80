"""The README's samples are run, not just read: every ```python block runs against a real
server (the default machine, as `memsim serve` starts it) with its target substituted, and
every `memsim ...` line of a ```sh block parses, and a `memsim serve` line's machine is valid."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from memsim.tools.cli import build_parser, machine_config
from tests.servers import running_server

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[tuple[int, str]]:
    text = README.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(2)) for m in FENCE.finditer(text) if m.group(1) == lang]


def memsim_commands(block: str) -> list[list[str]]:
    """Each `memsim ...` command of a shell block (continuations joined, comments dropped)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            argv = shlex.split(part, comments=True)
            if argv and (argv[0] == "memsim" or argv[0].endswith("/memsim")):
                out.append(argv[1:])
    return out


@pytest.fixture(scope="module")
def default_server():
    with running_server(cores=4, memory="64MiB") as srv:  # `memsim serve` with no flags
        yield srv


def test_the_readme_has_samples():
    assert len(blocks("python")) >= 5 and sum(len(memsim_commands(b)) for _, b in blocks("sh")) >= 15


@pytest.mark.integration
@pytest.mark.parametrize("line, code", blocks("python"), ids=lambda x: f"line{x}" if isinstance(x, int) else "")
def test_python_sample_runs(default_server, line, code):
    host, port = default_server.target.rsplit(":", 1)
    code = code.replace("127.0.0.1:50051", default_server.target).replace('"127.0.0.1", 50051', f'"{host}", {port}')
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme_sample"})


@pytest.mark.parametrize("line, block", blocks("sh"), ids=lambda x: f"line{x}" if isinstance(x, int) else "")
def test_memsim_commands_parse(line, block):
    parser = build_parser()
    for argv in memsim_commands(block):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README.md:{line}: `memsim {' '.join(argv)}` does not parse")
        if args.cmd == "serve":
            machine_config(args).validate()  # e.g. a --maxmemory above the default machine's heap
