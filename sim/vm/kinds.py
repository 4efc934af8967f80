"""The VM's choices, each one table: the page-table kinds and the transparent-huge-page modes.

The defaults (`MachineConfig`, `create_space`), the validation (`MachineConfig.validate`,
`create_space`) and the CLI's choices all read these names; nothing else spells them.

    PAGE_TABLES         name -> kind (pagetable.py's registry, filled here with the built-in kinds,
                        in id order; a new kind is its own module plus its import and one `register` line below)
    KINDS               the built-in kinds' names, in id order
    PAGE_TABLE_DEFAULT  the kind of a space created without one (x86-64's radix tree)
    THP_MODES           /sys/kernel/mm/transparent_hugepage/enabled, in vm_meta[M_THP]'s order
    THP_DEFAULT         Linux's default (CONFIG_TRANSPARENT_HUGEPAGE_MADVISE)
"""

from __future__ import annotations

from memsim.sim.vm.pagetable import PAGE_TABLES, register
from memsim.sim.vm.pt_hybrid import HybridTable
from memsim.sim.vm.pt_inverted import InvertedTable
from memsim.sim.vm.pt_linear import LinearTable
from memsim.sim.vm.pt_multilevel import MultiLevelTable

register("linear", LinearTable)
register("hybrid", HybridTable)
register("multilevel", MultiLevelTable)
register("inverted", InvertedTable)

KINDS: tuple[str, ...] = tuple(PAGE_TABLES)
PAGE_TABLE_DEFAULT = "multilevel"

THP_MODES = ("never", "madvise", "always")
THP_DEFAULT = "madvise"

__all__ = ["KINDS", "PAGE_TABLES", "PAGE_TABLE_DEFAULT", "THP_DEFAULT", "THP_MODES", "register"]
