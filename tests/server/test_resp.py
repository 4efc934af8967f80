"""The Redis protocol against a real server: redis-py unmodified, raw sockets, bad input (server/resp.py).

Every command here goes through a worker's RESP port; what the gRPC Cache service sees of the same
keyspace is checked with memsim's own client."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time

import pytest
import redis

from memsim.client import Cache, Client
from tests.servers import running_server

pytestmark = pytest.mark.integration

OOM = "OOM command not allowed when used memory > 'maxmemory'."


@pytest.fixture(scope="module")
def server():
    with running_server(cores=2, memory="32MiB", extra=["--max-keys", "20000"]) as srv:
        assert srv.resp_port
        yield srv


@pytest.fixture
def r(server):
    c = redis.Redis(port=server.resp_port, socket_timeout=20)
    c.config_set("maxmemory", 0)
    c.flushall()
    yield c
    c.close()


def raw(server, port: int | None = None) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port or server.resp_port), timeout=20)
    return s


def read_until_closed(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def read_exactly(s: socket.socket, expected: bytes) -> bytes:
    out = b""
    while len(out) < len(expected):
        chunk = s.recv(65536)
        assert chunk, f"closed after {out!r}"
        out += chunk
    return out


def test_redis_py_unmodified_speaks_resp3(r, caplog):
    with caplog.at_level(logging.WARNING, logger="redis"):
        assert r.set("k", "v") is True and r.get("k") == b"v"
        assert r.connection_pool.get_connection().protocol == 3  # HELLO 3 was answered, no fallback
    assert not [m for m in caplog.messages if "HELLO" in m]
    assert r.mset({"a": "1", "b": "2"}) is True and r.mget("a", "nope", "b") == [b"1", None, b"2"]
    assert r.incr("a", 5) == 6 and r.exists("a", "b", "c") == 2 and r.delete("b") == 1
    assert r.set("a", "x", nx=True) is None and r.set("n", "1", ex=100) and 0 < r.ttl("n") <= 100
    assert r.config_get("maxmemory*")["maxmemory-policy"] == "noeviction"
    assert r.config_get("save") == {"save": ""} and r.config_get("appendonly") == {"appendonly": "no"}
    info = r.info()
    assert info["redis_version"] and info["connected_clients"] >= 1 and info["total_connections_received"] >= 1
    assert info["total_net_input_bytes"] > 0 and info["total_net_output_bytes"] > 0
    assert r.info("keyspace")["db0"]["keys"] == 3
    cursor, keys = r.scan(0, count=1000)
    assert cursor == 0 and sorted(keys) == [b"a", b"k", b"n"]
    assert sorted(r.scan_iter(match="[ak]")) == [b"a", b"k"]
    assert r.client_setname("me") and r.client_getname() == "me" and r.client_id() > 0
    assert any(c["name"] == "me" and c["lib-name"] == "redis-py" for c in r.client_list())
    assert r.ping() and r.echo("hi") == b"hi" and r.dbsize() == 3


def test_redis_py_on_resp2_and_the_pipeline(server):
    c = redis.Redis(port=server.resp_port, protocol=2)
    try:
        p = c.pipeline(transaction=False)
        for i in range(100):
            p.set(f"p{i}", i)
        p.incr("p7").get("p7").mget("p1", "p2", "nope").incr("p1", "x")
        got = p.execute(raise_on_error=False)
        assert got[:100] == [True] * 100 and got[100:103] == [8, b"8", [b"1", b"2", None]]
        assert isinstance(got[103], redis.ResponseError)
        assert c.config_get("maxmemory") == {"maxmemory": "0"} and c.info("clients")["connected_clients"] >= 1
    finally:
        c.flushall()
        c.close()


def test_errors_carry_redis_texts(r):
    r.set("s", "text")
    for args, text in [(("INCR", "s"), "value is not an integer or out of range"),
                       (("SET", "x"), "wrong number of arguments for 'set' command"),
                       (("NOPE", "a"), "unknown command 'NOPE', with args beginning with: 'a'"),
                       (("SET", "a", "b", "PX", "0"), "invalid expire time in 'set' command"),
                       (("SELECT", "1"), "DB index is out of range"),
                       (("CLIENT", "NOPE"), "unknown subcommand 'NOPE'. Try CLIENT HELP.")]:
        with pytest.raises(redis.ResponseError, match="^" + text.replace("(", r"\(").replace(")", r"\)")):
            r.execute_command(*args)
    assert r.execute_command("SELECT", "0") in (b"OK", True, "OK")
    r.config_set("maxmemory", 1)
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError, match="command not allowed"):
            r.set("big", "x" * 1000)
    finally:
        r.config_set("maxmemory", 0)
    with pytest.raises(redis.ResponseError, match="NOPROTO"):
        r.execute_command("HELLO", "4")


def test_resp_and_grpc_share_one_keyspace(server, r):
    r.set("from-resp", "1")
    with Cache(server.target) as c:
        assert c.get("from-resp") == b"1"
        c.set("from-grpc", "2")
    assert r.get("from-grpc") == b"2"
    for core in range(2):  # and each core's own port reaches the same keys
        rc = redis.Redis(port=server.resp_port + 1 + core)
        assert rc.get("from-grpc") == b"2"
        rc.close()


def test_info_names_the_redis_protocol_port(server, r):
    info = r.info("server")
    assert info["tcp_port"] == server.resp_port and info["memsim_grpc_port"] == server.port


def test_pipelined_plain_commands_mixed_with_new_keys_and_others_answer_in_order(r):
    """A read's plain GETs and SETs run compiled (sim/cache/batch.py) until one it declines (a new key, a new
    length) or another command; those run the ordinary way, and every reply comes back in order."""
    model: dict[str, bytes] = {}
    expected: list[object] = []
    with r.pipeline(transaction=False) as p:
        for i in range(60):
            key, value = f"pk{i % 9}", b"v" * (1 + i % 4)
            p.set(key, value)
            model[key] = value
            expected.append(True)
            p.get(f"pk{(i * 5) % 11}")
            expected.append(model.get(f"pk{(i * 5) % 11}"))
            if i % 7 == 0:
                p.incr("n")
                expected.append(i // 7 + 1)
        assert p.execute() == expected


def test_inline_pipelined_and_split_requests(server, r):
    s = raw(server)
    s.sendall(b"PING\r\nSET i \"a b\"\r\nGET i\r\n")
    assert read_exactly(s, b"+PONG\r\n+OK\r\n$3\r\na b\r\n") == b"+PONG\r\n+OK\r\n$3\r\na b\r\n"
    many = b"".join(b"*3\r\n$3\r\nSET\r\n$2\r\nk%d\r\n$1\r\n%d\r\n" % (i % 10, i % 10) for i in range(500))
    s.sendall(many + b"*2\r\n$3\r\nGET\r\n$2\r\nk3\r\n")
    want = b"+OK\r\n" * 500 + b"$1\r\n3\r\n"
    assert read_exactly(s, want) == want  # in order, one reply per command
    frame = b"*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$10\r\n0123456789\r\n"
    for b in frame:  # one byte a write: the parser resumes, nothing runs twice
        s.sendall(bytes([b]))
        time.sleep(0.001)
    assert read_exactly(s, b"+OK\r\n") == b"+OK\r\n" and r.get("split") == b"0123456789"
    s.sendall(b"QUIT\r\nPING\r\n")
    assert read_until_closed(s) == b"+OK\r\n"  # QUIT answers, closes, and nothing after it runs


def test_empty_multibulk_commands_are_skipped(server):
    """Redis skips "*0"; here it once reached the dispatcher as a command with no name, whose exception
    closed the connection without a reply."""
    for frame in (b"*0\r\n*1\r\n$4\r\nPING\r\n", b"*1\r\n$4\r\nPING\r\n*0\r\n", b"*0\r\n"):
        s = raw(server)
        s.sendall(frame + b"*2\r\n$4\r\nECHO\r\n$3\r\nend\r\n")
        want = b"+PONG\r\n" * frame.count(b"PING") + b"$3\r\nend\r\n"
        assert read_exactly(s, want) == want
        s.close()


BAD = [
    (b"*1\r\n$2147483648\r\n", b"invalid bulk length"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (64 << 20), b"invalid bulk length"),
    (b"*99999999999\r\n", b"invalid multibulk length"),
    (b"*2000000000\r\n", b"invalid multibulk length"),  # within hiredis's limit: it would calloc 16 GB
    (b"*2\r\n$3\r\nGET\r\n:5\r\n", b"expected '$', got ':'"),
    (b"*1" + b"9" * 70_000, b"too big mbulk count string"),
    (b"x" * 70_000, b"too big inline request"),
    (b'SET k "unterminated\r\n', b"unbalanced quotes in request"),
    # binary junk: unknown commands, as in Redis, until a line with an unbalanced quote
    (b"\x00\xff\x80*\r\n$\x01\x02\n" * 1000 + b"\xfe\"\x81\r\n", b"unbalanced quotes in request"),
]


def test_bad_input_gets_a_protocol_error_and_a_closed_connection(server, r):
    r.set("keep", "me")
    for _ in range(3):  # a storm: every bad frame, several times, on fresh connections
        for frame, message in BAD:
            s = raw(server)
            s.sendall(b"*2\r\n$4\r\nECHO\r\n$2\r\nok\r\n" + frame)
            try:
                got = read_until_closed(s)
            except TimeoutError:
                raise AssertionError(f"no close after {frame[:40]!r}") from None
            assert got.startswith(b"$2\r\nok\r\n") and got.endswith(b"-ERR Protocol error: " + message + b"\r\n"), \
                (frame[:40], got[-200:])
            s.close()
    assert sorted(server.alive_workers()) == sorted(server.worker_pids)  # no core died or restarted
    assert r.get("keep") == b"me" and r.dbsize() == 1
    with Client(server.target) as c:
        st = c.stats(check_heap=True)
        assert st.heap_problems == []
    stats = r.info("stats")
    assert stats["total_connections_received"] >= 3 * len(BAD)


def test_unfinished_requests_count_and_free_nothing(server, r):
    """A client that disconnects mid-value leaves nothing behind: the keyspace never saw the command."""
    for _ in range(20):
        s = raw(server)
        s.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$1000000\r\n" + b"x" * 500_000)
        s.close()
    r.set("after", "1")
    assert r.get("half") is None and r.get("after") == b"1"


def test_a_client_that_never_reads_cannot_grow_the_worker(server, r):
    r.set("big", b"x" * (1 << 20))
    def rss() -> int:
        total = 0
        for pid in server.worker_pids:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024
        return total

    before = rss()
    s = raw(server)
    s.setblocking(False)
    sent, request = 0, b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 8
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sent < 2000:  # 2000 x 8 MiB of replies if the server kept them all
        try:
            s.send(request)
            sent += 1
        except BlockingIOError:
            time.sleep(0.05)
    time.sleep(0.5)
    grown = rss() - before
    assert grown < 200 << 20, f"the workers grew by {grown >> 20} MiB for a client that reads nothing"
    assert r.ping() and r.get("keep-going") is None  # the core still serves everyone else
    s.close()


def test_one_read_of_unbudgeted_replies_stops_at_the_output_buffer_limit():
    """CLIENT LIST's reply grows with the connections: 5000 of them in one read, with 150 clients on the
    core, are ~280 MB of replies. The read stops at the output buffer limit (64 MiB) and the connection
    is closed, as Redis's client-output-buffer-limit closes it; the worker's peak RSS never takes the rest."""
    def peak(pid: int) -> int:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024

    with running_server(cores=1, memory="16MiB") as srv:
        port = srv.resp_port + 1  # core 0's own port
        held = [raw(srv, port) for _ in range(150)]
        for h in held:
            h.sendall(b"CLIENT SETNAME padded-" + b"n" * 40 + b"\r\n")
            assert read_exactly(h, b"+OK\r\n") == b"+OK\r\n"
        worker = srv.worker_pids[0]
        before = peak(worker)
        s = raw(srv, port)
        s.sendall(b"CLIENT LIST\r\n" * 5000)
        got = read_until_closed(s)
        assert len(got) < 5000 * 150 * 200  # closed before all of them were answered
        grown = peak(worker) - before
        assert grown < 160 << 20, f"the worker's peak grew by {grown >> 20} MiB for one read"
        held[0].sendall(b"PING\r\n")
        assert read_exactly(held[0], b"+PONG\r\n") == b"+PONG\r\n"  # the core goes on
        for h in held:
            h.close()


def test_maxclients_refuses_with_redis_text():
    with running_server(cores=1, memory="16MiB", extra=["--maxclients", "2"]) as srv:
        held = [raw(srv), raw(srv)]
        for s in held:
            s.sendall(b"PING\r\n")
            assert read_exactly(s, b"+PONG\r\n") == b"+PONG\r\n"
        third = raw(srv)
        assert read_until_closed(third) == b"-ERR max number of clients reached\r\n"
        for s in held:
            s.close()
        time.sleep(0.2)
        c = redis.Redis(port=srv.resp_port, protocol=2)
        stats, clients = c.info("stats"), c.info("clients")
        assert stats["rejected_connections"] == 1 and clients["connected_clients"] == 1
        assert clients["maxclients"] == 2
        c.close()


def test_no_resp_serves_grpc_only():
    with running_server(cores=1, memory="16MiB", resp=False) as srv:
        assert srv.resp_port is None
        assert any("resp off" in line for line in srv.output)


def test_a_taken_resp_port_stops_the_server_with_the_reason():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "memsim.tools", "serve", "--port", "0", "--resp-port", str(port),
                            "--cores", "1", "--memory", "16MiB"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"Redis-protocol ports {port}..{port + 1} are not all free" in r.stderr


@pytest.mark.integration
def test_a_killed_core_keeps_its_ports_and_its_successor_answers_what_waited():
    """The supervisor binds every core's RESP sockets before forking and keeps them (server/listeners.py):
    while core 0 is dead its own port stays taken (no other socket on the host can get it, as a client's
    ephemeral port once did, making the restart fail for a minute), a client that connects meanwhile waits
    in the backlog, and the core forked again answers it on the same socket."""
    import os
    import signal

    with running_server(cores=2, memory="16MiB") as srv:
        assert srv.resp_port is not None
        own = srv.resp_port + 1  # core 0's
        os.kill(srv.worker_pids[0], signal.SIGKILL)
        probe = socket.socket()
        try:
            with pytest.raises(OSError):
                probe.bind(("127.0.0.1", own))
        finally:
            probe.close()
        with socket.create_connection(("127.0.0.1", own), timeout=60) as c:
            c.sendall(b"PING\r\n")
            assert c.recv(16) == b"+PONG\r\n"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("restarted as pid" in line for line in srv.output):
            time.sleep(0.05)
        assert any("restarted as pid" in line for line in srv.output), "".join(srv.output)
        assert redis.Redis(port=own).set("after", "1") and redis.Redis(port=srv.resp_port).get("after") == b"1"
