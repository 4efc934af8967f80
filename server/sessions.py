"""Client sessions on the server: who made what, for how long, and what to undo when they go.

A client names itself with `memsim-client-id` gRPC metadata: 1-16 hex digits (not 0) it picks at
random when it starts (client/session.py), so two clients never need to agree on anything and
no handshake is needed. What a client creates is recorded as its own in shared memory, so that
any core can list it and release it: address spaces in the VM's space table (`sp_owner`,
sim/vm/leases.py), allocator objects in a per-slot owner word and a small client table
(sim/alloc/owners.py). Each lives on a lease:

  * Release (Client.close / VMClient.close) frees at once what the client made and did not ask
    to keep (`keep=True` makes a thing nobody's: it stays until someone frees or destroys it);
  * the client renews its lease every third of its length (a keepalive thread, or asyncio
    task, that sends Renew). Renewing on the client's ordinary calls instead would let an idle
    but live client lose what it made, and cost a shared-memory store on every call;
  * a client that died without closing stops renewing, and `LeaseReaper`, one small thread on
    every core, releases what it held within about a second of the lease's end. Any core can
    reap (the records are shared; the release itself is under vm/spaces, or marked in the
    client table), so no single core's death strands anything; CreateSpace also reaps before it
    creates, so a full pool first gives back what is already dead.

The lease is the client's choice (30 s by default): VM's CreateSpace carries it (at most a day),
the Machine service reads it from `memsim-lease-seconds` metadata (at most MAX_OBJECT_LEASE_S, an
hour: its leases hold entries of a small shared client table, owners.py; when that table is full
an allocation is made anyway, as nobody's, like keep=True, and a line is logged). Short for tests, long for a
client that may pause (a debugger, a laptop lid). The clock is CLOCK_MONOTONIC (time.monotonic),
one clock for every process of the host and unmoved by changes to the wall clock.

Work whose caller has gone is undone the same way: a handler that has created something checks,
after the work and before its reply, that the caller is still there (`caller_gone`: its deadline
has not passed and it has not cancelled) and, if not, frees or destroys it again; its reply could
only have been lost, and nobody could name what it made. gRPC cannot say whether a reply sent
just before the deadline arrives in time, so the check keeps a margin for the reply's transit
(REPLY_MARGIN_S): it narrows the window, it cannot close it. A batch on a stream has no gRPC
deadline: it carries its caller's timeout instead (server/servicer.py).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from typing import Protocol

import grpc

from memsim.server.periodic import Periodic
from memsim.sim.errors import InvalidArgument

log = logging.getLogger("memsim.worker")

CLIENT_ID_KEY = "memsim-client-id"
LEASE_KEY = "memsim-lease-seconds"  # the Machine service's lease (VM's CreateSpace carries its own)
DEFAULT_LEASE_S = 30.0
MAX_LEASE_S = 86_400.0
# The Machine service's leases hold entries of a shared client table of 4095 (owners.py): a caller
# minting client ids could otherwise hold it all for a day. An hour still covers a paused client.
MAX_OBJECT_LEASE_S = 3_600.0
REAP_PERIOD_S = 1.0
REPLY_MARGIN_S = 0.02  # a reply sent with less time than this left may arrive after the deadline


def client_id(context: grpc.ServicerContext) -> int:
    """The caller's id from its metadata, or 0 if it sent none; InvalidArgument if it is malformed."""
    for key, value in context.invocation_metadata() or ():
        if key == CLIENT_ID_KEY:
            text = value if isinstance(value, str) else value.decode("ascii", "replace")
            try:
                cid = int(text, 16) if 1 <= len(text) <= 16 else 0
            except ValueError:
                cid = 0
            if not 0 < cid < 1 << 63:
                raise InvalidArgument(f"{CLIENT_ID_KEY} {text[:40]!r} must be 1-16 hex digits naming a number "
                                      f"between 1 and 2**63-1")
            return cid
    return 0


def caller_id(context: grpc.ServicerContext, call: str, what: str) -> int:
    """The caller's id, for a call that acts on what the caller holds (`what`: "objects",
    "spaces"); InvalidArgument if it sent none."""
    cid = client_id(context)
    if not cid:
        raise InvalidArgument(f"{call} acts on the caller's {what}: send {CLIENT_ID_KEY} metadata (1-16 hex "
                              f"digits) as memsim's clients do")
    return cid


def metadata_lease(context: grpc.ServicerContext) -> float:
    """The lease the caller's `memsim-lease-seconds` metadata asks for (default 30 s), or InvalidArgument."""
    for key, value in context.invocation_metadata() or ():
        if key == LEASE_KEY:
            text = value if isinstance(value, str) else value.decode("ascii", "replace")
            try:
                seconds = float(text)
            except ValueError:
                seconds = -1.0
            if seconds == 0:
                seconds = -1.0  # 0 is the default only in a request field; here say a number
            return lease_seconds(seconds, LEASE_KEY, MAX_OBJECT_LEASE_S)
    return DEFAULT_LEASE_S


def lease_seconds(requested: float, what: str = "lease_seconds", most: float = MAX_LEASE_S) -> float:
    """The lease a create asks for (0: the default), or InvalidArgument above `most` seconds."""
    if requested == 0:
        return DEFAULT_LEASE_S
    if not (math.isfinite(requested) and 0 < requested <= most):
        raise InvalidArgument(f"{what} {requested} must be more than 0 and at most {most:.0f} "
                              f"(0 for the default {DEFAULT_LEASE_S:.0f} s)")
    return requested


def creator(context: grpc.ServicerContext, keep: bool, requested_lease: float) -> tuple[int, float]:
    """Who holds what a create call makes (a VM space, an isolate), and on what lease: the caller,
    or nobody with `keep` (lease 0); a caller without an id gets an owner of its own that nobody can
    renew, so what it made lasts one lease. InvalidArgument for a bad lease or a malformed id."""
    lease = lease_seconds(requested_lease)
    owner = client_id(context)
    if keep:
        return 0, 0.0
    return owner or secrets.randbits(63) or 1, lease


def caller_gone(context: grpc.ServicerContext) -> bool:
    """True if the caller cancelled, or its deadline is too close for a reply to reach it in time.
    Undoing a call that could still have been answered costs the caller an error it sees; a
    success it never sees costs an object nobody can name. Hence the margin."""
    remaining = context.time_remaining()
    return not context.is_active() or (remaining is not None and remaining <= REPLY_MARGIN_S)


class Leased(Protocol):
    """A servicer whose clients hold things on leases (MachineServicer: objects; VmServicer: spaces)."""

    def expired(self, now: float) -> list: ...  # cheap, lock-free: is there anything to reap?

    def reap(self, now: float) -> list: ...  # release what expired (taking the core's mutex itself)


class LeaseReaper(Periodic):
    """Releases, every REAP_PERIOD_S, what clients whose lease has run out held, on one core;
    each service's reap takes the core's mutex itself, like any other work of that core."""

    name = "lease-reaper"

    def __init__(self, core: int, leased: list[Leased], period_s: float = REAP_PERIOD_S):
        super().__init__(core, period_s)
        self.leased = leased

    def tick(self) -> None:
        for service in self.leased:
            try:
                if service.expired(time.monotonic()):  # the common case: nothing, and no lock taken
                    gone = service.reap(time.monotonic())
                    if gone:
                        log.info("core %d released %s: their client's lease ran out", self.core, gone)
            except Exception:  # one service's bad round must not keep the others from theirs
                log.exception("lease reaper on core %d", self.core)
