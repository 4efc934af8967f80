"""Where an isolate's spaces lie in its address space (V8's `spaces.h`, the Space hierarchy's
bounds) and what each holds.

    new space           [HEAP_BASE, + 2 * semi)             semispaces 0 and 1, each `semi` bytes of pages
    old space           [old_base, + old_region)            pages committed on demand
    large-object space  [lo_base, + lo_region)              runs of pages, one object each

The bounds follow from the isolate's two sizes alone, so every process computes the same ones
from `iso_cfg`. A page slot (`pg_*` rows) is (address - HEAP_BASE) >> page_shift, whatever space.
"""

from __future__ import annotations

from dataclasses import dataclass

from memsim.sim.v8.layout import HEAP_BASE, OLD_SLACK


@dataclass(frozen=True)
class SpaceBounds:
    semi: int  # one semispace's bytes
    max_old: int  # max_old_space_size
    page_size: int

    @property
    def new_base(self) -> int:
        return HEAP_BASE

    @property
    def old_base(self) -> int:
        return HEAP_BASE + 2 * self.semi

    @property
    def old_region(self) -> int:
        slack = self.max_old // OLD_SLACK
        return -(-(self.max_old + slack) // self.page_size) * self.page_size

    @property
    def lo_base(self) -> int:
        return self.old_base + self.old_region

    @property
    def lo_region(self) -> int:
        return -(-self.max_old // self.page_size) * self.page_size + self.page_size

    @property
    def end(self) -> int:
        return self.lo_base + self.lo_region

    @property
    def reservation(self) -> int:
        return self.end - HEAP_BASE

    def semispace(self, k: int) -> int:
        return HEAP_BASE + k * self.semi

    def slot(self, addr: int) -> int:
        return (addr - HEAP_BASE) // self.page_size

    def page(self, slot: int) -> int:
        return HEAP_BASE + slot * self.page_size

    def slot_range(self, base: int, size: int) -> range:
        return range(self.slot(base), self.slot(base + size))

    def in_new(self, addr: int) -> bool:
        return HEAP_BASE <= addr < self.old_base
