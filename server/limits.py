"""The wire limits of a worker, in one place: what one message, one reply and one core's open
streams may cost. The Machine, Cache, VM and V8 services all read them from here.

A reply is budgeted while it is built, before each piece is copied: a read's length, a load's
length and a cache value's stored length are all known before the bytes are, so a request
whose reply would be too large is refused with RESOURCE_EXHAUSTED before the work, naming the
limit and the size. Two limits bind a reply:

- `MAX_REPLY_BYTES`, one reply's payload: it must fit gRPC's `MAX_MESSAGE` with room for the
  rest of the message (addresses, errors, msgpack framing);
- `PENDING_REPLY_BYTES`, per core: replies built but not yet taken by their clients. gRPC holds
  a reply until HTTP/2 flow control lets it go (grpc/_server.py `_send_response` waits for the
  send to complete), so a client that asks and never reads would otherwise make a core hold
  reply after reply. Each reply counts from when it is built until gRPC has sent it. A reply
  waiting to be sent lives about three times over (the message, its serialised bytes, gRPC's
  copy): twenty or sixty streams that never read, each asking 24 MiB, grow a worker by ~200 MiB.

A reply of at most `SMALL_REPLY_BYTES` may go past the core's limit, by `SMALL_REPLIES_BYTES` in
all, so that small calls (GETs of small values, small reads) keep working while a non-reading
client fills the core's allowance, and yet many unread small replies cannot grow a worker
without bound either.
"""

from __future__ import annotations

import threading

from memsim.sim.errors import ResourceExhausted

MAX_MESSAGE = 32 << 20  # gRPC's send and receive limit, on the server and in the clients
MAX_REPLY_BYTES = 24 << 20  # payload of one reply; the other 8 MiB cover the rest of the message
MAX_BATCH_OPS = 10_000  # ops of one allocator or VM batch message
MAX_PIPELINE = 10_000  # commands of one cache pipeline message
MAX_LISTED = 100_000  # objects one Machine.ListObjects reply lists (its `total` counts every match)
# The V8 service (server/v8_servicer.py): every request is checked against these before any work.
MAX_V8_BATCH_OPS = 10_000  # ops of one V8 batch message
MAX_V8_BATCH_GCS = 8  # GC ops of one batch message: each may take a while (bounded by the heap's size)
MAX_FIELDS = 1 << 20  # fields of one object, and fields one message allocates or carries in all
MAX_V8_PAYLOAD = 16 << 20  # bytes of one payload, string, ArrayBuffer, read or write
# scavenge helper cores an isolate may ask for: V8's kMaxScavengerTasks (8) tasks, the main among them;
# more are capped to this, as V8 caps NumberOfScavengeTasks
MAX_GC_HELPERS = 7
MAX_V8_ALLOC_BYTES = 64 << 20  # bytes one message may ask the heap for in all (fields, payloads, ArrayBuffers)
MAX_TRACE_RECORDS = 128  # GC records of one GcTrace reply (the ring holds the last ones)
MAX_MONITOR_SECONDS = 3600.0  # how long one Cache.Monitor / VM.Monitor stream may record
MAX_MONITOR_BATCH = 1 << 16  # records of one MonitorBatch message (at most ~40 bytes each on the wire)
PENDING_REPLY_BYTES = 64 << 20  # per core: replies built and not yet sent (two and a half full replies)
SMALL_REPLY_BYTES = 64 << 10  # a reply this small is allowed even when the core is at its limit ...
SMALL_REPLIES_BYTES = 16 << 20  # ... up to this much more in all: unread small replies are bounded too

# Threads and streams. gRPC-Python's sync server holds a pool thread per unary call in progress
# and per open stream for its whole life. Streams may take MAX_STREAMS threads of a core, never
# the UNARY_THREADS reserved for unary calls; a stream past the limit is refused at once. A stream
# that sends no request for the idle timeout is ended, so that abandoned streams give their thread
# back. Unary calls waiting for a busy core can still take every thread, so the calls that never wait
# for it (health checks, lease renewals: wire.CONTROL_METHODS) have CONTROL_THREADS of their own.
MAX_STREAMS = 64
UNARY_THREADS = 16
CONTROL_THREADS = 4
STREAM_IDLE_S = 120.0
MAX_CALLS_PER_CONNECTION = 256  # calls (unary or streams) open at once on one HTTP/2 connection
MAXCLIENTS = 10_000  # Redis-protocol connections open at once on the machine: Redis's default maxclients (resp.py)


def mib(n: int) -> str:
    """n bytes as the MiB figure the messages and the supervisor's banner print."""
    return f"{n / (1 << 20):g} MiB"


class PendingReplies:
    """One core's account of reply bytes built and not yet sent (see the module doc)."""

    def __init__(self, core: int, limit: int = PENDING_REPLY_BYTES):
        self.core = core
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def take(self, n: int, reply_so_far: int) -> bool:
        """Count n more bytes, unless that takes the core past its limit (a small reply: past its limit
        and the small replies' allowance above it)."""
        with self._lock:
            over = self.held + n - self.limit
            if over > 0 and (reply_so_far + n > SMALL_REPLY_BYTES or over > SMALL_REPLIES_BYTES):
                return False
            self.held += n
            return True

    def add(self, n: int) -> None:
        with self._lock:
            self.held += n

    def give(self, n: int) -> None:
        with self._lock:
            self.held -= n


class ReplyBudget:
    """What one reply may still take, charged before each piece of it is copied.

    Charges count against the core's `PendingReplies` too, until `release` (when gRPC has sent
    the reply, or the call has ended)."""

    def __init__(self, pending: PendingReplies | None = None, limit: int = MAX_REPLY_BYTES):
        self.pending = pending
        self.limit = limit
        self.used = 0
        self._held = 0

    @property
    def room(self) -> int:
        return self.limit - self.used

    def charge(self, n: int, what: str) -> None:
        """Count n more bytes of reply, or refuse `what` (nothing is copied yet) with RESOURCE_EXHAUSTED."""
        so_far = f" to the {self.used} bytes already in this reply" if self.used else ""
        if n > self.room:
            raise ResourceExhausted(f"reply too large: {what} would add {n} bytes{so_far}, over the limit of "
                                    f"{self.limit} bytes ({mib(self.limit)}) per reply; split the batch or ask "
                                    f"for less")
        p = self.pending
        if p is not None:
            if not p.take(n, self.used):
                raise ResourceExhausted(
                    f"core {p.core} is busy sending: {what} would add {n} bytes{so_far}, over the core's limit of "
                    f"{p.limit} bytes ({mib(p.limit)}) of replies not yet taken by their clients ({p.held} bytes "
                    f"waiting); read replies before asking for more")
            self._held += n
        self.used += n

    def refund(self, n: int) -> None:
        """Give back a charge whose copy did not happen (the operation failed first)."""
        self.used -= n
        if self.pending is not None and self._held:
            back = min(n, self._held)
            self.pending.give(back)
            self._held -= back

    def could_take(self, n: int) -> bool:
        """Whether a charge of n would be accepted now (to skip measuring what surely fits)."""
        p = self.pending
        return n <= self.room and (p is None or p.held + n <= p.limit)

    def force(self, n: int) -> None:
        """Count n bytes already copied by an operation that cannot be undone (GETDEL deleted the key)."""
        if self.pending is not None:
            self.pending.add(n)
            self._held += n
        self.used += n

    def release(self) -> None:
        """The reply has gone (or will never go): give its bytes back to the core's account. Idempotent."""
        if self.pending is not None and self._held:
            self.pending.give(self._held)
            self._held = 0
