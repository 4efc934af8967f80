"""The string commands, as Redis's src/t_string.c: GET, SET and its options, GETDEL, MGET, MSET,
INCRBY and its kin, APPEND, STRLEN.

Owns: what a string command does to the table (db.py), and SET's option parsing. Touches what
db.py's lookup and write helpers touch: a key's stripe (MSET: every stripe of its keys, in
ascending order), entries, the heap. Nothing here evicts: admission (evict.py) runs before a
denyoom command's handler, from the dispatcher (commands.py), outside any stripe lock; `growth`
is what it asks of a write here.

Invariants: a write either publishes all of itself or nothing (an OOM from the heap leaves the
old value in place; MSET takes every entry and object it needs before it publishes any); a read
and the write that depends on it (INCRBY, APPEND, SET ... GET/NX/XX) run under one hold of the
stripe lock, as one Redis command runs on one thread.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from memsim.sim.cache.db import ENTRY_BYTES, MAX_VALUE_BYTES, Db
from memsim.sim.cache.layout import K_READ_RETRIES
from memsim.sim.cache.util import E_NOT_INT, MAX_INT64_CHARS, parse_int64
from memsim.sim.errors import InvalidArgument

MAX_EXPIRE_MS = (1 << 63) - 1
E_TOO_BIG = f"ERR string exceeds maximum allowed size ({MAX_VALUE_BYTES} bytes)"
E_SET_EXPIRE = "ERR invalid expire time in 'set' command"


@dataclass
class SetOptions:
    """SET's options (Redis's setCommand flags) with the expiry made absolute (ms)."""

    expire_at_ms: int = 0
    nx: bool = False
    xx: bool = False
    keepttl: bool = False
    get: bool = False


NO_SET_OPTIONS = SetOptions()  # a plain SET's: shared, so never changed by anyone holding it


def parse_set_options(args: list[bytes], now_ms: int) -> SetOptions:
    """Redis's parseExtendedStringArgumentsOrReply for SET: NX|XX, GET, KEEPTTL|EX|PX|EXAT|PXAT n."""
    o = SetOptions()
    i = 0
    while i < len(args):
        opt = bytes(args[i]).upper()
        if opt == b"NX" and not o.xx:
            o.nx = True
        elif opt == b"XX" and not o.nx:
            o.xx = True
        elif opt == b"GET":
            o.get = True
        elif opt == b"KEEPTTL" and not o.expire_at_ms:
            o.keepttl = True
        elif opt in (b"EX", b"PX", b"EXAT", b"PXAT") and not o.keepttl and not o.expire_at_ms and i + 1 < len(args):
            i += 1
            n = parse_int64(bytes(args[i]))
            if n <= 0 or (opt in (b"EX", b"EXAT") and n > (1 << 63) // 1000):
                raise InvalidArgument(E_SET_EXPIRE)
            o.expire_at_ms = {b"EX": now_ms + n * 1000, b"PX": now_ms + n, b"EXAT": n * 1000, b"PXAT": n}[opt]
            if o.expire_at_ms > MAX_EXPIRE_MS:
                raise InvalidArgument(E_SET_EXPIRE)
        else:
            raise InvalidArgument("ERR syntax error")
        i += 1
    return o


def check_value(value: bytes) -> None:
    """A value SET, MSET and the keyspace's writes accept: bytes, at most MAX_VALUE_BYTES."""
    if not isinstance(value, bytes | bytearray):
        raise InvalidArgument("bad value: values are byte strings")
    if len(value) > MAX_VALUE_BYTES:
        raise InvalidArgument(E_TOO_BIG)


class Strings(Db):
    """The string commands over the table."""

    def growth(self, key: bytes, new_len: int) -> int:
        """What writing a new_len-byte value under key adds to used_memory: the whole key, value and
        index entry for a new key, only the value's difference for an existing one (read under the
        key's stripe lock, released before any eviction)."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, bucket, h)
            if e >= 0:
                return self._charge(new_len) - self._charge(int(self.a.e_vlen[e]))
        return self._charge(len(key)) + self._charge(new_len) + ENTRY_BYTES

    # -- reads -------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        h, bucket, stripe = self._locate(key)
        if self.optimistic:
            done, value = self._get_optimistic(key, stripe, bucket, h)
            if done:
                return value
            self.stats[K_READ_RETRIES] += 1
        with self.locks[stripe]:
            e = self._read(key, bucket, h)
            return self._value(e) if e >= 0 else None

    def _get_optimistic(self, key: bytes, stripe: int, bucket: int, h: int) -> tuple[bool, bytes | None]:
        """GET without the stripe lock (read_seqbegin / read_seqretry, see seqlock.py's SeqStripe): (True, the
        reply), or (False, None) to retry under the lock. An expired key is left to the locked path,
        which deletes it."""
        seq = self.seq
        start = seq[stripe]
        if start & 1:
            return False, None
        try:
            e, _ = self._find(bucket, h, key)
            value = None
            if e >= 0:
                exp = self.v_expire[e]
                if exp and exp <= self.clock():
                    return False, None
                value = self._value(e)
        except Exception:  # noqa: BLE001 - garbage seen mid-change; the count check would reject it anyway
            return False, None
        if seq[stripe] != start:
            return False, None
        self._count_read(e)  # its _touch is a racy store of the 24-bit field, as Redis's own is unlocked
        return True, value

    def strlen(self, key: bytes) -> int:
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, bucket, h)
            return int(self.a.e_vlen[e]) if e >= 0 else 0

    def mget(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.get(k) for k in keys]

    def getdel(self, key: bytes) -> bytes | None:
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._read(key, bucket, h)
            if e < 0:
                return None
            value = self._value(e)
            _, prev = self._find(bucket, h, key)
            self._unlink_and_free(bucket, e, prev)
            return value

    # -- writes ------------------------------------------------------------------------

    def set(self, key: bytes, value: bytes, *, expire_at_ms: int = 0, nx: bool = False, xx: bool = False,
            keepttl: bool = False, get: bool = False) -> tuple[bool, bytes | None]:
        """SET with Redis's options. Returns (stored, old value if get=True)."""
        check_value(value)
        if nx and xx:
            raise InvalidArgument("syntax error: NX and XX are mutually exclusive")
        if keepttl and expire_at_ms:
            raise InvalidArgument("ERR syntax error: KEEPTTL and an expiry are mutually exclusive")
        if not 0 <= expire_at_ms <= MAX_EXPIRE_MS:
            raise InvalidArgument(E_SET_EXPIRE)
        return self.set_checked(key, value, expire_at_ms=expire_at_ms, nx=nx, xx=xx, keepttl=keepttl, get=get)

    def set_checked(self, key: bytes, value: bytes, *, expire_at_ms: int = 0, nx: bool = False, xx: bool = False,
                    keepttl: bool = False, get: bool = False,
                    loc: tuple[int, int, int] | None = None) -> tuple[bool, bytes | None]:
        """setGenericCommand() on arguments set() would accept: a value check_value() passed, options as
        parse_set_options() leaves them (the SET command's handler, after its dispatcher check), or
        INCRBY and APPEND, which call it holding the stripe lock and pass the key's `loc` (_locate's)."""
        h, bucket, stripe = loc if loc is not None else self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, bucket, h)
            old = None
            if get and e >= 0:
                old = self._value(e)
            if (nx and e >= 0) or (xx and e < 0):
                return False, old
            if e >= 0:
                self._replace_value(e, bytes(value))
                if not keepttl:
                    self.v_expire[e] = expire_at_ms
                self._touch(e)
                return True, old
            e = self._take_entry()
            try:
                key_obj = self._store(bytes(key))
                try:
                    val_obj = self._store(bytes(value))
                except BaseException:
                    self._drop(key_obj, len(key))
                    raise
            except BaseException:
                self._put_entry(e)  # out of memory: nothing was published
                raise
            self._publish(e, bucket, h, key_obj, len(key), val_obj, len(value), expire_at_ms)
            return True, old

    def _replace_value(self, e: int, value: bytes) -> None:
        """A value of the same length is written over the old one (the stripe's seqcount tells
        lock-free readers); otherwise a new object first, the old one dropped after, so that an
        OOM leaves the old value in place. Same length is the common case of a cache (fixed-size
        records, counters), and skips a malloc and a free."""
        a = self.a
        n = self.v_vlen[e]
        if n and n == len(value):
            # The stripe lock makes this entry's value object ours: it is live and n bytes long, so the
            # checks of Heap.write (is there an object, is it that long) hold without being made.
            self.heap.raw_write(self.v_val[e], value)
            return
        new_val = self._store(value)
        self._drop(int(a.e_val[e]), int(a.e_vlen[e]))
        a.e_val[e] = new_val
        a.e_vlen[e] = len(value)

    def incrby(self, key: bytes, delta: int) -> int:
        """INCRBY/DECRBY/INCR/DECR: a missing key counts as 0; the value must be a 64-bit integer."""
        if not -(1 << 63) <= delta < (1 << 63):
            raise InvalidArgument(E_NOT_INT)
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, bucket, h)
            current = 0
            if e >= 0:
                if int(self.a.e_vlen[e]) > MAX_INT64_CHARS:  # no integer: refused without copying it
                    raise InvalidArgument(E_NOT_INT)
                current = parse_int64(self._value(e))
            result = current + delta
            if not -(1 << 63) <= result < (1 << 63):
                raise InvalidArgument("ERR increment or decrement would overflow")
            # Still under the stripe lock (re-entrant): read and write are one step, as in Redis.
            self.set_checked(key, str(result).encode(), keepttl=True, loc=(h, bucket, stripe))
        return result

    def append(self, key: bytes, tail: bytes) -> int:
        """APPEND: returns the new length (a missing key is created)."""
        h, bucket, stripe = self._locate(key)
        with self.locks[stripe]:
            e = self._lookup(key, bucket, h)
            if e >= 0:
                if int(self.a.e_vlen[e]) + len(tail) > MAX_VALUE_BYTES:  # refused before copying anything
                    raise InvalidArgument(E_TOO_BIG)
                value = self._value(e) + bytes(tail)
                self._replace_value(e, value)
                return len(value)
            # under the same lock: nobody can create it in between
            self.set_checked(key, bytes(tail), loc=(h, bucket, stripe))
            return len(tail)

    def mset(self, pairs: list[tuple[bytes, bytes]]) -> None:
        """MSET, atomic as Redis's: every stripe involved is locked, in stripe order, for the whole
        write, and all of it or nothing is written: every entry and object the write needs is taken
        first, and only then is anything published (a full keyspace or heap refuses the whole MSET)."""
        for _, v in pairs:
            check_value(v)
        last = {bytes(k): bytes(v) for k, v in pairs}  # a key given twice: the last value wins, as in Redis
        located = [(self._locate(k), k, v) for k, v in last.items()]
        stripes = sorted({loc[2] for loc, _, _ in located})
        a = self.a
        with ExitStack() as held:
            for s in stripes:
                held.enter_context(self.locks[s])
            plan: list[tuple[int, int, int, int, bytes, bytes, int]] = []  # (entry, bucket, hash, value, ...)
            taken: list[tuple[int, int, int]] = []  # what to give back if anything fails: (entry, object, length)
            try:
                for (h, bucket, _), k, v in located:
                    e = self._lookup(k, bucket, h)
                    val_obj = self._store(v)
                    taken.append((-1, val_obj, len(v)))
                    if e >= 0:
                        plan.append((e, bucket, h, val_obj, k, v, 0))
                        continue
                    new_e = self._take_entry()
                    taken.append((new_e, 0, 0))
                    key_obj = self._store(k)
                    taken.append((-1, key_obj, len(k)))
                    plan.append((new_e, bucket, h, val_obj, k, v, key_obj))
            except BaseException:
                for e, obj, n in taken:
                    if e >= 0:
                        self._put_entry(e)
                    else:
                        self._drop(obj, n)
                raise
            for e, bucket, h, val_obj, k, v, key_obj in plan:  # nothing can fail from here on
                if not key_obj:  # an existing key: the new value object replaces the old one
                    self._drop(int(a.e_val[e]), int(a.e_vlen[e]))
                    a.e_val[e], a.e_vlen[e] = val_obj, len(v)
                    a.e_expire[e] = 0
                    self._touch(e)
                    continue
                self._publish(e, bucket, h, key_obj, len(k), val_obj, len(v), 0)
