"""`memsim cli` (redis-cli's parsing and printing, one-shot, piped and on a terminal) and `memsim bench cache`."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from memsim.tools.repl import SplitError, format_reply, quote, split_args
from tests.servers import running_server


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="16MiB") as srv:
        yield srv


def cli(server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memsim.tools", "cli", "--target", server.target, *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_split_args_like_sdssplitargs():
    assert split_args('SET k "hello world"') == [b"SET", b"k", b"hello world"]
    assert split_args(r'SET k "a\nb\x41"') == [b"SET", b"k", b"a\nbA"]
    assert split_args(r"SET k 'it\'s'") == [b"SET", b"k", b"it's"]
    with pytest.raises(SplitError, match="followed by a space"):
        split_args("SET k 'it''s'")
    assert split_args("  GET   k  ") == [b"GET", b"k"]
    assert split_args("") == []
    with pytest.raises(SplitError, match="unbalanced"):
        split_args('SET k "open')


def test_replies_print_as_redis_cli_prints_them():
    assert format_reply(None, False) == "(nil)"
    assert format_reply(3, False) == "(integer) 3"
    assert format_reply("OK", False) == "OK"
    assert format_reply(b'a"b\n\x00', False) == quote(b'a"b\n\x00') == '"a\\"b\\n\\x00"'
    assert format_reply([b"a", None, [b"0", [b"k"]]], False) == '1) "a"\n2) (nil)\n3) 1) "0"\n   2) 1) "k"'
    assert format_reply([], False) == "(empty array)"
    assert format_reply([b"a", 1], True) == "a\n1"


@pytest.mark.integration
def test_one_command_from_the_arguments(server):
    assert cli(server, "SET", "greeting", "hello world").stdout == "OK\n"
    assert cli(server, "GET", "greeting").stdout == "hello world\n"  # raw: stdout is a pipe
    assert cli(server, "--no-raw", "GET", "greeting").stdout == '"hello world"\n'
    assert cli(server, "--no-raw", "STRLEN", "greeting").stdout == "(integer) 11\n"
    bad = cli(server, "--no-raw", "INCR", "greeting")
    assert bad.stdout == "(error) ERR value is not an integer or out of range\n" and bad.returncode == 1
    info = cli(server, "INFO", "memory").stdout
    assert info.startswith("# Memory") and "used_memory:" in info


@pytest.mark.integration
def test_host_and_port_flags_binary_values_and_nil_as_redis_cli(server):
    host, port = server.target.rsplit(":", 1)
    base = [sys.executable, "-m", "memsim.tools", "cli", "-h", host, "-p", port]
    assert subprocess.run([*base, "PING"], capture_output=True, text=True, timeout=60).stdout == "PONG\n"
    subprocess.run([*base, "SET", "bin", os.fsdecode(b"\x01\x02\xff")], check=True, capture_output=True,
                   timeout=60)
    got = subprocess.run([*base, "GET", "bin"], capture_output=True, timeout=60).stdout
    assert got == b"\x01\x02\xff\n"  # --raw (a pipe) writes the bytes as they are
    assert subprocess.run([*base, "GET", "nope"], capture_output=True, timeout=60).stdout == b"\n"
    out = cli(server, "--no-raw", stdin="SET q 1\nQUIT\nSET q 2\n")
    assert out.stdout == "OK\n" and cli(server, "GET", "q").stdout == "1\n"


@pytest.mark.integration
def test_commands_from_stdin(server):
    out = cli(server, "--no-raw", stdin='SET a 1\nINCR a\nMGET a nope\nSET "spaced key" x\nGET "spaced key"\n')
    assert out.stdout.splitlines() == ["OK", "(integer) 2", '1) "2"', "2) (nil)", "OK", '"x"']


@pytest.mark.integration
def test_no_server_is_a_clear_message(tmp_path):
    r = subprocess.run([sys.executable, "-m", "memsim.tools", "cli", "--target", "127.0.0.1:1", "--timeout", "2",
                        "GET", "k"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("Could not connect to memsim at 127.0.0.1:1") and not r.stdout


def _read_until(fd: int, marker: bytes, timeout: float = 20.0) -> bytes:
    buf = b""
    end = time.monotonic() + timeout
    while marker not in buf and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return buf


@pytest.mark.integration
def test_interactive_shell_on_a_terminal_keeps_history(server, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "memsim.tools", "cli", "--target", server.target],
                            stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    prompt = f"{server.target}> ".encode()
    try:
        assert prompt in _read_until(leader, prompt)
        os.write(leader, b"SET tty 5\r")
        assert b"OK" in _read_until(leader, prompt)
        os.write(leader, b"INCR tty\r")
        assert b"(integer) 6" in _read_until(leader, prompt)
        os.write(leader, b"GET nope\r")
        assert b"(nil)" in _read_until(leader, prompt)
        os.write(leader, b"INCRBY tty x\r")
        assert b"(error) ERR value is not an integer or out of range" in _read_until(leader, prompt)
        os.write(leader, b"quit\r")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    history = (tmp_path / ".memsim_cli_history").read_text()
    assert "INCR tty" in history and "GET nope" in history


@pytest.mark.integration
@pytest.mark.parametrize("workload", ["uniform", "zipf", "hotset", "scan", "loop"])
def test_bench_cache_reports_throughput_latency_and_hits(server, tmp_path, workload):
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "memsim.tools", "bench", "cache", "--target", server.target,
                        "-p", "2", "-t", "1", "--warmup", "0.5", "-w", workload, "-k", "5000", "-P", "50",
                        "--maxmemory", "150kb", "--maxmemory-policy", "allkeys-lru", "--no-progress",
                        "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ops/s" in r.stdout and "p99" in r.stdout
    rep = json.loads(out.read_text())
    assert rep["ops"] > 0 and rep["errors"] == 0 and rep["gets"] > 0
    assert 0 < rep["hit_ratio"] < 1 and rep["server"]["evicted_keys"] > 0
    # the client's count of hits and the server's keyspace_hits cover the same window
    assert abs(rep["hit_ratio"] - rep["server"]["hit_ratio"]) < 0.02
    assert rep["latency_us"]["p50"] <= rep["latency_us"]["p99"] <= rep["latency_us"]["p99.9"]
    with subprocess.Popen([sys.executable, "-m", "memsim.tools", "cli", "--target", server.target,
                           "CONFIG", "SET", "maxmemory", "0"], stdout=subprocess.DEVNULL) as p:
        p.wait(30)
