"""The tiny allocator: requests under 16 bytes packed into one core's current 16-byte block.

Go's mallocgc packs pointer-free objects smaller than 16 B into a per-P 16-byte block
(`c.tiny`, `c.tinyoffset`), aligning each to 8, 4 or 2 bytes by its size, and so cuts the
number of allocations and the heap; ANCHORS §3 cites −12 % allocations, −20 % heap on a JSON
benchmark. Go never frees a tiny object on its own (the GC frees the block when every
object in it is dead). This machine has explicit free, so it needs what the GC provides:

- `tiny_marks[block]` (uint32): bit i = an object starts at byte i, bit 16+j = an object
  ends at byte j. Bounds checks and double-free detection read it; alloc and free change
  it by CAS, because the owner may pack a new object into the block while another core
  frees an old one.
- the block's own `obj_size` word says who holds it: TINY_HELD|core while it is some core's
  current block, TINY_RETIRED once that core has moved on. The block itself is freed when it
  is RETIRED and its marks are empty; the owner retiring it and a remote core freeing its
  last object race for that, and a CAS of RETIRED → 0 picks exactly one of them.

The fast path (the object fits the current block) takes no lock: one CAS on the marks.
Unlike Go's, a block holds one owner's objects (owners.py): a request for another client, or
for none, retires the current block and starts a new one, so that a client's release can find
and free its tiny objects.
"""

from __future__ import annotations

from memsim.sim.alloc import layout as L
from memsim.sim.machine.atomics import AtomicArray

BLOCK = 16


def tiny_align(size: int) -> int:
    if size & 7 == 0:
        return 8
    if size & 3 == 0:
        return 4
    if size & 1 == 0:
        return 2
    return 1


def object_end(marks: int, off: int) -> int:
    """Last byte of the object that starts at `off` (the first end bit at or after it)."""
    ends = (marks >> 16) >> off
    return off + ((ends & -ends).bit_length() - 1)


class TinyAllocator:
    def __init__(self, core: int, a: L.HeapArrays, marks: AtomicArray, sizes: AtomicArray):
        self.a = a
        self.marks = marks
        self.sizes = sizes
        self.held = TINY_HELD_FOR(core)
        self.block_addr = 0  # current block's address (0 = none)
        self.block_slot = -1
        self.block_index = -1  # index into tiny_marks
        self.offset = BLOCK

    def fits(self, size: int) -> int:
        """Offset the object would take in the current block, or -1."""
        if self.block_slot < 0:
            return -1
        al = tiny_align(size)
        off = (self.offset + al - 1) & ~(al - 1)
        return off if off + size <= BLOCK else -1

    def place(self, off: int, size: int) -> int:
        """Record an object at `off` of the current block; returns its address."""
        bits = (1 << off) | (1 << (16 + off + size - 1))
        i = self.block_index
        while True:
            m = int(self.a.tiny_marks[i])
            if self.marks.cas(i, m, m | bits):
                break
        self.offset = off + size
        return self.block_addr + off

    def adopt(self, addr: int, slot: int, block_index: int) -> None:
        """Make a freshly allocated 16-byte object this core's current tiny block."""
        self.a.obj_size[slot] = self.held
        self.a.tiny_marks[block_index] = 0
        self.block_addr, self.block_slot, self.block_index = addr, slot, block_index
        self.offset = 0

    def retire(self) -> int | None:
        """Stop packing into the current block. Returns its slot if the caller must free it now."""
        slot, idx = self.block_slot, self.block_index
        self.block_addr, self.block_slot, self.block_index, self.offset = 0, -1, -1, BLOCK
        if slot < 0:
            return None
        ok = self.sizes.cas(slot, self.held, L.TINY_RETIRED)
        assert ok, "tiny block changed hands while held"
        if int(self.a.tiny_marks[idx]) == 0 and self.sizes.cas(slot, L.TINY_RETIRED, 0):
            return slot
        return None


def TINY_HELD_FOR(core: int) -> int:
    return L.TINY_HELD | core


def is_tiny_marker(v: int) -> bool:
    return v == L.TINY_RETIRED or v >= L.TINY_HELD


def free_tiny(a: L.HeapArrays, marks: AtomicArray, sizes: AtomicArray, block_index: int, slot: int,
              off: int) -> tuple[bool, bool]:
    """Free the tiny object at byte `off` of a block. Returns (freed, block_now_free_for_caller)."""
    while True:
        m = int(a.tiny_marks[block_index])
        if not (m >> off) & 1:
            return False, False
        end = object_end(m, off)
        new = m & ~(1 << off) & ~(1 << (16 + end))
        if marks.cas(block_index, m, new):
            break
    if new == 0 and int(a.obj_size[slot]) == L.TINY_RETIRED and sizes.cas(slot, L.TINY_RETIRED, 0):
        return True, True
    return True, False
