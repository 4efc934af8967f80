"""LRU stack distances in one pass (Mattson, Gecsei, Slutz and Traiger, "Evaluation techniques for
storage hierarchies", IBM Systems Journal 9(2), 1970): a request's stack distance is its key's
depth in the LRU stack, the number of distinct keys requested since its previous request, plus
one. By LRU's inclusion property a cache of C objects hits exactly the requests of distance <= C,
so one pass gives the miss count of every size at once.

Owns: the per-request distances of a key column (0 for a key's first request, infinite distance).
Touches only the arrays it is given.
Invariants: O(N log N). The previous request of each key comes from a stable argsort (numpy);
the depth from a Fenwick tree (Fenwick, "A new data structure for cumulative frequency tables",
Software: Practice and Experience 24(3), 1994) over request times with a 1 at each key's latest
request: the keys requested after time p are the marks after p, i.e. (marks so far) − prefix(p).
That loop is a sequential dependency numpy cannot vectorise, so it is a numba kernel (jit.py, the
machine's one numba import): about 5 ns a request where Python takes a microsecond. Memory: the
keys, the previous-request index, the distances and the tree, 28 bytes a request.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from memsim.sim.v8.jit import njit_kernel

__all__ = ["previous", "stack_distances"]

I64 = npt.NDArray[np.int64]


def previous(keys: I64) -> I64:
    """For each request, the index of the previous request for the same key, -1 for the first."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    prev = np.full(len(keys), -1, np.int64)
    same = sk[1:] == sk[:-1]
    prev[order[1:][same]] = order[:-1][same]
    return prev


@njit_kernel
def _distances(prev: np.ndarray, tree: np.ndarray, out: np.ndarray) -> None:
    n = len(prev)
    marks = 0  # keys seen so far = 1s in the tree
    for i in range(n):
        p = prev[i]
        if p < 0:
            out[i] = 0
            marks += 1
        else:
            s = 0
            j = p + 1
            while j > 0:
                s += tree[j]
                j -= j & -j
            out[i] = marks - s + 1  # the marks after p, plus the key itself
            j = p + 1
            while j <= n:
                tree[j] -= 1
                j += j & -j
        j = i + 1
        while j <= n:
            tree[j] += 1
            j += j & -j


def stack_distances(keys: npt.ArrayLike) -> I64:
    """Each request's LRU stack distance (1 = the most recently used key), 0 for a first request."""
    k = np.ascontiguousarray(keys, dtype=np.int64)
    out = np.empty(len(k), np.int64)
    if len(k):
        _distances(previous(k), np.zeros(len(k) + 1, np.int32), out)
    return out
