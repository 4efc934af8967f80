"""Typed exceptions, one per status code the machine answers with, and the client's one mapping
from a status code to its exception (`from_code`: a batch op's error; `from_rpc_error`: a failed
call). Every client module raises through here; redis-py's names (ResponseError, ConnectionError,
OutOfMemoryError) are aliases of the same classes.

`MemsimError.code` is the grpc.StatusCode; `str(e)` is the server's message, which says what
was asked and what limit or state refused it.
"""

from __future__ import annotations

import grpc


class MemsimError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class ResponseError(MemsimError):
    """The server refused the call (redis-py's name for an error reply): every status below but
    UNAVAILABLE, DEADLINE_EXCEEDED and INTERNAL. `except ResponseError` works as with redis-py."""


class InvalidArgument(ResponseError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ResponseError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ResponseError):
    """Double free, invalid free."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(ResponseError):
    """An access past an object, or outside the heap: the machine's segmentation fault."""

    code = grpc.StatusCode.OUT_OF_RANGE


class ResourceExhausted(ResponseError):
    """Out of memory (the message names the limit), or the server's RPC limit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(MemsimError, ConnectionError):
    """No server there (or the client was closed); also a builtin ConnectionError, as redis-py's is."""

    code = grpc.StatusCode.UNAVAILABLE


class ClientClosed(Unavailable):
    """A call on a client after its close() (or its `with` block): make a new client."""


def client_closed(client: object) -> ClientClosed:
    return ClientClosed(f"this {type(client).__name__} ({getattr(client, 'target', '?')}) is closed; "
                        f"make a new one to go on")


class ServerDown(Unavailable):
    """A sharded client's server that is marked down (client/sharding.py): with failover="strict" its
    keys raise this, without a call, until it answers a retry; `server` is its "host:port"."""

    def __init__(self, message: str, server: str):
        super().__init__(message)
        self.server = server


class DeadlineExceeded(MemsimError, TimeoutError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


OutOfMemoryError = ResourceExhausted  # redis-py's name for the OOM error reply
ConnectionError = Unavailable  # redis-py's name: no server there, or a closed client


class Internal(MemsimError):
    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[MemsimError]] = {
    cls.code: cls
    for cls in (InvalidArgument, NotFound, FailedPrecondition, OutOfRange, ResourceExhausted, Unavailable,
                DeadlineExceeded, Internal)
}
_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def from_code(code: grpc.StatusCode | int, message: str) -> MemsimError:
    if isinstance(code, int):
        code = _BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)
    return _BY_CODE.get(code, MemsimError)(message, code)


def from_rpc_error(e: grpc.RpcError) -> MemsimError:
    return from_code(e.code(), e.details() or str(e))
