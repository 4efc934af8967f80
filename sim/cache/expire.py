"""Expiry, as Redis's src/expire.c: EXPIRE and its kin, TTL/PTTL, PERSIST, and the active expire cycle.

Owns: the keys' TTLs (e_expire, under the key's stripe lock), the expired_keys counter of active
expiry, and the active cycle's walk (ks_expire_cursor, shared by the cores and written without a
lock: a lost update only re-checks a few buckets). Lazy expiry (a key deleted when touched after
its time) is db.py's lookup.

Lazy expiry never frees a key nobody reads again. Redis therefore also runs, hz times a second,
a slow cycle (activeExpireCycle): sample keys with a TTL, 20 per loop
(ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP) taken in bucket order from where the last loop stopped
(db->expires_cursor), delete the expired ones, and loop again while more than 10 % of a sample
was expired (ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE), within 25 % of a core's time (25 ms per call
at hz 10), looking at the clock every 16 loops. `active-expire-effort` (1-10) adds, per step
above 1, a quarter more keys per loop, 2 % more CPU, and lowers the stale target by 1 %. The
estimate is statistical, as Redis's is: when fewer than 10 % of sampled keys are expired, the
rest can wait for the next cycle or for a read. Any core may run a cycle; deleting goes through
the keyspace's locks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from memsim.sim.cache.db import Db
from memsim.sim.cache.layout import K_EXPIRED
from memsim.sim.cache.util import parse_int64
from memsim.sim.errors import InvalidArgument

KEYS_PER_LOOP = 20
ACCEPTABLE_STALE = 10  # percent
SLOW_TIME_PERC = 25  # percent of a core
HZ = 10
LLONG_MAX = (1 << 63) - 1


@dataclass(frozen=True)
class ExpireArgs:
    """EXPIRE's arguments made absolute: the key, the time in ms, Redis 7's NX/XX/GT/LT."""

    key: bytes
    when_ms: int
    nx: bool
    xx: bool
    gt: bool
    lt: bool


def parse_expire(args: list[bytes], unit_ms: int, absolute: bool, now_ms: int) -> ExpireArgs:
    """EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key n [NX|XX|GT|LT], in Redis's order (expireGenericCommand):
    the options, then the number, then its overflow checks."""
    flags: set[bytes] = set()
    for arg in args[3:]:
        opt = bytes(arg).upper()
        if opt not in (b"NX", b"XX", b"GT", b"LT"):  # a flag given twice is fine, as in Redis
            raise InvalidArgument(f"ERR Unsupported option {bytes(arg).decode('utf-8', 'replace')[:64]}")
        flags.add(opt)
    if b"NX" in flags and flags & {b"XX", b"GT", b"LT"}:
        raise InvalidArgument("ERR NX and XX, GT or LT options at the same time are not compatible")
    if {b"GT", b"LT"} <= flags:
        raise InvalidArgument("ERR GT and LT options at the same time are not compatible")
    n = parse_int64(bytes(args[2]))
    invalid = InvalidArgument(f"ERR invalid expire time in '{bytes(args[0]).decode('ascii', 'replace').lower()}' "
                              f"command")
    if unit_ms != 1 and not -((LLONG_MAX + 1) // unit_ms) <= n <= LLONG_MAX // unit_ms:
        raise invalid  # Redis: when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000 (C truncates toward zero)
    base = 0 if absolute else now_ms
    when = n * unit_ms
    if when > LLONG_MAX - base:
        raise invalid
    return ExpireArgs(bytes(args[1]), when + base, b"NX" in flags, b"XX" in flags, b"GT" in flags, b"LT" in flags)


class Expires(Db):
    """The EXPIRE family over the table."""

    def expire_at(self, key: bytes, when_ms: int, *, nx: bool = False, xx: bool = False, gt: bool = False,
                  lt: bool = False) -> bool:
        """PEXPIREAT with Redis 7's conditions (NX: no TTL yet; XX: has one; GT/LT: later/sooner than
        the current one, no TTL counting as forever). A time already past deletes the key, as Redis
        does, without counting it as expired. False if the key is missing or a condition failed."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, bucket, h)
            if e < 0:
                return False
            cur = int(self.a.e_expire[e])
            if (nx and cur) or (xx and not cur) or (gt and (not cur or when_ms <= cur)) or \
                    (lt and cur and when_ms >= cur):
                return False
            if when_ms <= self.clock():
                _, prev = self._find(bucket, h, key)
                self._unlink_and_free(bucket, e, prev)
                return True
            self.a.e_expire[e] = when_ms
            return True

    def persist(self, key: bytes) -> bool:
        """PERSIST: drop the key's TTL; False if it is missing or had none."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, bucket, h)
            if e < 0 or not int(self.a.e_expire[e]):
                return False
            self.a.e_expire[e] = 0
            return True

    def pttl(self, key: bytes) -> int:
        """Milliseconds to live; -2 if the key does not exist, -1 if it has no expiry (Redis's PTTL)."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, bucket, h)
            if e < 0:
                return -2
            exp = int(self.a.e_expire[e])
            return -1 if exp == 0 else max(0, exp - self.clock())

    def expire_if_due(self, key: bytes) -> bool:
        """Delete key if its time has come; True only if this call deleted it (active expiry)."""
        if not key:
            return False
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e, prev = self._find(bucket, h, key)
            if e < 0 or not self._expired(e):
                return False
            self._unlink_and_free(bucket, e, prev)
            self.stats[K_EXPIRED] += 1
            return True

    def any_volatile(self) -> bool:
        """Whether some key has a TTL (a racy NumPy look, for volatile-* policies' fast refusal)."""
        return bool(np.any(self.a.e_expire[self.a.e_klen > 0]))

    def expires_summary(self) -> tuple[int, int]:
        """(keys with a TTL, their mean time to live in ms) for INFO's keyspace line (a racy snapshot)."""
        a = self.a
        exp = a.e_expire[(a.e_klen > 0) & (a.e_expire != 0)]
        if not exp.size:
            return 0, 0
        return int(exp.size), max(0, int(exp.mean()) - self.clock())

    def ttl_entries_from(self, cursor: int, n: int) -> tuple[list[int], int]:
        """Entries with a TTL in bucket order from `cursor`: (up to n entries, next cursor).

        The active expire cycle walks the whole table this way, as Redis walks its expires dict
        with db->expires_cursor: a random start would keep re-sampling regions it had already
        cleaned and stop while other regions were still full of dead keys."""
        a = self.a
        nb = a.ks_bucket.shape[0]
        out: list[int] = []
        b = cursor % nb
        for _ in range(min(nb, 20 * n)):  # Redis visits at most num*20 buckets per loop
            e, steps = int(a.ks_bucket[b]), 0
            while e >= 0 and steps < 64:
                if a.e_klen[e] and a.e_expire[e]:
                    out.append(e)
                e, steps = int(a.e_next[e]), steps + 1
            b = (b + 1) % nb
            if len(out) >= n:
                break
        return out, b


# -- activeExpireCycle() -----------------------------------------------------------------------

@dataclass
class CycleStats:
    loops: int = 0
    sampled: int = 0
    expired: int = 0
    timed_out: bool = False


def cycle_parameters(effort: int, hz: int) -> tuple[int, float, int]:
    """(keys per loop, time limit in seconds, acceptable stale %) as Redis derives them."""
    if not 1 <= effort <= 10:
        raise ValueError("active-expire-effort must be between 1 and 10")
    e = effort - 1
    keys = KEYS_PER_LOOP + KEYS_PER_LOOP // 4 * e
    perc = SLOW_TIME_PERC + 2 * e
    return keys, perc / 100 / hz, ACCEPTABLE_STALE - e


def active_expire_cycle(ks: Expires, effort: int = 1, hz: int = HZ) -> CycleStats:
    keys_per_loop, limit, stale = cycle_parameters(effort, hz)
    st = CycleStats()
    t0 = time.perf_counter()
    a = ks.a
    while True:
        st.loops += 1
        if st.loops % 16 == 0 and time.perf_counter() - t0 > limit:  # Redis looks at the clock every 16 loops
            st.timed_out = True
            break
        # A shared cursor: cores running cycles share the walk (a lost update only re-checks a few buckets).
        picks, a.ks_expire_cursor[0] = ks.ttl_entries_from(int(a.ks_expire_cursor[0]), keys_per_loop)
        if not picks and (a.e_expire != 0).sum() == 0:
            break  # no key has a TTL
        if not picks:
            continue  # only empty buckets in this stretch: the next loop goes on from there
        now = ks.clock()
        expired = 0
        for e in picks:
            exp = int(a.e_expire[e])
            if exp and exp <= now and ks.expire_if_due(ks.key_of(e)):
                expired += 1
        st.sampled += len(picks)
        st.expired += expired
        if expired * 100 <= stale * len(picks):
            break
    return st
