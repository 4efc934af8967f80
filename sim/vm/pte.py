"""Page-table entries, laid out as x86-64's (arch/x86/include/asm/pgtable_types.h).

    bit 0  P    present            bit 5  A   accessed (set by every access)
    bit 1  RW   writable           bit 6  D   dirty (set by every write)
    bit 2  US   user               bit 7  PS  page size: a huge page, the walk ends here
    bit 9  SW   software: a swap entry (P = 0), its slot in the bits above 12
    bit 63 NX   no execute (64-bit entries only)
    bits 51:12  PFN, the frame number

A 32-bit entry (linear tables for spaces of 32 bits or fewer, as on i386 without PAE) has the
same low bits, the PFN in 31:12 and no NX. An entry of 0 is "never touched": the first access
is a minor fault. A swap entry is not present, so any access to it is a major fault.
"""

from __future__ import annotations

P, RW, US, A, D, PS, SW = 1 << 0, 1 << 1, 1 << 2, 1 << 5, 1 << 6, 1 << 7, 1 << 9
NX = 1 << 63
PFN_SHIFT = 12
PFN_MASK = ((1 << 40) - 1) << PFN_SHIFT  # bits 51:12


def make(frame: int, writable: bool, executable: bool = True) -> int:
    return (frame << PFN_SHIFT) | P | US | (RW if writable else 0) | (0 if executable else NX)


def frame_of(pte: int) -> int:
    return (pte & PFN_MASK) >> PFN_SHIFT


def swap_entry(slot: int) -> int:
    return (slot << PFN_SHIFT) | SW


def is_swap(pte: int) -> bool:
    return not pte & P and bool(pte & SW)


def swap_slot(pte: int) -> int:
    return (pte & PFN_MASK) >> PFN_SHIFT


def describe(pte: int) -> str:
    if pte == 0:
        return "none"
    if is_swap(pte):
        return f"swap slot {swap_slot(pte)}"
    bits = "".join(c for c, b in (("P", P), ("W", RW), ("U", US), ("A", A), ("D", D), ("H", PS)) if pte & b)
    return f"frame {frame_of(pte)} [{bits}{'' if pte & NX else 'X'}]"
