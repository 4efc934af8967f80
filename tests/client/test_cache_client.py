"""The cache clients (client/cache.py, client/cache_aio.py) as a redis-py user meets them: constructor
arguments that cannot work here are refused by name, and decoding fails where redis-py's does."""

from __future__ import annotations

import asyncio

import pytest

from memsim.client import AsyncCache, Cache, InvalidArgument, Unavailable
from tests.servers import running_server

CLIENTS = [Cache, AsyncCache]


@pytest.fixture(scope="module")
def server():
    with running_server(cores=1, memory="16MiB", extra=["--max-keys", "1024"]) as srv:
        yield srv


@pytest.mark.parametrize("cls", CLIENTS)
@pytest.mark.parametrize("kw, says", [
    ({"password": "secret"}, "no authentication"),
    ({"username": "ada"}, "no authentication"),
    ({"unix_socket_path": "/tmp/redis.sock"}, "TCP"),
    ({"connection_pool": object()}, "connection pool"),
    ({"ssl": True}, "TLS"),
    ({"ssl_certfile": "c.pem"}, "TLS"),
    ({"retry_on_timeout": True}, "not retried"),
    ({"protocol": 3}, "RESP3"),
    ({"encoding": "no-such-codec"}, "unknown encoding"),
    ({"encoding_errors": "lenient"}, "unknown error handler"),
])
def test_redis_py_arguments_that_cannot_work_here_are_refused_by_name(cls, kw, says):
    name = next(iter(kw))
    with pytest.raises(InvalidArgument, match=f"{name}=.*{says}"):
        cls("127.0.0.1:1", **kw)


@pytest.mark.parametrize("cls", CLIENTS)
def test_unknown_arguments_are_a_type_error_and_harmless_ones_are_accepted(cls):
    def check() -> object:
        with pytest.raises(TypeError, match="decode_response"):
            cls("127.0.0.1:1", decode_response=True)  # a typo must not pass silently
        return cls("127.0.0.1:1", password="", ssl=False, protocol=2, socket_connect_timeout=3, socket_keepalive=True,
                   health_check_interval=30, max_connections=10, client_name="app", retry_on_timeout=False)

    if cls is Cache:
        check().close()
    else:  # an asyncio client is made inside its event loop (its channel belongs to that loop)
        async def in_a_loop() -> None:
            await check().close()

        asyncio.run(in_a_loop())


def test_from_url_refuses_what_it_cannot_honour():
    with pytest.raises(InvalidArgument, match=r"password=.*no authentication"):
        Cache.from_url("redis://:secret@127.0.0.1:6379/0")
    with pytest.raises(InvalidArgument, match="port"):
        Cache.from_url("redis://127.0.0.1:99999/0")
    with pytest.raises(InvalidArgument, match="database"):
        Cache.from_url("redis://127.0.0.1:6379/zero")
    with pytest.raises(TypeError, match="bogus"):
        Cache.from_url("redis://127.0.0.1:6379/0?bogus=1")
    with Cache.from_url("redis://127.0.0.1:6379/0?decode_responses=true&socket_timeout=2") as c:
        assert c.decode_responses is True and c.timeout == 2.0


BINARY = b"\xff\xfe not utf-8"


@pytest.mark.integration
def test_binary_data_under_decode_responses_raises_as_redis_py_does(server):
    with Cache(server.target) as raw:
        raw.flushall()
        raw.set("bin", BINARY)
        raw.set(BINARY, "binary key")
        raw.set("text", "héllo")
    with Cache(server.target, decode_responses=True) as r:
        assert r.get("text") == "héllo"
        for call in (lambda: r.get("bin"), lambda: r.mget("text", "bin"), lambda: r.keys("*"),
                     lambda: r.scan(0, count=100), lambda: r.execute_command("GET", "bin"), lambda: r.getdel("bin")):
            with pytest.raises(UnicodeDecodeError):
                call()
        assert r.get("bin") is None  # GETDEL above ran on the server; only its reply could not be decoded
        r.set("bin", BINARY)
        p = r.pipeline()
        p.get("text").get("bin").set("after", "x")
        with pytest.raises(UnicodeDecodeError):
            p.execute()
        p.get("text").get("bin").get("after")
        out = p.execute(raise_on_error=False)
        assert out[0] == "héllo" and isinstance(out[1], UnicodeDecodeError) and out[2] == "x"
    with Cache(server.target, decode_responses=True, encoding_errors="replace") as r:
        assert r.get("bin") == BINARY.decode("utf-8", "replace")  # redis-py's encoding_errors
    with Cache(server.target, decode_responses=True, encoding="latin-1") as r:
        assert r.get("bin") == BINARY.decode("latin-1")
        r.set("é", "é")
    with Cache(server.target) as raw:
        assert raw.get("é".encode("latin-1")) == "é".encode("latin-1")  # arguments in that encoding too


@pytest.mark.integration
def test_async_binary_data_under_decode_responses_and_a_closed_client(server):
    async def go():
        async with AsyncCache(server.target) as raw:
            await raw.set("bin", BINARY)
        a = AsyncCache(server.target, decode_responses=True)
        with pytest.raises(UnicodeDecodeError):
            await a.get("bin")
        p = a.pipeline()
        p.get("bin")
        with pytest.raises(UnicodeDecodeError):
            await p.execute()
        await a.close()
        with pytest.raises(Unavailable, match="closed"):
            await a.get("bin")
        with pytest.raises(Unavailable, match="closed"):
            await a.pipeline().get("bin").execute()

    asyncio.run(go())


@pytest.mark.integration
def test_a_closed_cache_refuses_pipelines_with_unavailable(server):
    c = Cache(server.target)
    c.close()
    with pytest.raises(Unavailable, match="closed"):
        c.pipeline().get("a").execute()


@pytest.mark.integration
def test_msgpack_codec_on_a_value_that_is_not_msgpack_says_so(server):
    with Cache(server.target) as raw:
        raw.set("plain", b"\xc1")
        raw.set("text", b"hello")
    with Cache(server.target, codec="msgpack") as m:
        for key in ("plain", "text"):
            with pytest.raises(ValueError, match=f"value of '{key}' .* is not msgpack"):
                m.get(key)
        p = m.pipeline()
        p.get("plain").set("x", [1, 2]).get("x")
        out = p.execute(raise_on_error=False)
        assert isinstance(out[0], ValueError) and "not msgpack" in str(out[0]) and out[1:] == [True, [1, 2]]
