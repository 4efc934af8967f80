"""client/rpc.py without a server: one method body serves a blocking and an awaiting client, a
failed call is raised inside the body at its yield, and the client library loads neither the
server nor the simulator."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys

import pytest

from memsim.client.errors import NotFound
from memsim.client.rpc import AsyncRunner, Op, Steps, SyncRunner, Unary, command, unary
from memsim.v1 import machine_pb2 as pb


class Commands:
    log: list[str]

    @command
    def read(self, address: int) -> Steps[bytes]:
        """Read one object."""
        return (yield from unary("Read", pb.ReadRequest(address=address, length=1), pb.ReadReply)).data

    @command
    def read_or_default(self, address: int) -> Steps[bytes]:
        try:
            return (yield from Commands.read.steps(self, address))
        except NotFound:
            self.log.append("not found")
            return b"?"


def answer(op: Op) -> pb.ReadReply:
    assert isinstance(op, Unary) and op.method == "Read"
    if op.request.address == 0:
        raise NotFound("no object at 0x0")
    return pb.ReadReply(data=bytes([op.request.address]))


class Blocking(Commands, SyncRunner):
    def __init__(self) -> None:
        self.log = []

    def _perform(self, op: Op) -> pb.ReadReply:
        return answer(op)


class Awaiting(Commands, AsyncRunner):
    def __init__(self) -> None:
        self.log = []

    async def _perform(self, op: Op) -> pb.ReadReply:
        await asyncio.sleep(0)
        return answer(op)


def test_one_body_serves_a_blocking_and_an_awaiting_client():
    b = Blocking()
    assert b.read(7) == b"\x07" and b.read_or_default(0) == b"?" and b.log == ["not found"]
    with pytest.raises(NotFound):
        b.read(0)

    async def run() -> None:
        a = Awaiting()
        call = a.read(7)
        assert asyncio.iscoroutine(call) and await call == b"\x07"
        assert await a.read_or_default(0) == b"?" and a.log == ["not found"]
        with pytest.raises(NotFound):
            await a.read(0)

    asyncio.run(run())
    assert Commands.read.__doc__ == "Read one object." and b.read.__doc__ == "Read one object."


def test_a_command_looks_like_the_method_it_replaces():
    """help(), IDEs and code that checks before awaiting see a plain method: the caller's
    signature and return type (not the generator's), a coroutine function on the asyncio client,
    and `Class.method(instance, ...)` works as for any method."""
    b, a = Blocking(), Awaiting()
    assert str(inspect.signature(b.read)) == "(address: 'int') -> 'bytes'"
    assert str(inspect.signature(a.read)) == "(address: 'int') -> 'bytes'"
    assert str(inspect.signature(Commands.read)) == "(self, address: 'int') -> 'bytes'"
    assert inspect.iscoroutinefunction(a.read) and not inspect.iscoroutinefunction(b.read)
    assert Blocking.read(b, 9) == b"\x09"
    assert asyncio.run(Awaiting.read(a, 9)) == b"\x09"


def test_the_client_library_imports_neither_the_server_nor_the_simulator():
    code = ("import sys, memsim.client, memsim.client.cache_aio, memsim.client.vm_aio; "
            "print(sorted(m for m in sys.modules if m.startswith(('memsim.server', 'memsim.sim', 'memsim.tools'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
