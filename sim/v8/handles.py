"""Handles: V8's HandleScope and EscapableHandleScope (`src/handles/handles.h`) and global
(persistent) handles (`src/handles/global-handles.cc`), the roots of an isolate's heap.

Clients never see an address (objects move); they hold a handle id, a uint64

    isolate:8 | kind:2 | index:22 | stamp:32        kind 0 = local, 1 = global

whose slot (`hs_slot[iso, index]` or `gh_slot[iso, index]`) holds the object's tagged word, which
the collectors update when the object moves. Every slot a handle is given gets a fresh stamp from
`hs_serial` (kept across the isolate row's incarnations), so an id whose slot was reused, whose
scope was closed, whose global was dropped or whose isolate was recreated is recognised as dead
(FAILED_PRECONDITION) instead of naming someone else's object.

Local handles are a stack: `open_scope` saves the top, `close_scope` restores it (the closed
scope's handles stop being roots, as when a C++ HandleScope is destroyed) and, with `escape`,
re-creates one handle in the parent scope (EscapableHandleScope::Escape). The root scope (depth 0)
never closes. Globals come from a table with a used byte per row; a dropped row is reused with a
new stamp. The collectors read `hs_slot[iso, :hs_top]` and `gh_slot[iso, used]` as plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.sim.errors import FailedPrecondition, ResourceExhausted
from memsim.sim.v8.layout import IDLE, MUTATOR, PHASE_NAMES, SCOPE_DEPTH, V8Arrays

LOCAL, GLOBAL = 0, 1
STAMP_MASK = (1 << 32) - 1


@dataclass(frozen=True)
class Handle:
    """A client's reference to a heap object (objects.py's tagged words never leave the isolate)."""

    id: int

    @property
    def isolate(self) -> int:
        return self.id >> 56

    @property
    def is_global(self) -> bool:
        return (self.id >> 54) & 3 == GLOBAL

    def __repr__(self) -> str:
        return f"Handle({self.id:#x})"


def handle_id(iso: int, kind: int, index: int, stamp: int) -> int:
    return iso << 56 | kind << 54 | index << 32 | stamp


class HandleTable:
    """One isolate's handles (the isolate's locker held)."""

    def __init__(self, a: V8Arrays, iso: int):
        self.a, self.iso = a, iso
        self.capacity = int(a.hs_slot.shape[1])

    def reset(self) -> None:
        a, i = self.a, self.iso
        a.hs_top[i] = a.hs_depth[i] = 0
        a.hs_stamp[i] = 0
        a.gh_used[i] = 0
        a.gh_stamp[i] = 0

    def usable(self) -> None:
        """Refuse a mutator's handle work once a collection of this call failed part-way (its phase
        word still names the collection): the heap may hold half-copied objects, and the locker's
        holder gives the isolate up when it lets go (isolate_table.py)."""
        phase = int(self.a.iso_phase[self.iso])
        if phase not in (IDLE, MUTATOR):
            raise FailedPrecondition(f"isolate {self.iso}: a collection failed part-way in this call "
                                     f"({PHASE_NAMES[phase]}); the heap is not trusted and the isolate is "
                                     f"being released")

    def _stamp(self) -> int:
        a, i = self.a, self.iso
        s = (int(a.hs_serial[i]) + 1) & STAMP_MASK or 1
        a.hs_serial[i] = s
        return s

    # -- locals and scopes -----------------------------------------------------------------

    def new_local(self, word: int) -> Handle:
        self.usable()
        a, i = self.a, self.iso
        top = int(a.hs_top[i])
        if top >= self.capacity:
            if not int(a.hs_depth[i]):
                raise ResourceExhausted(f"isolate {i}: all {self.capacity} local handles are in use (v8_handles), "
                                        f"all in the root scope, which never closes: open a scope for short-lived "
                                        f"handles, or destroy the isolate")
            raise ResourceExhausted(f"isolate {i}: all {self.capacity} local handles are in use (v8_handles); "
                                    f"close a handle scope")
        stamp = self._stamp()
        a.hs_slot[i, top] = word
        a.hs_stamp[i, top] = stamp
        a.hs_top[i] = top + 1
        return Handle(handle_id(i, LOCAL, top, stamp))

    def open_scope(self) -> int:
        self.usable()
        a, i = self.a, self.iso
        d = int(a.hs_depth[i])
        if d >= SCOPE_DEPTH:
            raise ResourceExhausted(f"isolate {i}: {SCOPE_DEPTH} handle scopes are open, the most one isolate may nest")
        a.hs_scopes[i, d] = a.hs_top[i]
        a.hs_depth[i] = d + 1
        return d + 1

    def close_scope(self, escape: Handle | None = None) -> Handle | None:
        self.usable()
        a, i = self.a, self.iso
        d = int(a.hs_depth[i])
        if d == 0:
            raise FailedPrecondition(f"isolate {i}: no handle scope is open (the root scope never closes)")
        word = self.load(escape) if escape is not None else 0
        a.hs_depth[i] = d - 1
        a.hs_top[i] = a.hs_scopes[i, d - 1]
        return self.new_local(word) if escape is not None else None

    def depth(self) -> int:
        return int(self.a.hs_depth[self.iso])

    # -- globals ---------------------------------------------------------------------------

    def new_global(self, word: int) -> Handle:
        self.usable()
        a, i = self.a, self.iso
        free = np.flatnonzero(a.gh_used[i] == 0)
        if not free.size:
            raise ResourceExhausted(f"isolate {i}: all {self.capacity} global handles are in use (v8_handles); "
                                    f"drop some")
        g = int(free[0])
        stamp = self._stamp()
        a.gh_slot[i, g] = word
        a.gh_stamp[i, g] = stamp
        a.gh_used[i, g] = 1
        return Handle(handle_id(i, GLOBAL, g, stamp))

    def drop(self, h: Handle) -> None:
        kind, index = self._check(h)
        if kind != GLOBAL:
            raise FailedPrecondition(f"handle {h.id:#x} is a local handle: only global (persistent) handles are "
                                     f"dropped; a local one dies with its scope")
        self.a.gh_used[self.iso, index] = 0
        self.a.gh_stamp[self.iso, index] = 0

    # -- resolving ids -----------------------------------------------------------------------

    def _check(self, h: Handle) -> tuple[int, int]:
        self.usable()
        a, i = self.a, self.iso
        hid = h.id if isinstance(h, Handle) else -1
        if not 0 <= hid < 1 << 64:
            raise FailedPrecondition(f"{h!r} is not a handle")
        iso, kind, index, stamp = hid >> 56, (hid >> 54) & 3, (hid >> 32) & ((1 << 22) - 1), hid & STAMP_MASK
        if iso != i:
            raise FailedPrecondition(f"handle {hid:#x} belongs to isolate {iso}, not to isolate {i}")
        if kind == LOCAL:
            if index >= int(a.hs_top[i]) or int(a.hs_stamp[i, index]) != stamp:
                raise FailedPrecondition(f"handle {hid:#x} is dead (its handle scope was closed)")
        elif kind == GLOBAL:
            if index >= self.capacity or not a.gh_used[i, index] or int(a.gh_stamp[i, index]) != stamp:
                raise FailedPrecondition(f"handle {hid:#x} is dead (the global handle was dropped)")
        else:
            raise FailedPrecondition(f"handle {hid:#x} is not a handle of this isolate")
        return kind, index

    def load(self, h: Handle) -> int:
        """The tagged word the handle holds (a reference: address | 1)."""
        kind, index = self._check(h)
        row = self.a.hs_slot if kind == LOCAL else self.a.gh_slot
        return int(row[self.iso, index])

    def counts(self) -> tuple[int, int]:
        """(local handles, global handles) in use."""
        return int(self.a.hs_top[self.iso]), int(self.a.gh_used[self.iso].sum())

    def root_words(self) -> np.ndarray:
        """Every root slot's tagged word, locals then used globals (a copy)."""
        a, i = self.a, self.iso
        return np.concatenate([a.hs_slot[i, :int(a.hs_top[i])], a.gh_slot[i][a.gh_used[i] == 1]])
