"""Leases: a space belongs to the client that created it for as long as that client renews.

`sp_owner` is a random 63-bit id the client chose, `sp_expiry` a CLOCK_MONOTONIC time (which
every process of the host reads alike). `release(owner)` destroys what a closing client made,
and `reap(now)` what a client that died without closing left behind (server/sessions.py runs
it on every core). Owner 0 is a kept space: nobody's, never reaped (the user destroys it).

Touches: `sp_owner`, `sp_lease`, `sp_expiry` under `vm/spaces`; renewal is the exception, a
plain store of a later expiry without vm/spaces, so a client's keepalive never waits behind a
destroy. A reaper re-checks owner and expiry under vm/spaces and the space's lock before it
destroys anything, so at worst a renewal that races the very moment of expiry loses, as a lease
past its end should.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.vm.layout import MAX_SPACES
from memsim.sim.vm.mm import MM
from memsim.sim.vm.spaces import destroy_locked


def renew(mm: MM, owner: int, now: float) -> int:
    """Extend every lease `owner` holds to `now` + its length; returns how many spaces it holds."""
    a = mm.a
    mine = (a.sp_state != 0) & (a.sp_owner == owner) if owner else np.zeros(MAX_SPACES, dtype=bool)
    a.sp_expiry[mine] = now + a.sp_lease[mine]
    return int(mine.sum())


def destroy_if_held(mm: MM, sp: int, owner: int, expired_at: float | None = None) -> bool:
    """Destroy sp if `owner` still holds it (and, with expired_at, its lease ended before then)."""
    with mm.locks.spaces, mm.locks.space[sp]:
        a = mm.a
        if not a.sp_state[sp] or int(a.sp_owner[sp]) != owner:
            return False  # destroyed, or reused by someone else, meanwhile
        if expired_at is not None and float(a.sp_expiry[sp]) >= expired_at:
            return False  # renewed meanwhile
        destroy_locked(mm, sp)
        return True


def release(mm: MM, owner: int) -> list[int]:
    """Destroy every space `owner` holds (its client is closing); returns their ids. Kept ones stay."""
    if not owner:
        return []
    return [sp for sp in mm.spaces(owner) if destroy_if_held(mm, sp, owner, None)]


def expired(mm: MM, now: float) -> list[int]:
    a = mm.a
    return [int(sp) for sp in np.flatnonzero((a.sp_state != 0) & (a.sp_owner != 0) & (a.sp_expiry < now))]


def reap(mm: MM, now: float) -> list[int]:
    """Destroy every space whose lease ran out before `now` (its client died without closing)."""
    return [sp for sp in expired(mm, now) if destroy_if_held(mm, sp, int(mm.a.sp_owner[sp]), now)]
