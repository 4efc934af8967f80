"""Intrusive doubly linked lists over integer node indices, held in two index arrays.

This is Linux's `struct list_head` (include/linux/list.h) turned into arrays: instead of a
`prev`/`next` pointer pair inside each struct page, node i's links are `prev[i]` and
`next[i]`, so that a whole list lives in two flat int arrays that can sit in shared memory
and be walked by any process that maps them. Nodes are the owner's slots (keyspace entries,
frame numbers) plus one extra index per list, its HEAD SENTINEL, placed after the slots
(`slots`, `slots + 1`, ...), exactly as Linux embeds a `list_head` in the lruvec.

Conventions (Linux's, so that the policies read like mm/swap.c):
- a list is circular through its sentinel h: `next[h]` is the HEAD (the newest entry,
  where list_add puts it), `prev[h]` is the TAIL (the oldest, where reclaim takes it);
  following `next` walks from newest to oldest, `prev` from oldest to newest;
- an empty list has `next[h] == prev[h] == h`;
- a node on no list has `prev == next == -1` (Linux poisons them likewise on list_del),
  which is how the policies answer "is this slot present" with one array read;
- a sentinel-free circle (CLOCK's ring) uses the same link/unlink functions: a lone node
  links to itself.

The helpers take the arrays as arguments and keep no state, so that the same code runs on
Python lists (the trace simulator's private storage, ~3x faster to index than NumPy) and on
NumPy views of a SharedRegion. They never check their preconditions (a node being linked
must be unlinked, and vice versa): the policies check at their public entry points, and the
helpers are on every request's path. Lengths are the policies' business (kept in their meta
array), because a list's length is state like any other and must be shared too.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "IndexArray",
    "fill",
    "fill_chain",
    "init_sentinels",
    "link_after",
    "link_before",
    "move_after",
    "pop_tail",
    "push_head",
    "unlink",
    "walk",
]

# A list of ints (the trace simulator's private storage) or a 1-D integer NumPy array (a view of
# a SharedRegion): a[i], a[i] = v and slice stores work alike on both.
IndexArray = list[int] | np.ndarray


def fill(a: IndexArray, value: int, start: int = 0, stop: int | None = None) -> None:
    """a[start:stop] = value, on a list or an array: one C-level store either way (the
    keyspace's policy may have millions of slots, and a Python loop over them takes seconds)."""
    stop = len(a) if stop is None else stop
    if isinstance(a, list):
        a[start:stop] = [value] * (stop - start)
    else:
        a[start:stop] = value


def fill_chain(next: IndexArray, n: int) -> None:
    """Chain nodes 0 → 1 → ... → n-1 → -1 through next[] (a free list in index order)."""
    if isinstance(next, list):
        next[: n - 1] = range(1, n)
    else:
        next[: n - 1] = np.arange(1, n, dtype=next.dtype)
    next[n - 1] = -1


def init_sentinels(prev: IndexArray, next: IndexArray, first: int, count: int) -> None:
    """Mark every node as on no list, then make `count` empty lists with sentinels first, first+1, ..."""
    fill(prev, -1)
    fill(next, -1)
    for h in range(first, first + count):
        prev[h] = next[h] = h


def link_after(prev: IndexArray, next: IndexArray, at: int, node: int) -> None:
    """Link an unlinked node right after `at` (toward the tail): list_add(node, at)."""
    after = next[at]
    next[node] = after
    prev[node] = at
    prev[after] = node
    next[at] = node


def link_before(prev: IndexArray, next: IndexArray, at: int, node: int) -> None:
    """Link an unlinked node right before `at` (toward the head): list_add_tail(node, at)."""
    before = prev[at]
    prev[node] = before
    next[node] = at
    next[before] = node
    prev[at] = node


def push_head(prev: IndexArray, next: IndexArray, head: int, node: int) -> None:
    """Make an unlinked node the newest entry of the list whose sentinel is `head`."""
    first = next[head]
    next[node] = first
    prev[node] = head
    prev[first] = node
    next[head] = node


def unlink(prev: IndexArray, next: IndexArray, node: int) -> None:
    """Take a linked node off its list and mark it as on no list: list_del(node)."""
    p = prev[node]
    n = next[node]
    next[p] = n
    prev[n] = p
    prev[node] = next[node] = -1


def move_after(prev: IndexArray, next: IndexArray, at: int, node: int) -> None:
    """Unlink a linked node and relink it right after `at` (list_move: a hit in LRU)."""
    p = prev[node]
    n = next[node]
    next[p] = n
    prev[n] = p
    after = next[at]
    next[node] = after
    prev[node] = at
    prev[after] = node
    next[at] = node


def pop_tail(prev: IndexArray, next: IndexArray, head: int) -> int:
    """Unlink and return the oldest node of the list with sentinel `head`, or -1 if it is empty."""
    node = prev[head]
    if node == head:
        return -1
    p = prev[node]
    next[p] = head
    prev[head] = p
    prev[node] = next[node] = -1
    return int(node)


def walk(prev: IndexArray, next: IndexArray, head: int, limit: int) -> tuple[list[int], list[str]]:
    """The nodes of a list from head (newest) to tail (oldest), and the problems met on the way.

    For check(): verifies that every forward link has its backward twin and that the walk
    returns to the sentinel within `limit` steps (a cycle that misses the sentinel, or a
    list longer than the slots can hold, is corruption). Stops at the first problem.
    """
    out: list[int] = []
    problems: list[str] = []
    node = head
    for _ in range(limit + 1):
        n = int(next[node])
        if n < 0:
            problems.append(f"list {head}: node {node} is linked to -1 (on no list)")
            return out, problems
        if int(prev[n]) != node:
            problems.append(f"list {head}: next[{node}] = {n} but prev[{n}] = {int(prev[n])}")
            return out, problems
        if n == head:
            return out, problems
        out.append(n)
        node = n
    problems.append(f"list {head}: no way back to the sentinel within {limit} nodes (a cycle)")
    return out, problems
