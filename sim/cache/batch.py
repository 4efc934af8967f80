"""A read's worth of plain GETs and SETs in one compiled call: what a Redis-protocol front end runs first.

Owns one core's `PlainBatch`: the arguments of db_kernels.run_plain bound once (the keyspace's
arrays, the physical memory, the stripes' lock words), its output buffer, and the decision of when
a read may take that path at all. Touches what run_plain touches (db_kernels.py's doc), under the
stripes' futex words; wakes the waiters the kernel's releases found.

Redis's own pipelining runs each command of a read through processCommand; the Python path here
costs 6-10 µs a command (bench/micro_resp.py), most of it interpreting. The commonest commands of a
cache, in their plainest form, run instead in one call per read, and the first command the kernel
does not take (db_kernels.py lists when) and everything after it goes the ordinary way, so the
semantics are the Python path's by construction: the kernel only does what that path would have
done, with the same counters.

`usable()` is checked per read, before the call: a heap in an address space (its bytes move through
the MMU), a registered sim/policies policy (exact.py hears of every access), an LFU policy (the
counter's coin is Python's), or a capture running (commands.py's monitor) send the whole read to
the Python path.
"""

from __future__ import annotations

import numpy as np

from memsim.sim.alloc.layout import OWNER_CORE_SHIFT
from memsim.sim.alloc.malloc_kernels import size_lookups
from memsim.sim.alloc.owners import CACHE_ENTRY
from memsim.sim.alloc.pagesource import FlatPhysicalSource
from memsim.sim.alloc.sizeclasses import table
from memsim.sim.cache import db_kernels as K
from memsim.sim.cache.db import ENTRY_BYTES
from memsim.sim.cache.evict import LFU_POLICIES, lru_clock
from memsim.sim.cache.layout import C_MAXMEMORY, C_POLICY, STRIPES
from memsim.sim.cache.t_string import Strings
from memsim.sim.machine import futex, jit
from memsim.sim.machine.locks import WordLock

OUT_BYTES = 256 << 10  # one call's replies at most; the rest of a read goes the Python way
REFILLS = 4  # kernel calls per run at most: a new key takes up to three stocks (entries, key and value classes)


class PlainBatch:
    """One core's compiled GET/SET path over its Keyspace (`ks`); None-like when it cannot be used."""

    def __init__(self, ks: Strings):
        self.ks = ks
        a = ks.a
        src = ks.heap.source
        lock0 = ks.locks[0].lock
        self.enabled = (isinstance(src, FlatPhysicalSource) and not ks.heap_paged
                        and all(isinstance(s.lock, WordLock) and s.lock.index == lock0.index + i
                                for i, s in enumerate(ks.locks)))
        self.out = np.zeros(OUT_BYTES, np.uint8)
        self.res = np.zeros(K.R_CELLS, np.int64)
        self.ctl = np.zeros(K.C_CELLS, np.int64)
        self.out_v, self.res_v, self.ctl_v = self.out.data, self.res.data, self.ctl.data
        if not self.enabled:
            return
        assert isinstance(lock0, WordLock) and isinstance(src, FlatPhysicalSource)
        self.words = lock0.words
        self.words_addr = self.words.ctypes.data
        self.lock_stats = lock0.stats
        self.mem, self.base = src.mem.data, src.base
        c = self.ctl
        c[K.C_OWNER_ID] = lock0.owner_id
        c[K.C_MASK] = ks.mask
        c[K.C_CAPACITY] = ks.capacity
        c[K.C_LOCK0] = lock0.index
        c[K.C_CORE] = ks.heap.core
        c[K.C_STRIPES] = STRIPES
        heap = ks.heap
        c[K.C_ARENA] = heap.base
        c[K.C_OBJ_OWNER] = (heap.core + 1) << OWNER_CORE_SHIFT | CACHE_ENTRY  # Heap.malloc's word for _store's
        c[K.C_ENTRY_BYTES] = ENTRY_BYTES
        ha = heap.a
        self.arrays = (a.ks_bucket, a.e_hash, a.e_key, a.e_klen, a.e_val, a.e_vlen, a.e_expire, a.e_lru, a.e_next,
                       self.mem, self.base, a.ks_seq, self.words, self.lock_stats, a.ks_core,
                       np.zeros(40, np.uint64), ks.entries, ks.entries_top, heap.mcache.slots, heap.mcache.count,
                       heap.mcache.owed, ha.slot_state, ha.obj_owner, ha.obj_size, ha.core_stats[heap.core],
                       ha.core_mallocs[heap.core],
                       *size_lookups(heap.t))
        # bound for a read's bytes (what the event loop hands over): the call skips numba's dispatcher
        self.kernel = jit.entry_point(K.run_plain, b"", 0, 0, self.out, 0, c, self.res, *self.arrays)

    def usable(self) -> bool:
        ks = self.ks
        return self.enabled and ks.exact.active < 0 and ks.v_config[C_POLICY] not in LFU_POLICIES

    def run(self, data: bytes, start: int, room: int, resp3: bool) -> tuple[int, bytes, int, int]:
        """Run data's plain GETs and SETs from `start`: (where it stopped, their replies, how many ran, the
        last one's kind: db_kernels.LAST_GET or LAST_SET). The caller holds the core's mutex and checked
        usable(); `declined()` then says whether it stopped at a plain command and what it is."""
        ks = self.ks
        c = self.ctl_v  # memoryviews: an item costs a tenth of a NumPy scalar's, and this runs per request
        now = ks.clock()
        c[K.C_NOW_MS] = now
        c[K.C_LRU] = lru_clock(now)
        c[K.C_ME] = futex.my_pid()
        c[K.C_MAXMEMORY] = ks.v_config[C_MAXMEMORY]
        c[K.C_RESP3] = resp3
        res = self.res_v
        replies, done, last = b"", 0, 0
        for _ in range(REFILLS):
            self.kernel(data, start, len(data), self.out, room if room < OUT_BYTES else OUT_BYTES, self.ctl,
                        self.res, *self.arrays)
            for i in range(res[K.R_NWAKE]):
                futex.futex_wake(self.words_addr + 4 * res[K.R_WAKE + i])
            n = res[K.R_OUT]
            replies += bytes(self.out_v[:n])
            if res[K.R_DONE]:
                done += res[K.R_DONE]
                last = res[K.R_LAST]
            need = res[K.R_NEED]
            if not need or not self._refill(need):
                break
            start, room = res[K.R_POS], room - n
        return res[K.R_POS], replies, done, last

    def _refill(self, need: int) -> bool:
        """The stock a new key found empty (db_kernels.R_NEED), a batch under its lock: True if the kernel
        may go on. What cannot be refilled (the heap or the table full) is left to the Python path's error."""
        if need == K.NEED_ENTRIES:
            return self.ks.refill_entries() > 0
        return self.ks.heap.mcache.refill(need)

    def declined(self, data: bytes) -> tuple[int, list[bytes]] | None:
        """The plain GET or SET the last run stopped at without running it (a tiny new value, a busy stripe ...):
        (where it ends, its arguments), for the caller to run the ordinary way; None if it stopped at
        anything else."""
        res = self.res_v
        end = res[K.R_END]
        if end < 0:
            return None
        k, v = res[K.R_KOFF], res[K.R_VOFF]
        key = data[k:k + res[K.R_KLEN]]
        return end, ([b"set", key, data[v:v + res[K.R_VLEN]]] if res[K.R_SET] else [b"get", key])


def warm() -> None:
    """Compile (or load from numba's cache) run_plain for the types PlainBatch calls it with, so that
    cores forked after this inherit it compiled (the supervisor calls it before forking); the stripes'
    lock words' kernels too."""
    futex.warm()
    u8, i32, u32, i64, u64 = (np.zeros(1, t) for t in (np.uint8, np.int32, np.uint32, np.int64, np.uint64))
    u16 = np.zeros(1, np.uint16)
    rows = np.zeros((1, 1), np.int64)
    jit.entry_point(K.run_plain, b"", 0, 0, u8, 0, i64, i64, i32, u64, u64, u32, u64, u32, i64, u32, i32, u8, 0,
                    i64, i32, rows, rows, u64, i64, i64, rows, i64, i64, u8, u32, u16, i64, i64, *size_lookups(table()))
