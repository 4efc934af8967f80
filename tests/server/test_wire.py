"""The wire layer of a worker against real servers: request bytes that do not decode, reply
budgets (no request may make a core build a reply it cannot send), and stream limits (idle
streams, streams that never read, a core's reserve for unary calls and health checks)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import grpc
import msgpack
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from memsim.client import AsyncClient, Cache, Client, ResourceExhausted, VMClient
from memsim.server.limits import MAX_REPLY_BYTES, MAX_STREAMS, PENDING_REPLY_BYTES
from memsim.v1 import cache_pb2, machine_pb2, machine_pb2_grpc, vm_pb2
from tests.servers import running_server

pytestmark = pytest.mark.integration  # every test here starts a server

MiB = 1 << 20
JUNK = [b"\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x08", b"\x12\x05ab"]  # bad tag, bad length, cut varint, short field


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError(f"no Threads for {pid}")


def core_channel(srv, core: int = 0) -> grpc.Channel:
    return grpc.insecure_channel(f"{srv.host}:{srv.port + 1 + core}",
                                 options=[("grpc.max_receive_message_length", 64 * MiB)])


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _literal(name: bytes, value: bytes) -> bytes:  # HPACK: literal field, not indexed, no Huffman
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def _headers(srv, path: str) -> bytes:
    return b"".join(_literal(n, v) for n, v in [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
        (b":authority", srv.host.encode()), (b"content-type", b"application/grpc"), (b"te", b"trailers")])


def _message(request: bytes) -> bytes:  # gRPC's length-prefixed message
    return b"\x00" + len(request).to_bytes(4, "big") + request


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the server closed the connection during the handshake"
        data += chunk
    return data


def _read_frame(sock: socket.socket) -> tuple[int, int, int]:
    """(type, flags, stream) of the next frame, its payload read and dropped."""
    header = _read_exactly(sock, 9)
    _read_exactly(sock, int.from_bytes(header[:3], "big"))
    return header[3], header[4], int.from_bytes(header[5:9], "big") & 0x7FFFFFFF


def silent_connection(srv, core: int = 0) -> socket.socket:
    """A bare HTTP/2 connection (RFC 9113) whose client, once it has acknowledged the server's
    SETTINGS, never grants flow-control window: the server can send it 64 KiB, no more."""
    sock = socket.create_connection((srv.host, srv.port + 1 + core))
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b""))  # preface, our empty SETTINGS
    while True:  # the server's frames up to its SETTINGS, which must be acknowledged (RFC 9113 6.5.3)
        kind, flags, _ = _read_frame(sock)
        if kind == 4 and not flags & 1:
            sock.sendall(_frame(4, 1, 0, b""))
            return sock


def silent_stream(srv, path: str, request: bytes, core: int = 0) -> socket.socket:
    """A gRPC stream on a silent connection: one request sent, and once the first bytes of its
    reply have come (the server has built it), the stream left open and its window shut."""
    sock = silent_connection(srv, core)
    sock.sendall(_frame(1, 4, 1, _headers(srv, path)) + _frame(0, 0, 1, _message(request)))  # HEADERS, DATA
    while _read_frame(sock)[0] != 0:  # up to the first DATA frame of the reply
        pass
    return sock


def all_methods() -> list[tuple[str, bool, bool]]:
    """(full method path, client streams, server streams) of every method a worker serves."""
    out = []
    for pb in (machine_pb2, cache_pb2, vm_pb2, health_pb2, reflection_pb2):
        for service in pb.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                out.append((f"/{service.full_name}/{m.name}", m.client_streaming, m.server_streaming))
    return out


@pytest.fixture(scope="module")
def server():
    with running_server(cores=1, memory="192MiB", extra=["--vm-memory", "64MiB", "--scavenge-period", "3600"]) as srv:
        yield srv


# -- requests that do not decode --------------------------------------------------------------

def test_undecodable_request_bytes_are_invalid_argument_on_every_method(server):
    methods = all_methods()
    assert len(methods) >= 26  # Machine 7, Cache 2, VM 14, Health (Check, Watch, ...), Reflection 1
    with core_channel(server) as ch:
        for path, client_streams, server_streams in methods:
            for junk in JUNK:
                if client_streams:
                    call = ch.stream_stream(path)(iter([junk]), timeout=10)
                    with pytest.raises(grpc.RpcError) as ei:
                        list(call)
                elif server_streams:
                    with pytest.raises(grpc.RpcError) as ei:
                        list(ch.unary_stream(path)(junk, timeout=10))
                else:
                    with pytest.raises(grpc.RpcError) as ei:
                        ch.unary_unary(path)(junk, timeout=10)
                e = ei.value
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, junk, e.code(), e.details())
                assert "not a valid" in e.details(), (path, e.details())
        # and the core still serves
        health = health_pb2_grpc.HealthStub(ch)
        serving = health_pb2.HealthCheckResponse.SERVING
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == serving


def test_a_stream_refuses_junk_after_good_requests(server):
    good = machine_pb2.OpBatch(seq=1, kind=[machine_pb2.ALLOC], size=[64]).SerializeToString()
    with core_channel(server) as ch:
        call = ch.stream_stream("/memsim.v1.Machine/Batch")(iter([good, b"\xff"]), timeout=10)
        first = machine_pb2.BatchReply.FromString(next(call))
        assert first.seq == 1 and first.address[0]
        with pytest.raises(grpc.RpcError) as ei:
            next(call)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "OpBatch" in ei.value.details()
    with Client(server.target, core=0, timeout=10) as c:
        c.free(first.address[0])


# -- reply budgets --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_value(server):
    """A 16 MiB value stored under b"big" (the keyspace's largest)."""
    with Cache(server.target, core=0, timeout=30) as r:
        r.set("big", b"v" * (16 * MiB))
        yield r
        r.delete("big")


def test_mget_of_a_big_value_many_times_is_refused_before_it_copies(server, big_value):
    pid = server.worker_pids[0]
    before = vm_rss_kib(pid)
    with core_channel(server) as ch:
        command = ch.unary_unary("/memsim.v1.Cache/Command")
        req = cache_pb2.CommandRequest(args=[b"MGET"] + [b"big"] * 8).SerializeToString()
        assert len(req) < 50  # a 46-byte request ...
        for _ in range(8):
            with pytest.raises(grpc.RpcError) as ei:
                command(req, timeout=30)
            e = ei.value
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            # ... names the size it would have built and the limit, and builds nothing
            assert str(8 * 16 * MiB) in e.details() and str(MAX_REPLY_BYTES) in e.details(), e.details()
    assert vm_rss_kib(pid) - before < 64 * 1024, "the refused MGETs grew the worker"
    assert big_value.strlen("big") == 16 * MiB
    # a reply's bytes are given back once it has gone: one GET after another never runs out
    for _ in range(2 * PENDING_REPLY_BYTES // (16 * MiB)):
        assert len(big_value.get("big")) == 16 * MiB


def test_commands_that_return_stored_values_are_budgeted(server, big_value):
    with Cache(server.target, core=0, timeout=30) as r:
        assert len(r.mget(["big", "nope"])) == 2  # 16 MiB fits one reply
        p = r.pipeline()
        p.get("big")
        p.get("big")  # 32 MiB of values: the second is refused, the pipeline goes on
        p.strlen("big")
        got = p.execute(raise_on_error=False)
        assert len(got[0]) == 16 * MiB and isinstance(got[1], ResourceExhausted) and got[2] == 16 * MiB
        assert "16777216" in str(got[1]) and str(MAX_REPLY_BYTES) in str(got[1])
        r.set("big2", b"w" * (16 * MiB))
        p = r.pipeline()
        p.get("big")
        p.getdel("big2")  # refused before it deletes: the value is not lost
        got = p.execute(raise_on_error=False)
        assert isinstance(got[1], ResourceExhausted)
        assert r.strlen("big2") == 16 * MiB
        assert r.delete("big2") == 1


def test_vm_load_and_batch_and_allocator_read_are_budgeted(server):
    with VMClient(server.target, core=0, timeout=30) as vm:
        sp = vm.create_space()
        try:
            addr = sp.mmap(30 * MiB)
            with pytest.raises(ResourceExhausted, match=str(MAX_REPLY_BYTES)):
                sp.load(addr, 30 * MiB)
        finally:
            sp.destroy()
    with Client(server.target, core=0, timeout=30) as c:
        a = c.alloc(30 * MiB).address
        try:
            with pytest.raises(ResourceExhausted, match="a read would add 31457280 bytes"):
                c.read(a, 30 * MiB)
        finally:
            c.free(a)


# -- streams --------------------------------------------------------------------------------

def _open_batch_stream(ch: grpc.Channel, requests: list[bytes]):
    """A raw Machine.Batch stream that sends `requests` and then stays open without reading."""
    gate = threading.Event()

    def gen():
        yield from requests
        gate.wait()

    return ch.stream_stream("/memsim.v1.Machine/Batch")(gen(), timeout=120), gate


def test_idle_streams_cannot_take_a_core_from_unary_calls_and_health():
    with running_server(cores=1, memory="8MiB") as srv, core_channel(srv) as ch:
        alloc = machine_pb2.OpBatch(seq=1, kind=[machine_pb2.ALLOC], size=[8]).SerializeToString()
        streams = []
        try:
            for _ in range(MAX_STREAMS):
                call, gate = _open_batch_stream(ch, [alloc])
                next(call)  # admitted and answered; now idle, holding a server thread
                streams.append((call, gate))
            # one stream too many is refused at once, and says which limit it hit
            extra, extra_gate = _open_batch_stream(ch, [alloc])
            with pytest.raises(grpc.RpcError) as ei:
                next(extra)
            extra_gate.set()
            assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"limit of {MAX_STREAMS} open streams" in ei.value.details()
            # health checks and unary calls still answer, many at once
            health = health_pb2_grpc.HealthStub(ch)
            for _ in range(20):
                assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
                    health_pb2.HealthCheckResponse.SERVING
            with Client(srv.target, core=0, timeout=5) as c:
                a = c.alloc(64)
                c.free(a.address)
        finally:
            for call, gate in streams:
                gate.set()
                call.cancel()


def test_an_idle_stream_is_ended_with_a_clear_status_and_its_threads_end():
    with running_server(cores=1, memory="8MiB", extra=["--stream-idle-timeout", "1"]) as srv, \
            core_channel(srv) as ch:
        pid = srv.worker_pids[0]
        alloc = machine_pb2.OpBatch(seq=1, kind=[machine_pb2.ALLOC], size=[8]).SerializeToString()
        baseline = None
        for round_ in range(3):
            calls = [_open_batch_stream(ch, [alloc]) for _ in range(10)]
            for call, _ in calls:
                next(call)
            for call, gate in calls:
                with pytest.raises(grpc.RpcError) as ei:
                    next(call)  # the server ends it: no request came within a second
                gate.set()
                assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "without a request" in ei.value.details() and "--stream-idle-timeout" in ei.value.details()
            time.sleep(0.5)
            if baseline is None:
                baseline = thread_count(pid)
            assert thread_count(pid) <= baseline + 2, f"round {round_}: threads leak"
        # the client library opens a new stream for a batch after its old one was ended
        with Client(srv.target, core=0, timeout=10) as c:
            b = c.batch()
            b.alloc(8)
            first = b.execute()
            time.sleep(2.5)
            b = c.batch()
            b.free(first[0].address)
            assert b.execute()[0].ok

        async def go() -> None:  # and so does the asyncio client
            async with AsyncClient(srv.target, core=0, timeout=10) as ac:
                b = ac.batch()
                b.alloc(8)
                got = await b.execute()
                await asyncio.sleep(2.5)
                b = ac.batch()
                b.free(got[0].address)
                assert (await b.execute())[0].ok

        asyncio.run(go())


def test_streams_that_never_read_leave_the_worker_bounded():
    """Twenty streams each asking for a 24 MiB reply and never reading it: the core holds at most
    its pending-reply allowance; the rest of the reads are refused, naming that limit."""
    with running_server(cores=1, memory="96MiB") as srv:
        pid = srv.worker_pids[0]
        with Client(srv.target, core=0, timeout=30, keep=True) as c:
            objs = [c.alloc(12 * MiB).address for _ in range(2)]
            for a in objs:
                c.write(a, b"x" * (12 * MiB))
        before = vm_rss_kib(pid)
        read = machine_pb2.OpBatch(seq=1, kind=[machine_pb2.READ] * 2, address=objs, size=[12 * MiB] * 2)
        silent = [silent_stream(srv, "/memsim.v1.Machine/Batch", read.SerializeToString()) for _ in range(20)]
        try:
            time.sleep(3)  # let the core build what it will
            grown_mib = (vm_rss_kib(pid) - before) / 1024
            # what the allowance lets it hold (each reply also exists serialised and in gRPC's
            # buffers), far from the 20 x 24 MiB asked for
            assert grown_mib < 4 * PENDING_REPLY_BYTES / MiB, f"worker grew {grown_mib:.0f} MiB"
            with Client(srv.target, core=0, timeout=10) as c:  # and it still serves
                assert c.info().core == 0
                res = c.batch()
                res.read(objs[0], 12 * MiB)
                out = res.execute()
                assert not out[0].ok and "not yet taken by their clients" in str(out[0].error)
        finally:
            for sock in silent:
                sock.close()
        with Client(srv.target, core=0, timeout=30) as c:
            for a in objs:
                c.free(a)


def test_pipeline_replies_are_msgpack_of_the_values(server, big_value):
    """The budgeted path returns exactly what the plain one did."""
    with core_channel(server) as ch:
        req = cache_pb2.CommandBatch(seq=1, args=[b"GET", b"big", b"STRLEN", b"big"], argc=[2, 2])
        reply = cache_pb2.ReplyBatch.FromString(next(ch.stream_stream("/memsim.v1.Cache/Pipeline")(
            iter([req.SerializeToString()]), timeout=30)))
        assert msgpack.unpackb(reply.replies) == [b"v" * (16 * MiB), 16 * MiB]


def test_a_stream_whose_client_takes_no_reply_is_cancelled_and_gives_its_reply_back():
    idle = 10  # long enough for a loaded host to build the three replies before the first is cancelled
    with running_server(cores=1, memory="96MiB", extra=["--stream-idle-timeout", str(idle)]) as srv:
        with Client(srv.target, core=0, timeout=30, keep=True) as c:
            objs = [c.alloc(12 * MiB).address for _ in range(2)]
        read = machine_pb2.OpBatch(seq=1, kind=[machine_pb2.READ] * 2, address=objs, size=[12 * MiB] * 2)
        t0 = time.monotonic()
        stalled = [silent_stream(srv, "/memsim.v1.Machine/Batch", read.SerializeToString()) for _ in range(3)]
        try:
            with Client(srv.target, core=0, timeout=10) as c:
                def big_read_refused() -> bool:
                    b = c.batch()
                    b.read(objs[0], 12 * MiB)
                    out = b.execute()
                    assert out[0].ok or "not yet taken by their clients" in str(out[0].error)
                    return not out[0].ok

                # the core holds the three replies nobody takes, up to its allowance, and refuses more ...
                assert big_read_refused() and time.monotonic() - t0 < idle, "the core did not fill its allowance"
                # ... until those streams are cancelled, idle seconds after their send began
                deadline = time.monotonic() + 4 * idle
                while big_read_refused():
                    assert time.monotonic() < deadline, "the stalled streams kept their replies"
                    time.sleep(0.2)
        finally:
            for sock in stalled:
                sock.close()
        with Client(srv.target, core=0, timeout=30) as c:
            for a in objs:
                c.free(a)


def test_a_connection_cannot_keep_more_calls_open_than_the_limit():
    """Twenty thousand unary calls opened on one connection whose client reads nothing: the
    server keeps no more than its per-connection limit, drops the connection, and goes on."""
    with running_server(cores=1, memory="16MiB") as srv:
        pid = srv.worker_pids[0]
        before = vm_rss_kib(pid)
        sock = silent_connection(srv)
        headers = _headers(srv, "/memsim.v1.Cache/Command")
        ping = _message(cache_pb2.CommandRequest(args=[b"PING", b"x" * 1000]).SerializeToString())
        sent = 0
        try:
            for first in range(0, 20_000, 500):
                sock.sendall(b"".join(_frame(1, 4, 2 * i + 1, headers) + _frame(0, 1, 2 * i + 1, ping)  # END_STREAM
                                      for i in range(first, first + 500)))
                sent += 500
        except OSError:  # the server closed the connection: what was asked
            pass
        time.sleep(2)
        grown_mib = (vm_rss_kib(pid) - before) / 1024
        sock.close()
        assert grown_mib < 48, f"{sent} calls sent, worker grew {grown_mib:.0f} MiB"
        with Cache(srv.target, core=0, timeout=10) as r:
            assert r.ping()


# -- errors while a reply is built ----------------------------------------------------------------

class _BrokenReplies(machine_pb2_grpc.MachineServicer):
    """Replies that cannot be built (a negative count for an unsigned field), outside any try."""

    def GetInfo(self, request, context):
        return machine_pb2.MachineInfo(cores=-1)

    def Batch(self, request_iterator, context):
        for req in request_iterator:
            yield machine_pb2.BatchReply(seq=req.seq, core=-1)


@pytest.mark.parametrize("wrapped", [True, False])
def test_a_reply_that_cannot_be_built_is_internal_not_unknown(wrapped):
    """Through the wire layer, INTERNAL with the cause; registered as generated, gRPC's UNKNOWN."""
    from concurrent import futures

    from memsim.server.wire import StreamGate, register

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if wrapped:
        register(server, machine_pb2_grpc.add_MachineServicer_to_server, _BrokenReplies(), 0, StreamGate(0))
    else:
        machine_pb2_grpc.add_MachineServicer_to_server(_BrokenReplies(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = machine_pb2_grpc.MachineStub(ch)
            codes = []
            with pytest.raises(grpc.RpcError) as ei:
                stub.GetInfo(machine_pb2.InfoRequest(), timeout=10)
            codes.append(ei.value)
            with pytest.raises(grpc.RpcError) as ei:
                list(stub.Batch(iter([machine_pb2.OpBatch(seq=1)]), timeout=10))
            codes.append(ei.value)
        for e in codes:
            if wrapped:
                assert e.code() == grpc.StatusCode.INTERNAL and "ValueError" in e.details(), e.details()
            else:
                assert e.code() == grpc.StatusCode.UNKNOWN
    finally:
        server.stop(None)


def test_health_and_renewals_answer_while_every_thread_of_a_core_waits_for_it():
    """Unary calls that wait for a busy core hold a pool thread each; enough of them take every
    thread. Health checks and lease renewals never wait for the core, so they run on a pool of their
    own and still answer (else a core busy longer than a lease would see its clients' leases lapse)."""
    from memsim.server.worker import MAX_THREADS
    from tests.servers import lock_waiters, page_heap_locked

    with running_server(cores=1, memory="16MiB") as srv:
        worker = srv.worker_pids[0]
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.port + 1}")
        stub = machine_pb2_grpc.MachineStub(channel)
        with page_heap_locked(worker):
            waiting = [stub.Alloc.future(machine_pb2.AllocRequest(size=1 << 20), timeout=60)
                       for _ in range(MAX_THREADS + 8)]  # one thread holds the core; the rest queue behind it
            deadline = time.monotonic() + 20
            while worker not in lock_waiters():
                assert time.monotonic() < deadline, "the core never waited for the page heap's lock"
                time.sleep(0.05)
            time.sleep(1.0)  # let the others take the pool's threads
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
                health_pb2.HealthCheckResponse.SERVING
            with Client(srv.target, core=0, timeout=5) as c:
                c._renew()  # a keepalive's call: answered, not queued behind the core
        for f in waiting:  # each ends once the core is free again (most with out of memory: 88 MiB asked)
            f.exception(timeout=60)
        channel.close()


def test_small_replies_may_pass_a_full_cores_limit_only_by_their_own_allowance():
    """A small reply goes out while non-reading clients fill the core's allowance, but unread small
    replies (256 calls a connection, any number of connections) cannot grow a worker without bound."""
    from memsim.server.limits import SMALL_REPLIES_BYTES, SMALL_REPLY_BYTES, PendingReplies

    p = PendingReplies(core=0, limit=1 << 20)
    assert p.take(1 << 20, 0)  # the core's whole allowance, taken by a big reply nobody reads
    assert not p.take(SMALL_REPLY_BYTES + 1, 0)  # a big one more is refused
    taken = 0
    while p.take(SMALL_REPLY_BYTES, 0):
        taken += SMALL_REPLY_BYTES
        assert taken <= SMALL_REPLIES_BYTES
    assert taken == SMALL_REPLIES_BYTES
    p.give(SMALL_REPLY_BYTES)
    assert p.take(SMALL_REPLY_BYTES, 0)  # one sent: room for one more
