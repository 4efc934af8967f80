"""How a worker puts its servicers on the wire: every method of every service goes through here.

`register` takes a servicer's generated `add_*Servicer_to_server` and wraps each method handler:

- Undecodable request bytes: gRPC-Python's own deserializer failure answers INTERNAL
  ("Exception deserializing request!", grpc/_server.py `_receive_message`); here the
  deserializer catches the error and the method answers INVALID_ARGUMENT naming the message type.
- Errors: the whole method runs inside the error wrapper, reply building included, so a SimError
  is always its own status code and anything else is INTERNAL (logged), never gRPC's UNKNOWN
  ("Exception calling application").
- Streams (`StreamGate`): at most `MAX_STREAMS` open streams per core, a stream past the limit is
  refused at once with RESOURCE_EXHAUSTED; a stream that sends no request for the idle timeout
  is ended with UNAVAILABLE; a stream whose client has not taken a reply for that long is
  cancelled. The thread pool has `UNARY_THREADS` more threads than streams may hold, so unary
  calls and health checks always find one.

Batches (`batch_stream`, `check_batch_size`, `batch_column`, `run_ops`): the Machine's, the Cache's,
the VM's and the V8's batch streams have one shape. Per request: a reply budget, the core's mutex once, the service's
executor (server/ops.py `execute_batch`, cache_servicer.py `run_commands`, vm_servicer.py
`run_batch`, v8_batch.py `run_batch`), the reply. An executor checks the message (a malformed one ends the stream with
INVALID_ARGUMENT), then runs its ops through `run_ops`: an op's failure is that op's `OpError`
(`op_error`) and the ops after it still run.

Reply memory is budgeted in `limits.py`; `call_budget` and `batch_stream` tie a reply's budget to
the life of the reply on the wire. Status codes are mapped here (`fail`, `op_error`) from the
SimError classes of sim/errors.py plus the server's own `DeadlineExceeded`: a servicer raises
one, it does not abort the call with a code of its own choosing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import grpc

from memsim.server.limits import MAX_STREAMS, STREAM_IDLE_S, PendingReplies, ReplyBudget
from memsim.sim.errors import InvalidArgument, ResourceExhausted, SimError
from memsim.v1 import machine_pb2 as mpb

log = logging.getLogger("memsim.worker")

STATUS = {c.value[0]: c for c in grpc.StatusCode}
_UNKNOWN = grpc.StatusCode.UNKNOWN.value[0]

Req = TypeVar("Req")
Rep = TypeVar("Rep")


class DeadlineExceeded(SimError):
    """The caller's deadline passed (or was too close to reply) before the work was done; the
    work has been undone (server/sessions.py). The server's own error: sim/ never raises it."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


def _status(e: Exception) -> grpc.StatusCode | None:
    """e's own status code: a SimError's, or None (INTERNAL) for anything else."""
    if isinstance(e, SimError) and e.code in STATUS and e.code != _UNKNOWN:
        return STATUS[e.code]
    return None


def fail(context: grpc.ServicerContext, e: Exception, core: int) -> NoReturn:
    """End the call with e's status: a SimError's own code, INTERNAL for anything else. An
    exception raised by context.abort() (its code is already set) or by a cancelled call goes on."""
    # grpc-stubs 1.53 lacks ServicerContext.code(), which grpcio has had since 1.38.
    if isinstance(e, grpc.RpcError) or context.code() is not None:  # type: ignore[attr-defined]
        raise e
    code = _status(e)
    if code is not None:
        context.abort(code, str(e))
    log.error("internal error on core %d", core, exc_info=e)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error on core {core}: {type(e).__name__}: {e}")


def op_error(index: int, e: Exception, core: int) -> mpb.OpError:
    """One op's failure inside a batch or pipeline, as that op's error (the rest of the batch goes
    on): a SimError's own code, INTERNAL (logged) for anything else, as `fail` does for a call."""
    code = _status(e)
    if code is not None:
        return mpb.OpError(index=index, code=code.value[0], message=str(e))
    log.error("internal error on core %d, op %d of a batch", core, index, exc_info=e)
    return mpb.OpError(index=index, code=grpc.StatusCode.INTERNAL.value[0],
                       message=f"internal error on core {core}: {type(e).__name__}: {e}"[:1000])


# -- batches: one shape for the three services -------------------------------------------------

def batch_stream(requests: Iterator[Req], replies: PendingReplies, core_lock: threading.Lock,
                 execute: Callable[[Req, ReplyBudget, float], Rep]) -> Iterator[Rep]:
    """A batch stream's replies, one per request: `execute(request, budget, arrived)` runs under
    the core's mutex, taken once per request; `arrived` is when the request was read, before it
    waited for the mutex. The reply's budget counts against the core's pending replies until gRPC
    asks for the next one (the previous one has been sent). An exception ends the stream with its
    status (the wrapper of `register`)."""
    for req in requests:
        arrived = time.monotonic()
        budget = ReplyBudget(replies)
        try:
            with core_lock:
                reply = execute(req, budget, arrived)
            yield reply
        finally:
            budget.release()


def check_batch_size(n: int, limit: int, what: str = "batch", unit: str = "op") -> None:
    """Refuse a batch message of more than `limit` ops (limits.py) before running any."""
    if n > limit:
        raise InvalidArgument(f"bad {what}: {n} {unit}s is more than the {limit}-{unit} limit")


def batch_column(values: Sequence[int], n: int, name: str, default: int) -> list[int]:
    """A per-op column of a batch message: empty (every op gets `default`) or one entry per op."""
    if len(values) == 0:
        return [default] * n
    if len(values) != n:
        raise InvalidArgument(f"bad batch: {name} has {len(values)} entries for {n} ops (give none or one per op)")
    return list(values)


def run_ops(n: int, op: Callable[[int], None], core: int) -> list[mpb.OpError]:
    """op(0) .. op(n - 1) in order; a failing op becomes its OpError and the rest go on. An op
    fills its own reply slots, so a failed one leaves them as the executor preset them."""
    errors: list[mpb.OpError] = []
    for i in range(n):
        try:
            op(i)
        except Exception as e:  # noqa: BLE001 - one op's failure is its own error; the batch goes on
            errors.append(op_error(i, e, core))
    return errors


# -- requests that do not decode ----------------------------------------------------------------

class Undecodable:
    """Stands for request bytes that are not a valid message, until the method can refuse them."""

    def __init__(self, type_name: str, error: Exception):
        self.message = f"bad request: the bytes are not a valid {type_name} message ({type(error).__name__}: {error})"


def _tolerant(deserialize: Callable[[bytes], Any], type_name: str) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as e:  # noqa: BLE001 - any failure to decode is the caller's bad bytes
            return Undecodable(type_name, e)

    return decode


def _decoded(request: Any) -> Any:
    if isinstance(request, Undecodable):
        raise InvalidArgument(request.message)
    return request


# -- streams --------------------------------------------------------------------------------

_END = object()


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


class _Pump:
    """Reads a gRPC request iterator on its own thread, one request when asked, so that the
    handler can wait for the next request with a timeout (gRPC's iterator has none)."""

    def __init__(self, requests: Iterator[Any], name: str):
        self._requests = requests
        self._asks = threading.Semaphore(0)
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        while True:
            self._asks.acquire()
            if self._closed:
                return
            try:
                item = next(self._requests)
            except StopIteration:
                item = _END
            except BaseException as e:  # noqa: BLE001 - handed to the handler thread
                item = _Raised(e)
            self._items.put(item)
            if item is _END or isinstance(item, _Raised):
                return

    def next(self, timeout: float) -> Any:
        """The next request, _END, a _Raised, or queue.Empty after timeout seconds."""
        self._asks.release()
        return self._items.get(timeout=timeout)

    def close(self) -> None:
        """Let the thread go: at once if it waits to be asked, or when gRPC's iterator returns
        (the call has ended) if it is reading."""
        self._closed = True
        self._asks.release()


class _Stream:
    def __init__(self, context: grpc.ServicerContext):
        self.context = context
        self.sending_since: float | None = None  # a reply handed to gRPC and not yet sent


class StreamGate:
    """One core's open streams: admission, idle timeout, and a watchdog for replies never taken."""

    def __init__(self, core: int, max_streams: int = MAX_STREAMS, idle_s: float = STREAM_IDLE_S):
        self.core = core
        self.max_streams = max_streams
        self.idle_s = idle_s
        self._open: set[_Stream] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="stream-watchdog", daemon=True)

    def start(self) -> None:
        self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()

    @contextmanager
    def admit(self, context: grpc.ServicerContext, method: str) -> Iterator[_Stream]:
        stream = _Stream(context)
        with self._lock:
            if len(self._open) >= self.max_streams:
                raise ResourceExhausted(
                    f"{method}: core {self.core} already serves its limit of {self.max_streams} open streams; "
                    f"close streams you do not use (a stream idle for {self.idle_s:g} s is ended) or use another core")
            self._open.add(stream)
        try:
            yield stream
        finally:
            with self._lock:
                self._open.discard(stream)

    def requests(self, stream: _Stream, request_iterator: Iterator[Any], method: str) -> Iterator[Any]:
        """The stream's requests, decoded, each awaited at most idle_s seconds."""
        pump = _Pump(request_iterator, name=f"{method}-requests")
        try:
            while True:
                try:
                    item = pump.next(self.idle_s)
                except queue.Empty:
                    stream.context.abort(
                        grpc.StatusCode.UNAVAILABLE,
                        f"{method}: stream ended by core {self.core} after {self.idle_s:g} s without a request "
                        f"(memsim serve --stream-idle-timeout); open a new stream")
                if item is _END:
                    return
                if isinstance(item, _Raised):
                    raise item.error
                yield _decoded(item)
        finally:
            pump.close()

    def sending(self, stream: _Stream, busy: bool) -> None:
        stream.sending_since = time.monotonic() if busy else None

    def _watch(self) -> None:
        """Cancel streams whose client has not taken a reply for idle_s: their thread waits in
        gRPC's send, holding the reply, and only the client's reading (or this) lets it go."""
        period = max(0.05, min(1.0, self.idle_s / 4))
        while not self._stop.wait(period):
            now = time.monotonic()
            with self._lock:
                stalled = [s for s in self._open
                           if s.sending_since is not None and now - s.sending_since > self.idle_s]
            for s in stalled:
                log.warning("core %d: cancelling a stream whose client took no reply for %g s", self.core, self.idle_s)
                s.sending_since = None  # once is enough: gRPC's send returns, the handler ends
                s.context.cancel()


def call_budget(replies: PendingReplies, context: grpc.ServicerContext) -> ReplyBudget:
    """The budget of a unary call's reply, given back when the call has ended (reply sent, or
    the call cancelled): gRPC runs the call's callbacks then."""
    budget = ReplyBudget(replies)
    if not context.add_callback(budget.release):  # the call is already over: nothing will be sent
        budget.pending = None
    return budget


# -- registration ---------------------------------------------------------------------------

class _Handlers:
    """Stands in for the server while a generated add_*Servicer_to_server names its handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.methods: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, methods: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service = service
        self.methods = dict(methods)


def _request_type(handler: grpc.RpcMethodHandler) -> str:
    owner = getattr(handler.request_deserializer, "__self__", None)
    return owner.DESCRIPTOR.full_name if owner is not None else "request"


class _Wrapped:
    """A servicer's method as registered with gRPC: the method inside the error wrapper. The two
    class attributes are gRPC's per-method options, which grpc/_server.py reads off the behaviour."""

    experimental_non_blocking = False
    experimental_thread_pool: futures.ThreadPoolExecutor | None = None

    def __init__(self, behavior: Callable[..., Any], core: int):
        self.behavior = behavior
        self.core = core


class _Unary(_Wrapped):
    def __call__(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return self.behavior(_decoded(request), context)
        except Exception as e:  # noqa: BLE001 - every failure becomes a status code
            fail(context, e, self.core)


class _Streaming(_Wrapped):
    """A stream (bidirectional, or server-streaming when `unary_request`), admitted by the gate."""

    def __init__(self, behavior: Callable[..., Iterator[Any]], core: int, gate: StreamGate, method: str,
                 unary_request: bool):
        super().__init__(behavior, core)
        self.gate = gate
        self.method = method
        self.unary_request = unary_request

    def __call__(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        gate = self.gate
        try:
            with gate.admit(context, self.method) as stream:
                if self.unary_request:
                    replies = self.behavior(_decoded(request), context)
                else:
                    replies = self.behavior(gate.requests(stream, request, self.method), context)
                for reply in replies:
                    gate.sending(stream, True)
                    yield reply
                    gate.sending(stream, False)
        except Exception as e:  # noqa: BLE001 - every failure becomes a status code
            fail(context, e, self.core)


class _NonBlocking(_Wrapped):
    """A method that answers through a callback and holds no thread (gRPC's experimental_non_blocking,
    as grpc_health's Watch): only its request's decoding and its errors are wrapped."""

    experimental_non_blocking = True

    def __call__(self, request: Any, context: grpc.ServicerContext,
                 send_response_callback: Callable[[Any], None]) -> None:
        try:
            self.behavior(_decoded(request), context, send_response_callback)
        except Exception as e:  # noqa: BLE001 - every failure becomes a status code
            fail(context, e, self.core)


# Calls that never wait for the core's mutex and must answer while the core is busy: a health check,
# and a lease renewal (a client whose renewals queued behind a long call would lose what it holds).
# They run on the worker's small control pool, which no other call can fill.
CONTROL_METHODS = frozenset({"grpc.health.v1.Health/Check", "memsim.v1.Machine/Renew", "memsim.v1.VM/Renew",
                             "memsim.v1.V8/Renew"})


def register(server: grpc.Server, add_to_server: Callable[[Any, Any], None], servicer: Any, core: int,
             gate: StreamGate, control_pool: futures.ThreadPoolExecutor | None = None) -> str:
    """Add servicer's methods to server through the wrappers above; returns the service's name.
    CONTROL_METHODS among them run on control_pool (gRPC's per-method experimental_thread_pool)."""
    found = _Handlers()
    add_to_server(servicer, found)
    if not found.methods:  # stubs from an older grpcio-tools register generic handlers only
        raise TypeError(f"{add_to_server.__name__} registers no method handlers to wrap; regenerate the stubs")
    methods: dict[str, grpc.RpcMethodHandler] = {}
    for name, h in found.methods.items():
        method = f"{found.service}/{name}"
        if h.request_deserializer is None:
            raise TypeError(f"{method}: no request deserializer to wrap; regenerate the stubs")
        decode = _tolerant(h.request_deserializer, _request_type(h))
        out = h.response_serializer
        if h.unary_unary is not None:
            unary = _Unary(h.unary_unary, core)
            if control_pool is not None and method in CONTROL_METHODS:
                unary.experimental_thread_pool = control_pool
            methods[name] = grpc.unary_unary_rpc_method_handler(unary, decode, out)
        elif h.stream_stream is not None:
            methods[name] = grpc.stream_stream_rpc_method_handler(
                _Streaming(h.stream_stream, core, gate, method, unary_request=False), decode, out)
        elif h.unary_stream is not None and getattr(h.unary_stream, "experimental_non_blocking", False):
            callback = _NonBlocking(h.unary_stream, core)
            callback.experimental_thread_pool = getattr(h.unary_stream, "experimental_thread_pool", None)
            methods[name] = grpc.unary_stream_rpc_method_handler(callback, decode, out)
        elif h.unary_stream is not None:
            methods[name] = grpc.unary_stream_rpc_method_handler(
                _Streaming(h.unary_stream, core, gate, method, unary_request=True), decode, out)
        else:
            raise TypeError(f"{method}: client-streaming methods are not wrapped")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(found.service, methods),))
    # grpc-stubs 1.53 lacks Server.add_registered_method_handlers, which grpcio has had since 1.63.
    server.add_registered_method_handlers(found.service, methods)  # type: ignore[attr-defined]
    return found.service
