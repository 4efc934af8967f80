"""The smallest heap a GC workload completes in, and heap sizes stated as multiples of it.

Collectors are compared at heap sizes given as multiples of each workload's minimum heap, the
method of Blackburn, Cheng and McKinley ("Myths and Realities: The Performance Impact of Garbage
Collection", SIGMETRICS 2004) and of the DaCapo suite since: at 1.5× the collector runs often
and every pause it saves shows, at 4× it runs rarely. A collector's cost is meaningless without
the heap it ran in.

"Completes": the workload's set-up, then PROBE_MESSAGES messages of its run (its loop never
ends), without the heap limit's out-of-memory error (RESOURCE_EXHAUSTED, Node's "JavaScript heap
out of memory"). The limit searched is max_old_space_size (Node's --max-old-space-size); the
young generation stays at the load's --semi-space. The search starts from the load's own limit
(the ceiling the server was sized for: it must complete) and bisects between the largest size
that failed and the smallest that completed, in whole heap pages, the isolate table's unit: exact
to one page. A workload whose live data fits in a page or two has multiples that round onto the
same sizes; `multiples` keeps them all, so a table shows the collapse instead of hiding it.

Each probe is one isolate on the given server, made, driven and destroyed by this process (one
lane, seed as lane 0 of the bench). A workload is deterministic for a seed, so one probe per size
is enough.

May touch: only the isolates it creates.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memsim.tools.loads import GcLoad

if TYPE_CHECKING:
    from memsim.tools.gcloads import Msg, Result

PAGE = 256 << 10  # v8_page_size's default (sim/system.py): the isolate table's unit for heap limits
PROBE_MESSAGES = 100  # of the workload's run after its set-up: its live data built, old space cycled at the minimum


@dataclass(frozen=True)
class MinHeap:
    """A workload's smallest max_old_space_size and how it was found."""

    workload: str
    bytes: int  # the smallest limit that completed
    failed_below: int  # the largest limit that ran out of memory (0: none tried below)
    probes: int


def completes(target: str, load: GcLoad, workload: str, max_old: int, messages: int = PROBE_MESSAGES) -> bool:
    """Whether `workload` runs its set-up and `messages` of its run within a heap limit of max_old."""
    # the client (and grpc) only when a probe runs: `memsim`'s parser imports this module's constants
    # and stays free of grpc (tests/tools/test_cli_layout.py)
    from memsim.client import MemsimError, ResourceExhausted, V8Client
    from memsim.tools.gcbench import batch_of, mutator, result

    with V8Client(target, timeout=120) as v8:
        iso = v8.create_isolate(semi_space_size=load.semi_space, max_old_space_size=max_old)
        try:
            def send(m: Msg) -> list[Result]:
                res = batch_of(iso, m).execute()
                res.raise_first()
                return [result(r) for r in res.results]

            w = mutator(workload, send, load, 0)
            for _ in w.setup():
                pass
            for n, _ in enumerate(w.run(), 1):
                if n >= messages:
                    break
            return True
        except ResourceExhausted:
            return False
        finally:
            with contextlib.suppress(MemsimError):
                iso.destroy()


def smallest_heap(target: str, load: GcLoad, workload: str, page: int = PAGE,
                  messages: int = PROBE_MESSAGES) -> MinHeap:
    """The smallest max_old_space_size, in whole pages, that `workload` completes in; at most the
    load's own --max-old-space (the server was sized for it), else ValueError."""
    probes = 0

    def ok(size: int) -> bool:
        nonlocal probes
        probes += 1
        return completes(target, load, workload, size, messages)

    hi = load.max_old_space // page * page
    if hi < page or not ok(hi):
        raise ValueError(f"{workload} does not complete within --max-old-space {load.max_old_space} bytes: "
                         "give a larger one")
    lo = 0  # a limit known to fail (no page: nothing fits)
    while hi - lo > page:
        mid = (lo + hi) // 2 // page * page
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return MinHeap(workload, hi, lo, probes)


def multiples(minimum: int, factors: list[float], page: int = PAGE) -> list[tuple[float, int]]:
    """(factor, limit) for each factor: factor × minimum rounded up to whole pages. Factors that
    round to the same limit are all kept (the caller sees the collapse in the sizes)."""
    return [(f, max(page, math.ceil(f * minimum / page) * page)) for f in factors]
