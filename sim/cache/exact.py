"""The `sim/policies` replacement policies as maxmemory-policies, over the keyspace's entries.

Owns: the kspol_* arrays (one registered policy's state at a time), this core's views of them,
which registered policy a maxmemory-policy id names, and the events the keyspace reports to the
policy. Touches: kspol_*, ks_gauge[G_EXACT], e_hash (read), under `keyspace/policy`.

Redis approximates LRU and LFU by sampling because an exact policy needs a list threaded
through every key and an update of it on every access (src/evict.c). Here that list exists: any
policy of the `sim/policies` registry (exact LRU and LFU, FIFO, Clock, two-list, SIEVE, S3-FIFO,
and whatever is registered before `Machine.create`), its slots being the keyspace's entry
indices, its whole state in shared arrays, driven by every core under one lock,
`keyspace/policy` (Linux's lru_lock for its page lists plays the same part).

Ids: Redis's eight policies are 0-7 (evict.py); the registered policies follow, 8 + their index
in the registry's sorted names (the VM numbers its `vm_policy` the same way). The registry must
not change once a machine exists: its arrays were laid out for the policies registered then.

Events, reported by the keyspace (db.py):
    a new key's entry        touched(e, new=True): insert(e, fingerprint of the key)
    a read or overwrite      touched(e): hit(e) if the entry is in the policy
    a delete (DEL, expiry,   removed(e): remove(e) if the entry is in the policy, FIRST in
      eviction, FLUSHALL)      db.py's unlink, before the key's object is freed
    eviction (evict.py)      victim(): evict() -> entry, then the victim's key is read, all under the
                             policy lock; the entry is deleted afterwards under its stripe lock

Lock order: a stripe lock, then the policy lock, which is a leaf: nothing else is taken while
it is held, and the evictor takes it holding nothing. Reading the victim's key under the policy
lock is safe: an entry is removed from the policy before its key object is freed, by a core
that needs this lock to do so; so while we hold it, an entry the policy just gave us still holds
its key. The delete that follows re-finds the key under its stripe lock; if the key went away
meanwhile (DEL, expiry, another core's eviction) that is a miss and the evictor goes on; if it
was set again meanwhile (a new entry), the fresh copy is evicted, which a stale choice in Redis's
pool can do too. An entry the evictor took out of the policy but has not yet deleted gets no
hit() (it is not in the policy): a benign race, costing at most the victim's one last access.

Only one policy's state exists at a time. All policies' arrays are laid out once, at the size of
the largest user of each name (`pol_prev` is slots+1 long for LRU, 2*slots for LFU...), each
policy seeing prefix views. Switching to a registered policy (CONFIG SET maxmemory-policy) holds
every stripe lock, lays the new policy out and inserts every live entry in the order of its
24-bit LRU/LFU field, so an LRU starts from Redis's recency estimate; switching away just stops
reporting events.

The sizing hint `capacity` (S3-FIFO's 10 % small queue, the two-list's active share) is set to
the number of keys each time an eviction starts: the cache is full then, and that is how many
keys fit at the current sizes. Until the first eviction nobody knows how many keys maxmemory
will hold, and the hint is the keyspace's entry count (the most it could hold).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from memsim.sim.cache.layout import G_EXACT
from memsim.sim.machine.locks import SharedLock
from memsim.sim.machine.shm import ArraySpec
from memsim.sim.policies import POLICIES, Policy

FIRST_EXACT_ID = 8  # ids below are Redis's own policies (evict.py)
PREFIX = "kspol_"  # region names: kspol_<the policy's own array name>
T = TypeVar("T")


# The registry's built-in policies in the order their maxmemory-policy ids have always had (8-14, the
# columns of INFO's "# Evictions"); policies registered later follow in the order of registration, so
# a new one takes the next id and renumbers none before it.
BUILTIN_ORDER = ("lru", "lfu", "fifo", "clock", "twolist", "sieve", "s3fifo")


@functools.lru_cache(maxsize=8)
def _id_order(registry: tuple[str, ...]) -> tuple[str, ...]:
    builtin = [name for name in BUILTIN_ORDER if name in registry]
    return (*builtin, *(name for name in registry if name not in BUILTIN_ORDER))


def registered_policies() -> tuple[str, ...]:
    """The registry's policies in maxmemory-policy id order: id FIRST_EXACT_ID + index."""
    return _id_order(tuple(POLICIES))


def registry_name(pid: int) -> str:
    return registered_policies()[pid - FIRST_EXACT_ID]


def exact_specs(slots: int) -> list[ArraySpec]:
    """Every array any registered policy needs, once per name, at the largest size asked for."""
    union: dict[str, ArraySpec] = {}
    for impl in registered_policies():
        for s in POLICIES[impl].array_specs(slots):
            have = union.get(s.name)
            if have is not None and np.dtype(have.dtype) != np.dtype(s.dtype):
                raise TypeError(f"policy array {s.name} is {have.dtype} in one policy and {s.dtype} in another")
            if have is None or s.shape[0] > have.shape[0]:
                union[s.name] = ArraySpec(PREFIX + s.name, s.dtype, s.shape)
    return list(union.values())


def fingerprint(key_hash: int) -> int:
    """The key's 63-bit identity for S3-FIFO's ghost (never 0, which means unknown)."""
    return (key_hash >> 1) or 1


class ExactPolicies:
    """One core's views of the shared policy state: a Policy object per id, attached on first use."""

    def __init__(self, region: dict[str, np.ndarray], slots: int, gauge: np.ndarray, e_hash: np.ndarray,
                 lock: SharedLock | None):
        self.region = region
        self.slots = slots
        self.gauge = gauge
        self._gauge_v = gauge.data  # `active` is read on every key access: a memoryview item is a plain int
        self.e_hash = e_hash
        self.lock = lock  # keyspace/policy; None only at boot, before any core exists
        self._views: dict[int, Policy] = {}

    def _arrays(self, cls: type[Policy]) -> dict[str, np.ndarray]:
        return {s.name: self.region[PREFIX + s.name][:s.shape[0]] for s in cls.array_specs(self.slots)}

    @property
    def active(self) -> int:
        """The id of the policy laid out now, -1 if none (a racy look; re-read under the lock)."""
        return self._gauge_v[G_EXACT]

    def get(self, pid: int) -> Policy:
        """The policy with this id, attached to the shared state (which must be laid out for it)."""
        view = self._views.get(pid)
        if view is None:
            cls = POLICIES[registry_name(pid)]
            view = cls(1, slots=self.slots, arrays=self._arrays(cls), init=False)
            self._views[pid] = view
        return view

    def lay_out(self, pid: int, entries: list[int]) -> None:
        """Make policy pid the one laid out, holding `entries` (oldest first); pid < FIRST_EXACT_ID lays
        out none. The caller holds every stripe lock and the policy lock (or runs before any core)."""
        if pid < FIRST_EXACT_ID:
            self.gauge[G_EXACT] = -1
            return
        cls = POLICIES[registry_name(pid)]
        pol = cls(self.slots, slots=self.slots, arrays=self._arrays(cls), init=True)
        for e in entries:
            pol.insert(e, fingerprint(int(self.e_hash[e])))
        self._views = {pid: pol}
        self.gauge[G_EXACT] = pid

    def locked(self) -> SharedLock:
        """keyspace/policy, to hold (the caller holds the stripe of any entry it reports)."""
        assert self.lock is not None, "a core's view has the policy lock"
        return self.lock

    def touched(self, e: int, new: bool) -> None:
        """A new key took entry e (new) or entry e was read or overwritten. Caller holds e's stripe, but
        for a lock-free GET's hit (db.py's _count_read): a hit of an entry gone meanwhile is refused by
        `e in pol`, or lands on the entry's next key, as a racy LRU stamp would in Redis."""
        with self.locked():
            pid = self.active  # under the lock: the one laid out now
            if pid < 0:
                return
            pol = self.get(pid)
            if new:
                pol.insert(e, fingerprint(int(self.e_hash[e])))
            elif e in pol:  # not in it: an evictor has just taken it out (see the module doc)
                pol.hit(e)

    def removed(self, e: int) -> None:
        """Entry e is being deleted, its key object not yet freed. Caller holds e's stripe."""
        if self.active < 0:
            return
        with self.locked():
            pid = self.active
            if pid >= 0 and e in (pol := self.get(pid)):
                pol.remove(e)

    def evict_entry(self, read: Callable[[int], T]) -> T | None:
        """Take the laid-out policy's victim out of it and return read(victim) (the victim's key, or
        where it is), read under the policy lock; None if no policy is laid out or it holds nothing."""
        if self.active < 0:
            return None
        with self.locked():
            pid = self.active  # again, under the lock: a switch may have come first
            if pid < 0:
                return None
            pol = self.get(pid)
            if not len(pol):
                return None
            pol.set_capacity(max(1, min(pol.slots, len(pol))))
            return read(pol.evict())
