"""A client method written once for the sync and the asyncio client.

Owns: the calls a method asks for (`Unary`, `Roundtrip`), the generator shape of a method body
(`Steps`), the `command` descriptor that runs a body on a blocking or an awaiting client, and the
two runners (`SyncRunner`, `AsyncRunner`) that carry the calls out.
Touches: nothing on the wire itself; the runner's `_perform` (client/connection.py) does.

A method body is a generator: it builds its request, yields the call (`reply = yield from
unary(...)`), and decodes the reply into its return value. It never blocks and never awaits, so the
same body serves both clients, as redis-py's `redis/commands/core.py` serves `Redis` and
`asyncio.Redis` (there through `execute_command`, which the asyncio client makes return an
awaitable). A body may make several calls in turn, or run another command's body with
`yield from Commands.other.steps(self, ...)`; a failed call is raised inside the body at its
`yield`, so `try`/`except` around it works as in plain code. This is the "sans-I/O" split
(https://sans-io.readthedocs.io; psycopg 3's `psycopg/generators.py` and `waiting.py` drive one
generator per operation from a sync and an async loop the same way).

    class Commands:
        @command
        def free(self, address: int) -> Steps[Freed]:
            r = yield from unary("Free", pb.FreeRequest(address=address), pb.FreeReply)
            return Freed(...)

    client.free(a)            # a SyncRunner: runs the calls now, returns Freed
    await aclient.free(a)     # an AsyncRunner: returns a coroutine

The descriptor's overloads give each client its exact type: `Callable[P, T]` on a SyncRunner,
`Callable[P, Coroutine[..., T]]` on an AsyncRunner.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, cast, overload

from google.protobuf.message import Message

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R", bound=Message)
S = TypeVar("S")


@dataclass(frozen=True)
class Unary:
    """One unary RPC: the stub's method name, its request, and its deadline (None: the client's)."""

    method: str
    request: Message
    timeout: float | None = None


@dataclass(frozen=True)
class Roundtrip:
    """One message on the client's batch stream and its reply; `make_request(seq)` numbers it."""

    make_request: Callable[[int], Message]
    timeout: float


Op = Unary | Roundtrip
Steps = Generator[Op, Any, T]  # a method body: yields its calls, is sent their replies, returns its value


def unary(method: str, request: Message, reply: type[R], timeout: float | None = None) -> Generator[Op, Any, R]:
    """Call `method`; its reply, typed as `reply` (the stubs are untyped, the reply class says what comes back)."""
    return (yield Unary(method, request, timeout))


def roundtrip(make_request: Callable[[int], Message], reply: type[R], timeout: float) -> Generator[Op, Any, R]:
    """Send one batch-stream message and return its reply."""
    return (yield Roundtrip(make_request, timeout))


class Done(Generic[T]):
    """A body's end: its return value (what `resume` gives once the body asks for no more calls)."""

    def __init__(self, value: T):
        self.value = value


def resume(steps: Steps[T], reply: Any = None, error: BaseException | None = None) -> Op | Done[T]:
    """Advance a body by one call: send it the last reply (or raise `error` at its yield); the next
    call it asks for, or Done with its return value."""
    try:
        return steps.throw(error) if error is not None else steps.send(reply)
    except StopIteration as stop:
        return Done(stop.value)


class SyncRunner:
    """A client whose commands run now: `_perform` makes one call and blocks for its reply."""

    def _perform(self, op: Op) -> Any:
        raise NotImplementedError

    def _drive(self, steps: Steps[T]) -> T:
        step = resume(steps)
        while not isinstance(step, Done):
            try:
                reply = self._perform(step)
            except BaseException as e:  # noqa: BLE001 - raised inside the body, at its yield
                step = resume(steps, error=e)
            else:
                step = resume(steps, reply)
        return step.value


class AsyncRunner:
    """A client whose commands return coroutines: `_perform` is awaited."""

    async def _perform(self, op: Op) -> Any:
        raise NotImplementedError

    async def _drive(self, steps: Steps[T]) -> T:
        step = resume(steps)
        while not isinstance(step, Done):
            try:
                reply = await self._perform(step)
            except BaseException as e:  # noqa: BLE001 - raised inside the body, at its yield (cancellation too)
                step = resume(steps, error=e)
            else:
                step = resume(steps, reply)
        return step.value


class command(Generic[S, P, T]):  # noqa: N801 - used as a decorator, as functools' are
    """A method whose body is `Steps`: bound to a SyncRunner it runs the body and returns its value;
    bound to an AsyncRunner it returns a coroutine of that value."""

    def __init__(self, body: Callable[Concatenate[S, P], Steps[T]]):
        self.body = body
        self.name = body.__name__
        self.__doc__ = body.__doc__  # for help() on the class
        self._signature: inspect.Signature | None = None

    @property
    def __signature__(self) -> inspect.Signature:
        """The method's signature as its callers see it: the body's, returning what the body returns
        (not the generator), so that help(), IDEs and inspect.signature show the real method."""
        if self._signature is None:
            sig = inspect.signature(self.body)
            ret = sig.return_annotation
            if isinstance(ret, str) and ret.startswith("Steps[") and ret.endswith("]"):
                ret = ret[len("Steps["):-1]
            self._signature = sig.replace(return_annotation=ret)
        return self._signature

    def __call__(self, obj: S, *args: P.args, **kwargs: P.kwargs) -> Any:
        """`Class.method(instance, ...)`, as a plain method allows."""
        if isinstance(obj, SyncRunner | AsyncRunner):
            return obj._drive(self.body(obj, *args, **kwargs))  # the value, or a coroutine of it
        raise TypeError(f"{type(obj).__name__}.{self.name}: a command runs on a SyncRunner or an AsyncRunner")

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def steps(self, obj: S, *args: P.args, **kwargs: P.kwargs) -> Steps[T]:
        """The body itself, for another body to run with `yield from`."""
        return self.body(obj, *args, **kwargs)

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...

    @overload
    def __get__(self, obj: SyncRunner, owner: type) -> Callable[P, T]: ...

    @overload
    def __get__(self, obj: AsyncRunner, owner: type) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, obj: object, owner: type) -> object:
        if obj is None:
            return self
        if not isinstance(obj, SyncRunner | AsyncRunner):
            raise TypeError(f"{type(obj).__name__}.{self.name}: a command runs on a SyncRunner or an AsyncRunner")
        body = self.body
        this = cast(S, obj)  # the descriptor protocol looks a command up only on instances of its class
        bound: Callable[..., Any]
        if isinstance(obj, AsyncRunner):
            adrive = obj._drive

            async def abound(*args: Any, **kwargs: Any) -> Any:  # a coroutine function, as inspect sees it
                return await adrive(body(this, *args, **kwargs))

            bound = abound
        else:
            sdrive = obj._drive

            def sbound(*args: Any, **kwargs: Any) -> Any:
                return sdrive(body(this, *args, **kwargs))

            bound = sbound
        functools.update_wrapper(bound, body)
        # inspect follows __wrapped__ to the generator body; the signature it should show is the method's.
        del bound.__dict__["__wrapped__"]
        params = list(self.__signature__.parameters.values())[1:]  # without self
        bound.__dict__["__signature__"] = self.__signature__.replace(parameters=params)
        return bound
