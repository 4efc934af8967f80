"""The one interface every replacement policy implements, and the registry that names them.

A policy is decoupled from storage, as in libCacheSim and Linux's reclaim code: the owner
(the Redis-like keyspace, the frame pool of virtual memory, the trace simulator) holds the
values and decides WHEN to evict (maxmemory reached, no free frame, cache full); the
policy only keeps the metadata it needs (queues, bits, counters) and decides WHOM.

Slots, not keys. The owner names what it holds by an integer SLOT in [0, slots): the index
of an entry in the keyspace's table, a frame number in virtual memory. The policy's whole
state, scalars included (list heads, hands, lengths, the capacity), lives in a few named
arrays indexed by slot, like the `lru` list_head and flags Linux keeps in each struct page.
That is what lets one policy live in SHARED MEMORY and be driven by several processes (the
keyspace's cores), always under one lock that the caller holds: the policy itself never
locks. Hashable keys (the trace simulator, tests) go through the `Keyed` adapter
(keyed.py), which maps keys to slots.

The owner reports every event that concerns a slot, exactly once:

    insert(slot, fingerprint=0)  a new entry took the slot    precondition: slot not present
    hit(slot)                    an access to a present slot  precondition: slot present
    remove(slot)                 the owner deleted it (DEL, expiry, munmap, page freed)
    evict()                      choose a victim, forget it, return its slot (KeyError if empty)

Preconditions are checked: inserting a present slot raises ValueError, hit/remove of an
absent slot raise KeyError, a slot outside [0, slots) raises IndexError, so that a
bookkeeping bug in an owner fails loudly instead of silently skewing an experiment (or, in
shared memory, corrupting a list another process walks). `fingerprint` is a 63-bit identity
of the KEY that now occupies the slot (0 <= fingerprint < 2**63; 0 = "unknown"); only
S3-FIFO uses it, to recognise a key that comes back after eviction (its ghost queue must
remember keys, and slots are reused by other keys). Every method is O(1), or O(1)
amortized for the policies whose eviction scans (Clock, SIEVE, S3-FIFO: each step of a
scan pays back one earlier hit or one earlier insertion).

`capacity` is the owner's size in objects, 1 <= capacity <= slots. A policy may use it to
size internal queues (S3-FIFO's 10 % small queue, the active list of the two-list policy);
it never evicts on its own, and it keeps working, merely less well tuned, if the owner
holds more or fewer entries than that. It is state like the rest (stored in the arrays, so
every process sees the same) and may change at run time: `set_capacity(n)` (the keyspace
sets it to its current number of keys before it evicts).

Storage. `array_specs(slots)` lists every array a policy needs, each name prefixed `pol_`
so that they can share a SharedRegion with other arrays. Construct with:
- `arrays=None`: private storage: NumPy arrays for a CompiledPolicy (its kernels take arrays),
  Python lists for the others (list indexing is ~3x faster than NumPy scalar indexing from Python);
- `arrays={name: ndarray}` and `init=True`: lay the policy out in those arrays (the
  creator, e.g. the supervisor before it forks); `init=False`: attach to arrays some other
  process initialised (a worker), whose stored capacity and options hold (the capacity
  argument is then not written; an option that contradicts the stored one is a ValueError).
  The policy object keeps no state of its own, so any number of processes may attach, and
  each sees every other's changes at once. The same code runs on both kinds of storage: values read
  back are Python ints or NumPy scalars, and everything returned to a caller is an int.
Every policy keeps `pol_meta` (int64) with the capacity in cell 0 and the number of
present slots in cell 1, then its own scalars; `check()` walks the arrays and reports any
broken link or count.

Compiled policies. A `CompiledPolicy` names its four operations as numba kernels over its arrays
(`Kernels`, sim/machine/jit.py's njit_kernel): its methods check the slot's range and call them,
and the trace simulator's compiled loop (compiled.py) calls the very same functions, so the VM, the
cache and the simulator run one implementation. From Python a kernel call costs ~0.5-1 µs (numba
unboxing its arrays), about what the old Python bodies cost on shared NumPy arrays; in the compiled
loop a request costs tens of nanoseconds.

A new policy is a new module with a class decorated `@register("name")` plus one import
line in `sim/policies/__init__.py`; `POLICIES` then maps the name to the class. It may subclass
Policy (methods in Python) or CompiledPolicy (kernels, `kernels = Kernels(...)`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np

from memsim.sim.machine.shm import ArraySpec

__all__ = ["CAPACITY", "POLICIES", "SIZE", "ArraySpec", "CompiledPolicy", "Kernels", "Policy", "State", "policy_id",
           "policy_name", "policy_names", "register"]

# the two pol_meta cells every policy has; a policy's own scalars follow
CAPACITY = 0
SIZE = 1

FINGERPRINT_LIMIT = 1 << 63


def _private(spec: ArraySpec) -> list[Any]:
    """A Python list standing in for the array `spec` describes (1-D: every policy array is)."""
    if len(spec.shape) != 1:
        raise ValueError(f"policy array {spec.name} must be 1-D, got shape {spec.shape}")
    zero: int | float = 0.0 if np.dtype(spec.dtype).kind == "f" else 0
    return [zero] * spec.shape[0]


class Policy(ABC):
    """Replacement policy over integer slots, its state in named arrays. See the module doc."""

    name: ClassVar[str]

    def __init__(
        self,
        capacity: int,
        *,
        slots: int | None = None,
        arrays: Mapping[str, Any] | None = None,
        init: bool = True,
    ):
        if slots is None:
            if capacity < 1:
                raise ValueError(f"capacity must be at least 1 object, got {capacity}")
            slots = capacity
        if slots < 1:
            raise ValueError(f"a policy needs at least 1 slot, got slots={slots}")
        self.slots: int = int(slots)
        specs = type(self).array_specs(self.slots)
        if arrays is None:
            self.private = True
            own: dict[str, Any] = {s.name: self._private_array(s) for s in specs}
            init = True
        else:
            self.private = False
            own = {}
            for s in specs:
                if s.name not in arrays:
                    raise ValueError(f"{type(self).__name__} needs array {s.name!r}; lay it out from array_specs()")
                a = arrays[s.name]
                if tuple(a.shape) != s.shape or a.dtype != np.dtype(s.dtype):
                    raise ValueError(
                        f"array {s.name!r} is {a.dtype}{tuple(a.shape)}, {type(self).__name__} with "
                        f"{self.slots} slots needs {s.dtype}{s.shape}"
                    )
                own[s.name] = a
        self.arrays: dict[str, Any] = own
        self._meta = own["pol_meta"]
        self._bind(own)
        if init:
            self._check_capacity(capacity)
            self._reset()
            self._meta[CAPACITY] = capacity
            self._meta[SIZE] = 0
            self._resized(capacity)

    @classmethod
    def _private_array(cls, spec: ArraySpec) -> Any:
        """Private storage for one array: a Python list (see the module doc); CompiledPolicy's is NumPy."""
        return _private(spec)

    # -- what a policy module provides ----------------------------------------------------------

    @classmethod
    @abstractmethod
    def array_specs(cls, slots: int) -> list[ArraySpec]:
        """Every array the policy keeps for `slots` slots (names prefixed pol_, pol_meta among them)."""

    @abstractmethod
    def _bind(self, arrays: dict[str, Any]) -> None:
        """Keep the arrays as attributes (the hot paths read them without a dict lookup)."""

    @abstractmethod
    def _reset(self) -> None:
        """Initialise the arrays to an empty policy (the creator only; pol_meta's first cells are set after)."""

    def _resized(self, capacity: int) -> None:  # noqa: B027 - a hook: most policies derive nothing
        """Recompute the sizes derived from the capacity (queue shares) into pol_meta."""

    @abstractmethod
    def insert(self, slot: int, fingerprint: int = 0) -> None:
        """A new entry took `slot` (ValueError if present); fingerprint: its key's identity, see the module doc."""

    @abstractmethod
    def hit(self, slot: int) -> None:
        """An access to a present slot (KeyError if absent)."""

    @abstractmethod
    def remove(self, slot: int) -> None:
        """The owner deleted a present slot; forget it without counting an eviction (KeyError if absent)."""

    @abstractmethod
    def evict(self) -> int:
        """Choose a victim, forget it and return its slot (KeyError if the policy holds no slot)."""

    @abstractmethod
    def __contains__(self, slot: object) -> bool:
        """Whether slot is present (False for anything outside [0, slots))."""

    @abstractmethod
    def check(self) -> list[str]:
        """Walk every list and count; return the problems found (empty if the state is consistent)."""

    # -- shared by all ---------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return int(self._meta[CAPACITY])

    def set_capacity(self, capacity: int) -> None:
        """Change the sizing hint (and the queue shares derived from it); the caller holds the lock."""
        self._check_capacity(capacity)
        self._meta[CAPACITY] = capacity
        self._resized(capacity)

    def __len__(self) -> int:
        return int(self._meta[SIZE])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {len(self)}/{self.capacity} slots={self.slots}>"

    def _check_capacity(self, capacity: int) -> None:
        if not 1 <= capacity <= self.slots:
            raise ValueError(f"capacity must be between 1 object and the {self.slots} slots, got {capacity}")

    # helpers for subclasses: the precondition errors, worded once
    @staticmethod
    def _present(slot: int) -> ValueError:
        return ValueError(f"slot {slot} is already present: insert() is for new entries, use hit()")

    def _index(self, slot: object) -> int:
        """slot as an index of the policy's arrays, or -1 if it is none (not an integer, or outside
        [0, slots)): what __contains__ asks before its one array read."""
        if isinstance(slot, int | np.integer) and 0 <= slot < self.slots:
            return int(slot)
        return -1

    def _out_of_range(self, slot: object) -> IndexError:
        return IndexError(f"slot {slot!r} is outside [0, {self.slots}) for this {self.name!r} policy")

    def _empty(self) -> KeyError:
        return KeyError(f"evict() from an empty {self.name!r} policy")

    def _check_size(self, counted: int) -> list[str]:
        """The meta size against what a walk counted, for check()."""
        if counted != len(self):
            return [f"pol_meta says {len(self)} slots present, the lists hold {counted}"]
        return []


# A compiled policy's state as its kernels see it: its arrays, in array_specs() order.
State = tuple[np.ndarray, ...]


class Kernels(NamedTuple):
    """A policy's four operations as compiled functions over its State (sim/machine/jit.py's njit).

    The Policy methods call them after checking the slot's range, and the trace replay loop
    (compiled.py) calls the same functions with no Python between them: one implementation of each
    policy for the VM, the cache and the simulator. Each answers a status instead of raising
    (compiled code raises nothing useful): insert 0, or 1 if the slot is present; hit and remove 0,
    or 1 if the slot is absent; evict the victim's slot, or -1 if the policy holds none. They never
    check a slot's range (an out-of-range index is undefined behaviour in compiled code).

    `hit` takes its own, smaller State: the arrays named by `hit_uses`, indices into the full one.
    A hit is the most frequent call and often one bit store; numba unboxes every array of a tuple
    argument at each call from Python (~0.1 µs each), which for S3-FIFO's fourteen would cost more
    than the hit itself."""

    insert: Callable[[State, int, int], int]
    hit: Callable[[State, int], int]
    remove: Callable[[State, int], int]
    evict: Callable[[State], int]
    hit_uses: tuple[int, ...]


class CompiledPolicy(Policy):
    """A policy whose operations are `kernels` over its arrays: private storage is NumPy (the kernels
    take arrays, not lists), and the four methods check the slot's range and turn each kernel's
    status into the exception the interface names. The rest (__contains__, check, the explanations)
    stays Python: it is not on a request's path."""

    kernels: ClassVar[Kernels]

    def __init__(
        self,
        capacity: int,
        *,
        slots: int | None = None,
        arrays: Mapping[str, Any] | None = None,
        init: bool = True,
    ):
        super().__init__(capacity, slots=slots, arrays=arrays, init=init)
        k = type(self).kernels
        self.state: State = tuple(self.arrays[s.name] for s in type(self).array_specs(self.slots))
        self.hit_state: State = tuple(self.state[i] for i in k.hit_uses)
        self._k_insert, self._k_hit, self._k_remove, self._k_evict = k.insert, k.hit, k.remove, k.evict

    @classmethod
    def _private_array(cls, spec: ArraySpec) -> Any:
        return np.zeros(spec.shape, dtype=spec.dtype)

    def insert(self, slot: int, fingerprint: int = 0) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        if not 0 <= fingerprint < FINGERPRINT_LIMIT:
            raise ValueError(f"fingerprint {fingerprint} must be in [0, 2**63)")
        if self._k_insert(self.state, slot, fingerprint):
            raise self._present(slot)

    def hit(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        if self._k_hit(self.hit_state, slot):
            raise KeyError(slot)

    def remove(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise self._out_of_range(slot)
        if self._k_remove(self.state, slot):
            raise KeyError(slot)

    def evict(self) -> int:
        victim = self._k_evict(self.state)
        if victim < 0:
            raise self._empty()
        return int(victim)


POLICIES: dict[str, type[Policy]] = {}

P = TypeVar("P", bound=type[Policy])


def policy_names() -> list[str]:
    """Every registered policy's name, sorted: what a choice of policy offers (MachineConfig.vm_policy,
    the CLI's --vm-policy)."""
    return sorted(POLICIES)


def policy_id(name: str) -> int:
    """The number a shared array stores for the policy `name` (the VM's vm_meta[M_POLICY]): its place
    in the order of registration, which POLICIES keeps. A policy registered later takes the next
    number and renumbers none before it, so what a running machine stored keeps its meaning; every
    process forked after the registrations agrees on it."""
    return list(POLICIES).index(name)


def policy_name(pid: int) -> str:
    """The policy a shared array's number `pid` names (the inverse of `policy_id`)."""
    return list(POLICIES)[pid]


def register(name: str) -> Callable[[P], P]:
    """Class decorator: name the policy and add it to POLICIES."""

    def deco(cls: P) -> P:
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            raise TypeError(f"@register({name!r}) decorates a Policy subclass, not {cls!r}")
        if name in POLICIES and POLICIES[name] is not cls:
            raise ValueError(f"policy name {name!r} is already taken by {POLICIES[name].__name__}")
        cls.name = name
        POLICIES[name] = cls
        return cls

    return deco
