"""The keyspace's compiled paths: the key hash, a chain lookup, and a read's worth of plain GETs and SETs.

Owns no state. The kernels read and write the arrays db.py owns (layout.py says which lock guards
each), under the same locks: a stripe's lock is its futex word (sim/machine/futex.py), which a
kernel takes and gives back itself with one CAS and one fetch-and, and the stripe's seqcount is
bumped around every change as SeqStripe does (seqlock.py). Called by batch.py, which decides when
a read may take this path at all.

`key_hash` is db.py's key hash in compiled code: BLAKE2b with an 8-byte digest (RFC 7693, its
algorithm and constants), the value of hashlib.blake2b(key, digest_size=8) read little-endian, so
that a kernel finds the keys Python stored and the other way round.

`run_plain` is Redis's processMultibulkBuffer + processCommand for the two commands a cache spends
its life on, in their plainest form (`GET key`, `SET key value` with no option), over the raw bytes
of a read: it runs commands from `pos` on, appending each reply to `out`, and stops at the first
command it does not take whole, leaving that command and all after it untouched (not parsed, not
counted, no lock held) for the Python path (the RESP parser and `Commands.execute`) to run as if
nothing had gone before. It stops at: anything but `*2 $3 GET` / `*3 $3 SET` multibulk headers with
plain lengths (inline commands, options, other commands, an unfinished frame, a malformed one); a
stripe whose lock stays taken for SPIN tries (the Python path waits, counting it as contention);
an expired key (Python's lookup deletes it); a SET of an existing key with a value of another length
(a free and a malloc through the Heap); a SET while used_memory plus what it adds is over maxmemory
(admission may evict, evict.py); a new key that the core's own stocks cannot serve (below); a reply
that would not fit `out`. Taken commands do exactly what the Python path does for them:
total_commands_processed, keyspace_hits/misses, the LRU clock stamp, a SET's value bytes written in
place with its TTL cleared, the lock's acquisition and owner-switch counters; a lock's hold time is
not counted here (nanoseconds, and numba has no clock).

A SET of a new key is Redis's dbAdd, and here set_checked's new-key branch: an entry from the
core's free-entry stack (db.py's `entries`, process-private), its key and value objects from the
core's mcache (malloc_kernels.mcache_alloc: Heap._malloc_small's fast path), the bytes written and
the class's tail zeroed, the entry filled and published on its chain last, used_memory and the key
count charged; the Python path's effects in the Python path's order, so that after the same commands
the machine's arrays are the same either way (tests/sim/cache/test_batch.py compares them). An empty
stock stops the kernel with R_NEED saying which, for the caller to refill a batch under its lock and
call again (Go's mallocgc: nextFreeFast, else mcache.refill, then the allocation); a key or value
under TINY_SIZE (the tiny allocator's blocks are Python's) or over MAX_SMALL_SIZE goes to Python.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.alloc.malloc_kernels import class_of, mcache_alloc
from memsim.sim.alloc.sizeclasses import MAX_OBJECTS_PER_SPAN, MAX_SMALL_SIZE, PAGE_SIZE, TINY_SIZE
from memsim.sim.cache.layout import K_COMMANDS, K_HITS, K_KEYS, K_MISSES, K_USED_BYTES
from memsim.sim.machine import jit
from memsim.sim.machine.futex import WAITERS
from memsim.sim.machine.locks import ACQ, LAST_OWNER, OWNER, OWNER_SWITCH, STAT_COLUMNS

SPIN = 64  # CAS tries on a taken stripe word before leaving the command to Python's waiting acquire

# ctl cells (inputs) and res cells (outputs) of run_plain
C_NOW_MS, C_LRU, C_ME, C_OWNER_ID, C_MAXMEMORY, C_MASK, C_CAPACITY, C_RESP3, C_LOCK0, C_CORE, C_STRIPES = range(11)
# a new key's: the heap arena's first address, the owner word of the keyspace's objects, db.ENTRY_BYTES
C_ARENA, C_OBJ_OWNER, C_ENTRY_BYTES = range(11, 14)
C_CELLS = 14
R_POS, R_OUT, R_DONE, R_LAST, R_NWAKE = range(5)
# the plain GET or SET it stopped at, parsed but not run (R_END -1: it stopped at anything else): where it
# ends, its key's and value's offsets and lengths, whether it is a SET
R_END, R_KOFF, R_KLEN, R_VOFF, R_VLEN, R_SET = range(5, 11)
# a new key it stopped at for want of a stock: the mcache class to refill, NEED_ENTRIES, or 0 (no want)
R_NEED = 11
NEED_ENTRIES = -1
R_WAKE = 12  # the words to FUTEX_WAKE start here
R_CELLS = R_WAKE + 64
LAST_GET, LAST_SET = 1, 2

Buffer = bytes | np.ndarray  # a read as the event loop hands it over (numba types it as a readonly uint8 array)

_CR, _LF, _STAR, _DOLLAR, _PLUS, _MINUS, _UNDERSCORE = 13, 10, 42, 36, 43, 45, 95


# BLAKE2b (RFC 7693): the initialisation vector and the message schedule of its 12 rounds
_IV = np.array([0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
                0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179], dtype=np.uint64)
_SIGMA = np.array([
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4], [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13], [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11], [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5], [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
], dtype=np.int64)
_BLOCK = 128


@jit.njit_kernel
def _rotr(x: np.uint64, r: int) -> np.uint64:
    return (x >> np.uint64(r)) | (x << np.uint64(64 - r))


@jit.njit_kernel
def _mix(v: np.ndarray, a: int, b: int, c: int, d: int, x: np.uint64, y: np.uint64) -> None:
    """RFC 7693's G."""
    v[a] = v[a] + v[b] + x
    v[d] = _rotr(v[d] ^ v[a], 32)
    v[c] = v[c] + v[d]
    v[b] = _rotr(v[b] ^ v[c], 24)
    v[a] = v[a] + v[b] + y
    v[d] = _rotr(v[d] ^ v[a], 16)
    v[c] = v[c] + v[d]
    v[b] = _rotr(v[b] ^ v[c], 63)


@jit.njit_kernel
def _compress(h: np.ndarray, v: np.ndarray, m: np.ndarray, t: int, last: bool) -> None:
    """RFC 7693's F over the message words m, t bytes in so far."""
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = _IV[i]
    v[12] ^= np.uint64(t)
    if last:
        v[14] = ~v[14]
    for r in range(12):
        s = _SIGMA[r]
        _mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        _mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        _mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        _mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        _mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        _mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        _mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        _mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


@jit.njit_kernel
def key_hash(buf: Buffer, off: int, n: int, work: np.ndarray) -> np.uint64:
    """BLAKE2b with an 8-byte digest (hashlib.blake2b(key, digest_size=8), read little-endian) of
    buf[off:off+n]; `work` is 32 uint64 words of scratch (the state, the working vector, the block)."""
    h, v, m = work[0:8], work[8:24], work[24:40]
    for i in range(8):
        h[i] = _IV[i]
    h[0] ^= np.uint64(0x01010000 ^ 8)  # digest length 8, no key, fanout and depth 1
    done = 0
    while True:
        take = min(_BLOCK, n - done)
        for w in range(16):
            word = np.uint64(0)
            for b in range(8):
                i = w * 8 + b
                if i < take:
                    word |= np.uint64(buf[off + done + i]) << np.uint64(8 * b)
            m[w] = word
        last = done + _BLOCK >= n
        _compress(h, v, m, done + take, last)
        done += take
        if last:
            return h[0]


@jit.njit_kernel
def find(head: int, h: np.uint64, buf: Buffer, koff: int, klen: int, e_hash: np.ndarray, e_key: np.ndarray,
         e_klen: np.ndarray, e_next: np.ndarray, mem: np.ndarray, base: int, capacity: int) -> int:
    """The entry holding the key buf[koff:koff+klen] on the chain from head, -1 if none, -2 if the chain
    is longer than the table (read mid-change: db.py's _find raises for the same)."""
    e = head
    steps = capacity
    while e >= 0:
        steps -= 1
        if steps < 0:
            return -2
        if e_hash[e] == h and e_klen[e] == klen:
            p = np.int64(e_key[e]) - base
            same = True
            for i in range(klen):
                if mem[p + i] != buf[koff + i]:
                    same = False
                    break
            if same:
                return e
        e = e_next[e]
    return -1


@jit.njit_kernel
def _number(buf: Buffer, pos: int, end: int, marker: int) -> tuple[int, int]:
    """A header `<marker><digits>\\r\\n` at pos: (its number, the position after it), or (-1, pos) if it is
    anything else (no digits, a leading zero, more than 9 digits, cut short)."""
    if pos >= end or buf[pos] != marker:
        return -1, pos
    i = pos + 1
    n = 0
    digits = 0
    while i < end and 48 <= buf[i] <= 57 and digits < 10:
        n = n * 10 + (buf[i] - 48)
        i += 1
        digits += 1
    if digits == 0 or digits > 9 or (digits > 1 and buf[pos + 1] == 48):
        return -1, pos
    if i + 1 >= end or buf[i] != _CR or buf[i + 1] != _LF:
        return -1, pos
    return n, i + 2


@jit.njit_kernel
def _bulk(buf: Buffer, pos: int, end: int) -> tuple[int, int, int]:
    """A bulk string `$n\\r\\n<n bytes>\\r\\n` at pos: (offset of its bytes, n, position after), or n = -1."""
    n, p = _number(buf, pos, end, _DOLLAR)
    if n < 0 or p + n + 2 > end or buf[p + n] != _CR or buf[p + n + 1] != _LF:
        return 0, -1, pos
    return p, n, p + n + 2


@jit.njit_kernel
def _put_number(out: np.ndarray, o: int, marker: int, n: int) -> int:
    out[o] = marker
    o += 1
    if n == 0:
        out[o] = 48
        o += 1
    else:
        digits = 0
        m = n
        while m:
            digits += 1
            m //= 10
        for i in range(digits - 1, -1, -1):
            out[o + i] = 48 + n % 10
            n //= 10
        o += digits
    out[o] = _CR
    out[o + 1] = _LF
    return o + 2


@jit.njit_kernel
def _lock(words: np.ndarray, wpos: int, me: int) -> bool:
    """Take a stripe's word (futex.py's try_lock, inlined): False after SPIN tries, or at once while a
    starving waiter is its heir (the word beside it), to leave the command to Python's waiting acquire."""
    if jit.atomic_load(words, wpos + 1) != 0:
        return False
    tries = 1
    while jit.atomic_cas(words, wpos, 0, me) != 0:
        if tries == SPIN:
            return False
        tries += 1
    return True


@jit.njit_kernel
def _unlock(words: np.ndarray, wpos: int, res: np.ndarray) -> None:
    if jit.atomic_and(words, wpos, 0) & WAITERS:
        res[R_WAKE + res[R_NWAKE]] = wpos
        res[R_NWAKE] += 1


@jit.njit_kernel
def _store(buf: Buffer, off: int, n: int, cls: int, owner: int, mc_slots: np.ndarray, mc_count: np.ndarray,
           mc_owed: np.ndarray, slot_state: np.ndarray, obj_owner: np.ndarray, obj_size: np.ndarray,
           heap_stats: np.ndarray, mallocs: np.ndarray, sizes: np.ndarray, mem: np.ndarray, base: int,
           arena: int) -> int:
    """db.py's _store for a class the caller saw stocked: an object from the mcache holding buf[off:off+n],
    the rest of its class's bytes zeroed (Heap zeroes them all). Returns its address."""
    slot = mcache_alloc(cls, n, owner, mc_slots, mc_count, mc_owed, slot_state, obj_owner, obj_size, heap_stats,
                        mallocs)
    size = sizes[cls]
    addr = arena + (slot // MAX_OBJECTS_PER_SPAN) * PAGE_SIZE + (slot % MAX_OBJECTS_PER_SPAN) * size
    p = addr - base
    for i in range(n):
        mem[p + i] = buf[off + i]
    for i in range(n, size):
        mem[p + i] = 0
    return addr


@jit.njit_kernel
def run_plain(buf: Buffer, pos: int, end: int, out: np.ndarray, cap: int, ctl: np.ndarray, res: np.ndarray,
              ks_bucket: np.ndarray, e_hash: np.ndarray, e_key: np.ndarray, e_klen: np.ndarray,
              e_val: np.ndarray, e_vlen: np.ndarray, e_expire: np.ndarray, e_lru: np.ndarray, e_next: np.ndarray,
              mem: np.ndarray, base: int, seq: np.ndarray, words: np.ndarray, lock_stats: np.ndarray,
              ks_core: np.ndarray, work: np.ndarray, entries: np.ndarray, entries_top: np.ndarray,
              mc_slots: np.ndarray, mc_count: np.ndarray, mc_owed: np.ndarray, slot_state: np.ndarray,
              obj_owner: np.ndarray,
              obj_size: np.ndarray, heap_stats: np.ndarray, mallocs: np.ndarray, small: np.ndarray,
              large: np.ndarray, sizes: np.ndarray) -> None:
    """Run the plain GETs and SETs of buf[pos:end] from its start until the first command left to Python
    (the module doc); res says where it stopped, how much of out it filled, which words to wake, and
    (R_END ...) the plain command it stopped at, if it stopped at one, for the caller to run and go on after.
    `work` is key_hash's scratch; `entries` ... `mallocs` are the core's stocks and rows a new key is
    made from (_db_add), `small`, `large` and `sizes` the allocator's size classes (malloc_kernels.py)."""
    now, lru, me, owner_id = ctl[C_NOW_MS], ctl[C_LRU], ctl[C_ME], ctl[C_OWNER_ID]
    maxmemory, mask, capacity, resp3 = ctl[C_MAXMEMORY], ctl[C_MASK], ctl[C_CAPACITY], ctl[C_RESP3]
    lock0, core, stripes = ctl[C_LOCK0], ctl[C_CORE], ctl[C_STRIPES]
    o = 0
    done = 0
    res[R_NWAKE] = 0
    res[R_END] = -1
    res[R_NEED] = 0
    while pos < end and res[R_NWAKE] < R_CELLS - R_WAKE:
        nargs, p = _number(buf, pos, end, _STAR)
        if nargs != 2 and nargs != 3:
            break
        noff, nlen, p = _bulk(buf, p, end)
        if nlen != 3:
            break
        c0, c1, c2 = buf[noff] | 32, buf[noff + 1] | 32, buf[noff + 2] | 32
        is_get = c0 == 103 and c1 == 101 and c2 == 116 and nargs == 2  # "get"
        is_set = c0 == 115 and c1 == 101 and c2 == 116 and nargs == 3  # "set"
        if not (is_get or is_set):
            break
        koff, klen, p = _bulk(buf, p, end)
        if klen <= 0:
            break
        voff, vlen = 0, 0
        if is_set:
            voff, vlen, p = _bulk(buf, p, end)
            if vlen <= 0:
                break
        res[R_END], res[R_KOFF], res[R_KLEN], res[R_VOFF], res[R_VLEN], res[R_SET] = p, koff, klen, voff, vlen, is_set
        used = 0
        if is_set and maxmemory:
            for c in range(ks_core.shape[0]):
                used += ks_core[c, K_USED_BYTES]
            if used > maxmemory:
                break
        h = key_hash(buf, koff, klen, work)
        bucket = np.int64(h & np.uint64(mask))
        stripe = bucket % stripes
        row = lock0 + stripe
        wpos = row * 2 * STAT_COLUMNS + 2 * OWNER
        if not _lock(words, wpos, me):
            break
        e = find(ks_bucket[bucket], h, buf, koff, klen, e_hash, e_key, e_klen, e_next, mem, base, capacity)
        if e >= 0 and e_expire[e] != 0 and e_expire[e] <= now:
            e = -2  # expired: Python's lookup deletes it
        if is_get:
            need = 5 if e < 0 else 16 + np.int64(e_vlen[e])
            if e == -2 or o + need > cap:
                _unlock(words, wpos, res)
                break
        elif e == -2 or o + 5 > cap or (e >= 0 and np.int64(e_vlen[e]) != vlen):
            _unlock(words, wpos, res)
            break
        kc, vc = 0, 0
        if is_set and e == -1:  # a new key: only if the stocks serve it and maxmemory admits it
            if TINY_SIZE <= klen <= MAX_SMALL_SIZE and TINY_SIZE <= vlen <= MAX_SMALL_SIZE:
                kc, vc = class_of(klen, small, large), class_of(vlen, small, large)
            if kc == 0 or (maxmemory and used + sizes[kc] + sizes[vc] + ctl[C_ENTRY_BYTES] > maxmemory):
                _unlock(words, wpos, res)
                break
            if entries_top[0] == 0 or mc_count[kc] == 0 or mc_count[vc] == 0:
                res[R_NEED] = NEED_ENTRIES if entries_top[0] == 0 else kc if mc_count[kc] == 0 else vc
                _unlock(words, wpos, res)
                break
            if kc == vc and mc_count[kc] == 1:  # Python pops the one, refills, pops: its slots, not ours
                _unlock(words, wpos, res)
                break
        # taken whole from here: the lock's counters as SharedLock._acquired keeps them
        lock_stats[row, ACQ] += 1
        if lock_stats[row, LAST_OWNER] != owner_id:
            lock_stats[row, OWNER_SWITCH] += 1
            lock_stats[row, LAST_OWNER] = owner_id
        ks_core[core, K_COMMANDS] += 1
        if is_get:
            if e < 0:
                ks_core[core, K_MISSES] += 1
                if resp3:
                    out[o], out[o + 1], out[o + 2] = _UNDERSCORE, _CR, _LF
                    o += 3
                else:
                    out[o], out[o + 1], out[o + 2], out[o + 3], out[o + 4] = _DOLLAR, _MINUS, 49, _CR, _LF
                    o += 5
            else:
                ks_core[core, K_HITS] += 1
                e_lru[e] = lru
                n = int(e_vlen[e])
                o = _put_number(out, o, _DOLLAR, n)
                src = np.int64(e_val[e]) - base
                for i in range(n):
                    out[o + i] = mem[src + i]
                o += n
                out[o], out[o + 1] = _CR, _LF
                o += 2
            last = LAST_GET
        else:
            jit.atomic_add(seq, stripe, 1)  # odd: a writer is inside (seqlock.py)
            if kc:
                owner, arena = ctl[C_OBJ_OWNER], ctl[C_ARENA]
                top = entries_top[0] - 1
                entries_top[0] = top
                e = entries[top]
                kaddr = _store(buf, koff, klen, kc, owner, mc_slots, mc_count, mc_owed, slot_state, obj_owner,
                               obj_size, heap_stats, mallocs, sizes, mem, base, arena)
                vaddr = _store(buf, voff, vlen, vc, owner, mc_slots, mc_count, mc_owed, slot_state, obj_owner,
                               obj_size, heap_stats, mallocs, sizes, mem, base, arena)
                ks_core[core, K_USED_BYTES] += sizes[kc] + sizes[vc]
                # dbAdd (db.py's _publish): the entry filled, then put on its chain last
                e_hash[e] = h
                e_key[e], e_klen[e] = kaddr, klen
                e_val[e], e_vlen[e] = vaddr, vlen
                e_expire[e] = 0
                e_lru[e] = lru
                e_next[e] = ks_bucket[bucket]
                ks_bucket[bucket] = e
                ks_core[core, K_USED_BYTES] += ctl[C_ENTRY_BYTES]
                ks_core[core, K_KEYS] += 1
            else:
                dst = np.int64(e_val[e]) - base
                for i in range(vlen):
                    mem[dst + i] = buf[voff + i]
                e_expire[e] = 0
                e_lru[e] = lru
            jit.atomic_add(seq, stripe, 1)
            out[o], out[o + 1], out[o + 2], out[o + 3], out[o + 4] = _PLUS, 79, 75, _CR, _LF  # +OK
            o += 5
            last = LAST_SET
        _unlock(words, wpos, res)
        res[R_END] = -1
        res[R_LAST] = last
        done += 1
        pos = p
    res[R_POS] = pos
    res[R_OUT] = o
    res[R_DONE] = done
