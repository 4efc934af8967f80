"""The tiny allocator: requests under 16 bytes packed into one core's current 16-byte block.

Go's mallocgc packs pointer-free objects smaller than 16 B into a per-P 16-byte block
(`c.tiny`, `c.tinyoffset`), aligning each to 8, 4 or 2 bytes by its size, and so cuts the
number of allocations and the heap: −12 % allocations and −20 % heap on a JSON benchmark (the
comment above the tiny allocator in Go's runtime/malloc.go). Go never frees a tiny object on
its own (the GC frees the block when every object in it is dead). This machine has explicit
free, so it needs what the GC provides:

- `tiny_marks[block]` (uint32): bit i = an object starts at byte i, bit 16+j = an object
  ends at byte j, for j < 15: an object with no end bit after its start ends at byte 15, so
  bit 31 is free and is the block's RETIRED_MARK. Bounds checks and double-free detection
  read the word; alloc, free and retire change it by CAS, because the owner may pack a new
  object into the block while another core frees an old one.
- the block's own `obj_size` word says who holds it, for readers: TINY_HELD|core while it is
  some core's current block, TINY_RETIRED once that core has moved on.

Who frees the block. It must be freed once it is retired and empty; the owner retiring it and
a remote core freeing its last object race for that. The decision is one CAS of the marks word:
whoever moves it to exactly RETIRED_MARK (retired, no object) frees the block, and no one
else can, because that value is reached once per incarnation (nothing is added to a retired
block, nothing is freed from an empty one). The winner then claims `obj_size` RETIRED -> 0 by
CAS, which only recovery can contest (recovery.py). The decision used to be a CAS of obj_size
RETIRED -> 0 made after the marks CAS, by both parties: a remote core preempted between
emptying the still-held block and that CAS let the owner retire and free the block, take the
same slot back from its cache as its next block, fill and retire it; the remote core's CAS then
found RETIRED again (an ABA) and freed a block with live objects in it, whose objects in
flight read as "no object is allocated" (tests/sim/alloc/test_sim_concurrency.py,
test_tiny_block_not_freed_by_a_stale_last_free). A remote free that empties a block now reads
nothing after its CAS: `new`, the value it wrote, says whether it freed the block.

Racy by design: the owner packs and retires, and other cores free, with no lock; a remote
core may stall anywhere in free_tiny, and the block may be freed and reused under it. That is
harmless because of the invariant: between adopt() and its free a block's marks word becomes
RETIRED_MARK by exactly one CAS, only that CAS's writer may free the block, and a core that
stalls after its CAS acts only on what it wrote, never on a re-read of a word (obj_size, the
marks) that the block's next incarnation can set to the same value.

The fast path (the object fits the current block) takes no lock: one CAS on the marks.
Unlike Go's, a block holds one owner's objects (owners.py): a request for another client, or
for none, retires the current block and starts a new one, so that a client's release can find
and free its tiny objects.
"""

from __future__ import annotations

from memsim.sim.alloc import layout as L
from memsim.sim.machine.atomics import AtomicArray

BLOCK = 16
RETIRED_MARK = 1 << 31  # in tiny_marks: the block is retired (bit 16 + 15 is never stored)
_END_BITS = 0x7FFF  # end marks of bytes 0..14, after the shift by 16


def tiny_align(size: int) -> int:
    if size & 7 == 0:
        return 8
    if size & 3 == 0:
        return 4
    if size & 1 == 0:
        return 2
    return 1


def object_end(marks: int, off: int) -> int:
    """Last byte of the object that starts at `off`: the first end bit at or after it, else 15."""
    ends = ((marks >> 16) & _END_BITS) >> off
    if not ends:
        return BLOCK - 1
    return off + ((ends & -ends).bit_length() - 1)


def object_bits(off: int, end: int) -> int:
    """The marks of an object from byte `off` to byte `end` (an end at byte 15 is implied)."""
    return (1 << off) | (1 << (16 + end) if end < BLOCK - 1 else 0)


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
        bits = object_bits(off, off + size - 1)
        i = self.block_index
        while True:
            m = int(self.a.tiny_marks[i])
            if self.marks.cas(i, m, m | bits):
                break
        self.offset = off + size
        return self.block_addr + off

    def adopt(self, addr: int, slot: int, block_index: int) -> None:
        """Make a freshly allocated 16-byte object this core's current tiny block."""
        self.a.tiny_marks[block_index] = 0  # the last incarnation's winner left RETIRED_MARK
        self.a.obj_size[slot] = self.held
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
        return slot if mark_retired(self.a, self.marks, self.sizes, slot, idx) else None


def mark_retired(a: L.HeapArrays, marks: AtomicArray, sizes: AtomicArray, slot: int, block_index: int) -> bool:
    """Set RETIRED_MARK on a block whose obj_size is already TINY_RETIRED. True if it was empty:
    then the caller has won the block (see the module header) and must free it."""
    while True:
        m = int(a.tiny_marks[block_index])
        if marks.cas(block_index, m, m | RETIRED_MARK):
            break
    return m == 0 and sizes.cas(slot, L.TINY_RETIRED, 0)


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
        new = m & ~object_bits(off, object_end(m, off))
        if marks.cas(block_index, m, new):
            break
    # Decided by what this CAS wrote, never by a later read: after it, the block may already
    # have been freed and reused by its owner (module header).
    if new == RETIRED_MARK and sizes.cas(slot, L.TINY_RETIRED, 0):
        return True, True
    return True, False
