"""The one interface every replacement policy implements, and the registry that names them.

A policy is decoupled from storage, as in libCacheSim and Linux's reclaim code: the owner
(the Redis-like keyspace, the frame pool of virtual memory, the trace simulator) holds the
values and decides WHEN to evict (maxmemory reached, no free frame, cache full); the
policy only keeps the metadata it needs (queues, bits, counters) and decides WHOM.

The owner reports every event that concerns a key, exactly once:

    insert(key)   a new key entered the cache        precondition: key not present
    hit(key)      an access to a present key         precondition: key present
    remove(key)   the owner deleted it (DEL, expiry, munmap, page freed)
    evict()       choose a victim, forget it, return it (KeyError if empty)

Preconditions are checked: inserting a present key raises ValueError, hit/remove of an
absent key raise KeyError, so that a bookkeeping bug in an owner fails loudly instead of
silently skewing an experiment. Keys are any hashable (ints in tests, bytes in the cache,
(space, vpn) pairs in virtual memory). Every method is O(1), or O(1) amortized for the
policies whose eviction scans (Clock, SIEVE, S3-FIFO: each step of a scan pays back one
earlier hit or one earlier insertion).

`capacity` is the owner's size in objects. A policy may use it to size internal queues
(S3-FIFO's 10 % small queue, the active list of the two-list policy); it never evicts on
its own, and it keeps working, merely less well tuned, if the owner holds more or fewer
keys than that.

A new policy is a new module with a class decorated `@register("name")` plus one import
line in `sim/policies/__init__.py`; `POLICIES` then maps the name to the class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import ClassVar, TypeVar

__all__ = ["POLICIES", "Policy", "register"]


class Policy(ABC):
    """Replacement policy: tracks the keys the owner holds and picks victims. See the module doc."""

    name: ClassVar[str]

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 object, got {capacity}")
        self.capacity = capacity

    @abstractmethod
    def insert(self, key: Hashable) -> None:
        """A new key entered the cache (ValueError if it is already present)."""

    @abstractmethod
    def hit(self, key: Hashable) -> None:
        """An access to a present key (KeyError if absent)."""

    @abstractmethod
    def remove(self, key: Hashable) -> None:
        """The owner deleted a present key; forget it without counting an eviction (KeyError if absent)."""

    @abstractmethod
    def evict(self) -> Hashable:
        """Choose a victim, forget it and return it (KeyError if the policy holds no key)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of keys present."""

    @abstractmethod
    def __contains__(self, key: object) -> bool:
        """Whether key is present."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {len(self)}/{self.capacity}>"

    # helpers for subclasses: the precondition errors, worded once
    @staticmethod
    def _present(key: Hashable) -> ValueError:
        return ValueError(f"key {key!r} is already present: insert() is for new keys, use hit()")

    def _empty(self) -> KeyError:
        return KeyError(f"evict() from an empty {self.name!r} policy")


POLICIES: dict[str, type[Policy]] = {}

P = TypeVar("P", bound=type[Policy])


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
