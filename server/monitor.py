"""Cache.Monitor and VM.Monitor on one core: a capture's server-streaming call over the core's
recorder (sim/cache/monitor.py's CommandMonitor, sim/vm/monitor.py's PageMonitor).

Per call: subscribe (the core starts recording), send an empty message (the reader knows it is
recorded from now on), then every POLL_S drain the subscriber into messages of at most
`MAX_MONITOR_BATCH` records, until `seconds` have passed; then unsubscribe (no record is taken
after that) and send what is left, so the records of every command or access the core ran inside
the window reach the reader, and the stream ends. A message carries the count of records lost since
the previous one: a subscriber holds at most `limit` records, and while the core's account of
replies not yet sent (limits.py PendingReplies) cannot take a message, records wait and the newest
are lost rather than memory growing, as Redis's client-output-buffer-limit bounds a slow MONITOR.

Touches: the recorder's feed (subscribe/unsubscribe), the core's PendingReplies. Takes no core
mutex: recording happens in the command's or access's own thread, under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc

from memsim.server.limits import MAX_MONITOR_BATCH, MAX_MONITOR_SECONDS, PendingReplies, ReplyBudget
from memsim.sim.errors import InvalidArgument
from memsim.sim.trace.chunk import TraceChunk
from memsim.sim.trace.monitor import DEFAULT_LIMIT, MAX_LIMIT, Subscriber
from memsim.v1 import machine_pb2 as mpb

POLL_S = 0.05
WIRE_BYTES = 40  # a record on the wire, at most: four varints of up to ten bytes


def _messages(chunk: TraceChunk, lost: int, core: int) -> Iterator[mpb.MonitorBatch]:
    for lo in range(0, max(len(chunk), 1), MAX_MONITOR_BATCH):
        part = chunk.slice(lo, lo + MAX_MONITOR_BATCH)
        yield mpb.MonitorBatch(core=core, time_ns=part.time.tolist(), key=part.key.tolist(), size=part.size.tolist(),
                               op=part.op.tolist(), lost=lost if lo == 0 else 0)


def monitor_stream(subscribe: Callable[[int], Subscriber], unsubscribe: Callable[[Subscriber], None],
                   request: mpb.MonitorRequest, context: grpc.ServicerContext, core: int,
                   replies: PendingReplies) -> Iterator[mpb.MonitorBatch]:
    seconds = request.seconds
    if not 0 < seconds <= MAX_MONITOR_SECONDS:
        raise InvalidArgument(f"a monitor records for 0 < seconds <= {MAX_MONITOR_SECONDS:g}, not {seconds:g}")
    limit = request.limit or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise InvalidArgument(f"a monitor buffers at most {MAX_LIMIT} records, not {limit}")
    sub = subscribe(limit)
    subscribed = True
    try:
        yield mpb.MonitorBatch(core=core)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and context.is_active():
            time.sleep(min(POLL_S, left))
            n = sub.pending()
            if not n:
                continue
            budget = ReplyBudget(replies)
            if not budget.could_take(n * WIRE_BYTES):
                continue  # the core has too much unsent: the records wait in the buffer (and overflow)
            budget.force(n * WIRE_BYTES)
            try:
                yield from _messages(*sub.drain(), core)
            finally:
                budget.release()
        unsubscribe(sub)
        subscribed = False
        chunk, lost = sub.drain()
        if len(chunk) or lost:
            yield from _messages(chunk, lost, core)
    finally:
        if subscribed:
            unsubscribe(sub)
