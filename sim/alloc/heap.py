"""The heap as one core sees it: malloc, free, read and write (Go's malloc.go).

A `Heap` is built once per core, in that core's worker process. It owns the core's private
parts (its mcache and its tiny block) and reaches the shared parts (the mcentrals, the
mheap, the object words) through the shared-memory arrays of `layout.py`. It is not
thread-safe: a core runs one operation at a time, which the worker guarantees.

Paths, in the order mallocgc tries them:
    size < 16        tiny: pack into this core's 16-byte block (no lock)
    size <= 32 KiB   small: pop this core's mcache list (no lock); refill a batch from the
                     class's mcentral (class lock) which may take a span from the mheap
                     (global lock)
    size > 32 KiB    large: a run of pages straight from the mheap (global lock)
Every result says which layer served it and which locks it waited on.

Objects are zeroed when handed out, as Go's are. Addresses are real heap addresses at Go's
arena base; a client holds them as opaque handles. Bounds are the *requested* size, so a
write one byte past what was asked for is OUT_OF_RANGE even though the size class has room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memsim.sim.alloc import layout as L
from memsim.sim.alloc.mcache import MCache
from memsim.sim.alloc.mcentral import MCentral
from memsim.sim.alloc.mheap import MHeap
from memsim.sim.alloc.pagesource import PageSource
from memsim.sim.alloc.sizeclasses import MAX_OBJECTS_PER_SPAN, MAX_SMALL_SIZE, PAGE_SIZE, TINY_SIZE, table
from memsim.sim.alloc.tiny import BLOCK, TinyAllocator, free_tiny, is_tiny_marker, object_end
from memsim.sim.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange
from memsim.sim.machine.atomics import AtomicArray
from memsim.sim.machine.locks import LockTable

MAX_IO_BYTES = 16 << 20  # one read or write moves at most 16 MiB (gRPC messages stay bounded)

LAYER_TINY, LAYER_MCACHE, LAYER_MCENTRAL, LAYER_MHEAP = "tiny", "mcache", "mcentral", "mheap"
TINY_CLASS = table().class_of(TINY_SIZE)


@dataclass
class AllocResult:
    address: int
    size: int  # requested bytes (the object's bounds)
    usable: int  # bytes of the slot: its size class's size; for a tiny object its own size; pages if large
    size_class: int
    layer: str
    lock_waits: list[tuple[str, int]]


@dataclass
class FreeResult:
    layer: str
    lock_waits: list[tuple[str, int]]


def lock_names(global_lock: bool) -> tuple[list[str], dict[str, str]]:
    """Lock table layout: 'mheap' plus one 'mcentral/<size>B' per class, or one 'global' lock."""
    central = [f"mcentral/{c.size}B" for c in table().classes]
    if global_lock:
        return ["global"], {n: "global" for n in ["mheap", *central]}
    return ["mheap", *central], {}


class Heap:
    def __init__(self, core: int, a: L.HeapArrays, source: PageSource, locks: LockTable, data: np.ndarray,
                 total_pages: int, per_core_caches: bool = True):
        self.core = core
        self.a = a
        self.source = source
        self.locks = locks
        self.t = table()
        self.sizes = self.t.sizes
        self.mheap = MHeap(a, source, locks["mheap"], total_pages)
        self.base = self.mheap.base
        self.centrals: list[MCentral | None] = [None] + [
            MCentral(c, a, locks[f"mcentral/{c.size}B"], self.mheap) for c in self.t.classes
        ]
        # Hot-path views (ndarray.data is a memoryview of the array): a memoryview's element store
        # costs ~55 ns and load ~39 ns, a NumPy element's 94 and 239 (measured on the 2-core
        # development VM, CPython 3.11).
        self.stats = a.core_stats[core].data
        self.mallocs = a.core_mallocs[core].data
        self.frees = a.core_frees[core].data
        self._page_span = a.page_span.data
        self._span_state = a.span_state.data
        self._span_class = a.span_class.data
        self._slot_state = a.slot_state.data
        self._obj_owner = a.obj_owner.data
        self._obj_size = a.obj_size.data
        self._gauges = a.heap_gauges.data
        self._nelems = [0] + [c.objects for c in self.t.classes]
        self._mem = data.data  # physical memory as bytes: slice copies are plain memcpy
        # A paged source (the heap in an address space, sim/vm/heapsource.py) moves bytes itself.
        self._paged = source.paged
        self._zeros = bytes(MAX_SMALL_SIZE)
        self.mcache = MCache(core, self.centrals, self.stats, enabled=per_core_caches)
        self.obj_words = AtomicArray(a.obj_size, locks.fd, stripe_base=1 << 20)
        self.mark_words = AtomicArray(a.tiny_marks, locks.fd, stripe_base=1 << 21)
        self.tiny = TinyAllocator(core, a, self.mark_words, self.obj_words)

    # -- helpers ---------------------------------------------------------------------------

    def _drain_waits(self) -> list[tuple[str, int]]:
        w = self.locks.waits
        if not w:
            return []
        out = list(w)
        w.clear()
        return out

    def _slot_addr(self, slot: int, cls: int) -> int:
        span, idx = divmod(slot, MAX_OBJECTS_PER_SPAN)
        return self.base + span * PAGE_SIZE + idx * self.sizes[cls]

    def _zero(self, addr: int, n: int) -> None:
        if self._paged or n > MAX_SMALL_SIZE:
            self.source.zero(addr, n)
            return
        p = self.source.physical(addr)
        self._mem[p:p + n] = self._zeros[:n]

    def _page_of(self, addr: int, what: str) -> int:
        used = self._gauges[L.G_ARENA_PAGES]
        if not isinstance(addr, int) or addr < self.base or addr >= self.base + used * PAGE_SIZE:
            end = self.base + used * PAGE_SIZE
            raise _bad_address(what, addr, f"outside the heap arena [{self.base:#x}, {end:#x})")
        return (addr - self.base) // PAGE_SIZE

    def owner_word(self, addr: int) -> int | None:
        """obj_owner of the allocated object addr falls in (a tiny object's: its block's; a large
        one's: its span's first slot), or None where none is allocated (owners.py reads it). A free
        slot keeps its last owner's word, which says nothing about who may free it now."""
        used = int(self._gauges[L.G_ARENA_PAGES])
        if not isinstance(addr, int) or not self.base <= addr < self.base + used * PAGE_SIZE:
            return None
        span = int(self._page_span[(addr - self.base) // PAGE_SIZE])
        if span < 0:
            return None
        state = self._span_state[span]
        if state == L.SPAN_LARGE:
            return int(self.a.obj_owner[span * MAX_OBJECTS_PER_SPAN])
        if state != L.SPAN_SMALL:
            return None
        cls = self._span_class[span]
        idx = (addr - self.base - span * PAGE_SIZE) // self.sizes[cls]
        slot = span * MAX_OBJECTS_PER_SPAN + idx
        # obj_size 0 on an allocated slot: being allocated or freed right now, so nobody's yet.
        if idx >= self._nelems[cls] or self._slot_state[slot] != L.ALLOCATED or self._obj_size[slot] == 0:
            return None
        if is_tiny_marker(self._obj_size[slot]):  # a live block: is a tiny object still there?
            start = self.base + span * PAGE_SIZE + idx * self.sizes[cls]
            if not int(self.a.tiny_marks[(start - self.base) // BLOCK]) >> (addr - start) & 1:
                return None
        return int(self.a.obj_owner[slot])

    # -- malloc ----------------------------------------------------------------------------

    def malloc(self, size: int, client: int = 0) -> AllocResult:
        """An object of `size` bytes, recorded as allocated by this core for `client` (an entry of
        owners.py's client table; 0 = nobody's). Tiny objects are recorded by their block."""
        if not isinstance(size, int) or size <= 0:
            raise InvalidArgument(f"bad allocation size {size!r}: must be a positive number of bytes")
        limit = self.mheap.total_pages * PAGE_SIZE
        if size > limit:
            raise InvalidArgument(
                f"bad allocation size {size}: larger than the machine's {limit} bytes of physical memory")
        self.locks.waits.clear()
        owner = (self.core + 1) << L.OWNER_CORE_SHIFT | client
        if size < TINY_SIZE:
            return self._malloc_tiny(size, owner)
        if size <= MAX_SMALL_SIZE:
            return self._malloc_small(size, owner)
        return self._malloc_large(size, owner)

    def _take(self, cls: int) -> tuple[int, str]:
        slot, hit = self.mcache.alloc(cls)
        if hit:
            return slot, LAYER_MCACHE
        c = self.centrals[cls]
        assert c is not None
        return slot, LAYER_MHEAP if c.grew_last else LAYER_MCENTRAL

    def _malloc_small(self, size: int, owner: int) -> AllocResult:
        cls = self.t.class_of(size)
        slot, layer = self._take(cls)
        inflight = self.stats
        inflight[L.S_INFLIGHT] = slot + 1  # if we die before publishing, recovery frees the slot
        self._slot_state[slot] = L.ALLOCATED
        addr = self._slot_addr(slot, cls)
        self._zero(addr, self.sizes[cls])
        self.mallocs[cls] += 1
        inflight[L.S_INFLIGHT] = (slot + 1) | L.INFLIGHT_COUNTED
        self._obj_owner[slot] = owner
        self._obj_size[slot] = size  # publishes the object: from here on it can be read, written, freed
        inflight[L.S_INFLIGHT] = 0
        return AllocResult(addr, size, self.sizes[cls], cls, layer, self._drain_waits())

    def _malloc_tiny(self, size: int, owner: int) -> AllocResult:
        tiny = self.tiny
        # A block holds one owner's objects (owners.py), so that a client's release can free them:
        # another owner's request starts a new block, as a full block does.
        off = tiny.fits(size) if tiny.block_slot < 0 or self._obj_owner[tiny.block_slot] == owner else -1
        layer = LAYER_TINY
        if off < 0:
            if tiny.block_slot >= 0:
                self.stats[L.S_INFLIGHT] = (tiny.block_slot + 1) | L.INFLIGHT_FREE | L.INFLIGHT_TINY_BLOCK
            dead = tiny.retire()
            if dead is not None:
                self._free_tiny_block(dead)
            self.stats[L.S_INFLIGHT] = 0
            slot, layer = self._take(TINY_CLASS)
            if layer == LAYER_MCACHE:
                layer = LAYER_TINY  # a new block from the cache is still the lock-free path
            self.stats[L.S_INFLIGHT] = (slot + 1) | L.INFLIGHT_TINY_BLOCK  # until adopt() marks it ours
            self._slot_state[slot] = L.ALLOCATED
            self._obj_owner[slot] = owner
            addr = self._slot_addr(slot, TINY_CLASS)
            self._zero(addr, BLOCK)
            self.stats[L.S_TINY_BLOCK_ALLOCS] += 1
            self.stats[L.S_INFLIGHT] = (slot + 1) | L.INFLIGHT_TINY_BLOCK | L.INFLIGHT_COUNTED
            tiny.adopt(addr, slot, (addr - self.base) // BLOCK)
            self.stats[L.S_INFLIGHT] = 0
            off = 0
        addr = tiny.place(off, size)
        self.stats[L.S_TINY_ALLOCS] += 1
        return AllocResult(addr, size, size, TINY_CLASS, layer, self._drain_waits())

    def _malloc_large(self, size: int, owner: int) -> AllocResult:
        npages = (size + PAGE_SIZE - 1) // PAGE_SIZE
        with self.mheap.lock:
            span = self.mheap.alloc_pages(npages, 0, reqsize=size)
            self._obj_owner[span * MAX_OBJECTS_PER_SPAN] = owner
        addr = self.base + span * PAGE_SIZE
        self._zero(addr, npages * PAGE_SIZE)
        self.mallocs[0] += 1
        self.stats[L.S_LARGE_ALLOCS] += 1
        self.stats[L.S_LARGE_BYTES_ALLOC] += npages * PAGE_SIZE
        return AllocResult(addr, size, npages * PAGE_SIZE, 0, LAYER_MHEAP, self._drain_waits())

    # -- free ------------------------------------------------------------------------------

    def free(self, addr: int) -> FreeResult:
        self.locks.waits.clear()
        page = self._page_of(addr, "free")
        span = self._page_span[page]
        state = self._span_state[span] if span >= 0 else L.SPAN_FREE
        if state == L.SPAN_LARGE:
            return self._free_large(addr, span)
        if state != L.SPAN_SMALL:
            self.stats[L.S_BAD_FREES] += 1
            raise FailedPrecondition(f"invalid free of {addr:#x}: no object is allocated there (its page is free)")
        cls = self._span_class[span]
        size = self.sizes[cls]
        idx, rem = divmod(addr - self.base - span * PAGE_SIZE, size)
        if idx >= self._nelems[cls]:
            self.stats[L.S_BAD_FREES] += 1
            raise FailedPrecondition(f"invalid free of {addr:#x}: it is in the unused tail of a {size}-byte span")
        slot = span * MAX_OBJECTS_PER_SPAN + idx
        v = self._obj_size[slot]
        if is_tiny_marker(v):
            return self._free_tiny(addr, slot, rem)
        if rem:
            self.stats[L.S_BAD_FREES] += 1
            if v == 0:  # e.g. a tiny object freed twice after its block went back to the heap
                raise FailedPrecondition(f"double or invalid free of {addr:#x}: no object starts there")
            raise FailedPrecondition(
                f"invalid free of {addr:#x}: it points {rem} bytes into the {size}-byte object at {addr - rem:#x}")
        inflight = self.stats
        inflight[L.S_INFLIGHT] = (slot + 1) | L.INFLIGHT_FREE  # between the CAS and caching, only we know it
        if v == 0 or not self.obj_words.cas(slot, v, 0):
            inflight[L.S_INFLIGHT] = 0
            self.stats[L.S_BAD_FREES] += 1
            raise FailedPrecondition(f"double free of {addr:#x}: the object is not allocated")
        self.frees[cls] += 1
        inflight[L.S_INFLIGHT] = (slot + 1) | L.INFLIGHT_FREE | L.INFLIGHT_COUNTED
        self._slot_state[slot] = self.mcache.state
        inflight[L.S_INFLIGHT] = 0
        n_flush = self.stats[L.S_CACHE_FLUSHES]
        self.mcache.free(cls, slot)
        flushed = self.stats[L.S_CACHE_FLUSHES] != n_flush
        layer = LAYER_MCACHE if self.mcache.enabled and not flushed else LAYER_MCENTRAL
        return FreeResult(layer, self._drain_waits())

    def _free_tiny(self, addr: int, slot: int, off: int) -> FreeResult:
        block_index = (addr - off - self.base) // BLOCK
        self.stats[L.S_INFLIGHT] = (slot + 1) | L.INFLIGHT_FREE | L.INFLIGHT_TINY_BLOCK  # we may free the block
        freed, block_free = free_tiny(self.a, self.mark_words, self.obj_words, block_index, slot, off)
        if block_free:
            self._free_tiny_block(slot)
        self.stats[L.S_INFLIGHT] = 0
        if not freed:
            self.stats[L.S_BAD_FREES] += 1
            raise FailedPrecondition(f"double free of {addr:#x}: no tiny object starts there")
        self.stats[L.S_TINY_FREES] += 1
        return FreeResult(LAYER_TINY, self._drain_waits())

    def _free_tiny_block(self, slot: int) -> None:
        """A tiny block with no live objects, already claimed (obj_size 0) by this core.

        The caller has recorded the slot as in flight (FREE | TINY_BLOCK)."""
        self.stats[L.S_TINY_BLOCK_FREES] += 1
        self.stats[L.S_INFLIGHT] = (slot + 1) | L.INFLIGHT_FREE | L.INFLIGHT_TINY_BLOCK | L.INFLIGHT_COUNTED
        self._slot_state[slot] = self.mcache.state
        self.stats[L.S_INFLIGHT] = 0
        self.mcache.free(TINY_CLASS, slot)

    def _free_large(self, addr: int, span: int) -> FreeResult:
        with self.mheap.lock:
            # Re-check under the lock: two cores freeing the same large object race here.
            if int(self.a.page_span[(addr - self.base) // PAGE_SIZE]) != span or \
                    int(self.a.span_state[span]) != L.SPAN_LARGE:
                self.stats[L.S_BAD_FREES] += 1
                raise FailedPrecondition(f"double free of {addr:#x}: the object is not allocated")
            if addr != self.base + span * PAGE_SIZE:
                self.stats[L.S_BAD_FREES] += 1
                raise FailedPrecondition(
                    f"invalid free of {addr:#x}: it points into the large object at {self.base + span * PAGE_SIZE:#x}")
            npages = int(self.a.span_npages[span])
            self.mheap.free_pages(span)
        self.frees[0] += 1
        self.stats[L.S_LARGE_FREES] += 1
        self.stats[L.S_LARGE_BYTES_FREED] += npages * PAGE_SIZE
        return FreeResult(LAYER_MHEAP, self._drain_waits())

    # -- read / write ----------------------------------------------------------------------

    def object_bounds(self, addr: int, what: str = "access") -> tuple[int, int]:
        """(physical offset, requested size) of the live object at addr."""
        a = self.a
        page = self._page_of(addr, what)
        span = int(a.page_span[page])
        state = int(a.span_state[span]) if span >= 0 else L.SPAN_FREE
        if state == L.SPAN_LARGE:
            if addr != self.base + span * PAGE_SIZE:
                raise NotFound(f"{what}: {addr:#x} is not the start of an object "
                               f"(it is inside the large object at {self.base + span * PAGE_SIZE:#x})")
            return self.source.physical(addr), int(a.span_reqsize[span])
        if state != L.SPAN_SMALL:
            raise NotFound(f"{what}: no object is allocated at {addr:#x}")
        cls = int(a.span_class[span])
        idx, rem = divmod(addr - self.base - span * PAGE_SIZE, self.sizes[cls])
        slot = span * MAX_OBJECTS_PER_SPAN + idx
        v = int(a.obj_size[slot]) if idx < MAX_OBJECTS_PER_SPAN else 0
        if self._page_span[page] != span:  # the span was freed and reused while we looked
            raise NotFound(f"{what}: no object is allocated at {addr:#x}")
        if is_tiny_marker(v):
            m = int(a.tiny_marks[(addr - rem - self.base) // BLOCK])
            if (m >> rem) & 1:
                return self.source.physical(addr), object_end(m, rem) - rem + 1
            raise NotFound(f"{what}: no object is allocated at {addr:#x}")
        if rem and v:
            raise NotFound(f"{what}: {addr:#x} is {rem} bytes into the object at {addr - rem:#x}; "
                           f"address the object's start and pass offset={rem}")
        if rem or v == 0:
            raise NotFound(f"{what}: no object is allocated at {addr:#x}")
        return self.source.physical(addr), v

    def _check_range(self, addr: int, offset: int, length: int, size: int, what: str) -> None:
        if not isinstance(offset, int) or offset < 0 or length < 0:
            raise InvalidArgument(f"{what}: offset and length must be non-negative, got {offset} and {length}")
        if length > MAX_IO_BYTES:
            raise InvalidArgument(f"{what}: {length} bytes is more than the {MAX_IO_BYTES}-byte limit of one operation")
        if offset + length > size:
            raise OutOfRange(
                f"{what} of {length} bytes at offset {offset} of the {size}-byte object at {addr:#x} "
                f"runs {offset + length - size} byte{'s' if offset + length - size != 1 else ''} past its end")

    def read(self, addr: int, offset: int, length: int) -> bytes:
        phys, size = self.object_bounds(addr, "read")
        self._check_range(addr, offset, length, size, "read")
        if self._paged:
            return self.source.read(addr + offset, length)
        return bytes(self._mem[phys + offset: phys + offset + length])

    def write(self, addr: int, offset: int, payload: bytes) -> None:
        phys, size = self.object_bounds(addr, "write")
        self._check_range(addr, offset, len(payload), size, "write")
        if payload and self._paged:
            self.source.write(addr + offset, payload)
        elif payload:
            self._mem[phys + offset: phys + offset + len(payload)] = payload

    def raw(self, addr: int, n: int) -> bytes:
        """Unchecked read of n bytes at addr, for a structure that owns the object (the keyspace)."""
        if self._paged:
            return self.source.read(addr, n)
        p = self.source.physical(addr)
        return bytes(self._mem[p:p + n])

    def raw_write(self, addr: int, data: bytes) -> None:
        """Unchecked write of data at addr, for a structure that owns the object and knows it holds at
        least len(data) bytes (the keyspace overwriting a value of the same length under its stripe
        lock): write() without object_bounds' span and slot lookups."""
        if self._paged:
            self.source.write(addr, data)
            return
        p = self.source.physical(addr)
        self._mem[p:p + len(data)] = data

    def usable_size(self, addr: int) -> int:
        """malloc_usable_size(): the bytes the object occupies (its class size; its own size if tiny)."""
        page = self._page_of(addr, "usable_size")
        span = self._page_span[page]
        if span < 0:
            raise NotFound(f"usable_size: no object is allocated at {addr:#x}")
        if self._span_state[span] == L.SPAN_LARGE:
            return int(self.a.span_npages[span]) * PAGE_SIZE
        cls = self._span_class[span]
        idx = (addr - self.base - span * PAGE_SIZE) // self.sizes[cls]
        if is_tiny_marker(self._obj_size[span * MAX_OBJECTS_PER_SPAN + idx]):
            return self.object_bounds(addr)[1]
        return self.sizes[cls]

    # -- lifecycle -------------------------------------------------------------------------

    def release_caches(self) -> int:
        """Give back everything this core holds privately (on a clean worker stop)."""
        if self.tiny.block_slot >= 0:
            self.stats[L.S_INFLIGHT] = (self.tiny.block_slot + 1) | L.INFLIGHT_FREE | L.INFLIGHT_TINY_BLOCK
        dead = self.tiny.retire()
        if dead is not None:
            self._free_tiny_block(dead)
        self.stats[L.S_INFLIGHT] = 0
        return self.mcache.release_all()


def _bad_address(what: str, addr: object, why: str) -> Exception:
    text = f"{addr:#x}" if isinstance(addr, int) else repr(addr)
    if what == "free":
        return FailedPrecondition(f"invalid free of {text}: {why}")
    return OutOfRange(f"{what} at {text}: {why} (the machine's segmentation fault)")
