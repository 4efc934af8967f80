"""Redis's own tools against memsim's RESP port: redis-cli (one-shot and interactive) and redis-benchmark.

The tools are Debian's redis-tools, installed by bench/redis_peer.py when missing (as root or
with sudo; a machine without apt-get skips these tests with the reason)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from bench.redis_peer import ensure_redis_tools
from tests.servers import running_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tools():
    try:
        return ensure_redis_tools()
    except RuntimeError as e:
        pytest.skip(f"redis-tools cannot be installed here: {e}")


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="32MiB") as srv:
        yield srv


def cli(tools, server, *args: str, stdin: str | None = None) -> str:
    r = subprocess.run([tools[0], "-p", str(server.resp_port), *args], input=stdin, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_redis_cli_commands(tools, server):
    assert cli(tools, server, "FLUSHALL").strip() == "OK"
    assert cli(tools, server, "SET", "k", "hello world").strip() == "OK"
    assert cli(tools, server, "GET", "k").strip() == "hello world"
    assert cli(tools, server, "INCR", "k").strip() == "ERR value is not an integer or out of range"
    assert "maxmemory-policy\nnoeviction" in cli(tools, server, "CONFIG", "GET", "maxmemory-policy")
    assert cli(tools, server, "SCAN", "0").split() == ["0", "k"]
    info = cli(tools, server, "INFO")
    for line in ("# Clients", "connected_clients:", "total_connections_received:", "total_net_input_bytes:",
                 "rejected_connections:", "db0:keys=1"):
        assert line in info
    # commands from standard input, one a line, as redis-cli runs a script; and RESP3 with -3
    assert cli(tools, server, stdin="SET a 1\nINCRBY a 41\nGET a\n").split() == ["OK", "42", "42"]
    assert cli(tools, server, "-3", "CONFIG", "GET", "save").split() == ["save"]


def test_redis_cli_interactive(tools, server):
    """redis-cli on a terminal: it asks COMMAND DOCS for its hints, then runs what is typed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: redis-cli on the pty
        # TERM=dumb: linenoise reads plain lines instead of asking the terminal where its cursor is
        os.execve(tools[0], [tools[0], "-p", str(server.resp_port)], {**os.environ, "TERM": "dumb"})
    out = b""

    def until(text: bytes, timeout: float = 20) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while text not in out:
            assert time.monotonic() < deadline, f"redis-cli never printed {text!r}: {out[-500:]!r}"
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break

    try:
        until(b"> ")
        os.write(fd, b"SET greeting hi\r")
        until(b"OK")
        os.write(fd, b"GET greeting\r")
        until(b'"hi"')
        os.write(fd, b"DBSIZE\r")
        until(b"(integer)")
        os.write(fd, b"quit\r")
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out[-500:]
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@pytest.mark.parametrize("pipeline", [1, 16])
def test_redis_benchmark_runs_to_the_end(tools, server, pipeline):
    r = subprocess.run([tools[1], "-p", str(server.resp_port), "-t", "set,get", "-n", "2000", "-q",
                        "-P", str(pipeline), "-r", "1000", "-d", "16"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in r.stdout.replace("\r", "\n").splitlines() if "requests per second" in line]
    assert [line.split(":")[0] for line in lines] == ["SET", "GET"], r.stdout
    assert "WARN" not in r.stderr and "ERROR" not in r.stderr, r.stderr  # it read CONFIG GET save/appendonly
    keys = cli(tools, server, "DBSIZE").strip()
    assert 0 < int(keys) <= 1000 + 2


def test_redis_benchmark_inline_ping(tools, server):
    r = subprocess.run([tools[1], "-p", str(server.resp_port), "-t", "ping", "-n", "2000", "-q", "-P", "4"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and "PING_INLINE" in r.stdout and "PING_MBULK" in r.stdout, r.stdout + r.stderr
