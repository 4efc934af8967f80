"""Octane's Splay (v8/octane splay.js) with its splay tree in an isolate's heap: `bench gc --workload splay`.

Owns `HeapSplayTree` (splay.js's SplayTree: insert, remove, find, findMax, findGreatestLessThan and
the top-down splay_ of Sleator and Tarjan, with its dummy node) and `Splay` (SplaySetup and
SplayRun). Every node is a heap object {key, left, right, value}; the SplayTree object {root_}
is held by a persistent handle; each property read of a pointer is a GetField and each store a
SetField, in the order splay.js does them, so the write barrier and the scavenger see the
program's real stores. The client mirrors only the keys and the shape (`SNode`), which tell it
which field to read or write next; it never needs a round trip to decide.

Handles: a node's handle (`Ref`) is valid for one message only (each message runs in a handle
scope of its own), so an SNode remembers the message (`epoch`) its ref belongs to; a read of a
pointer from a node with a ref gives its child a ref in the same message.

Constants are splay.js's: kSplayTreeSize 8000 (times the bench's --scale), kSplayTreeModifications
80, kSplayTreePayloadDepth 5; keys are random Smis where splay.js draws Math.random() doubles.
Octane's SplayLatency score is the RMS of its samples, each the time from one SplayUpdateStats
to the next (one run of 80 modifications): `samples` holds (end time, ms) pairs.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from memsim.tools.gcloads import Held, Msg, Program, Ref, Send, Value, held

K_SPLAY_TREE_SIZE = 8000
K_SPLAY_TREE_MODIFICATIONS = 80
K_SPLAY_TREE_PAYLOAD_DEPTH = 5
KEY, LEFT, RIGHT, VALUE = 0, 1, 2, 3  # a node's fields
ROOT = 0  # the SplayTree object's one field, root_
MESSAGE_OPS = 1500  # send the message once it has this many ops (a modification adds about 400)
MAX_KEY = (1 << 31) - 1  # keys are positive Smis


@dataclass(eq=False)
class SNode:
    """The client's note of one heap node: its key and children, and its handle in this message."""

    key: int
    left: SNode | None = None
    right: SNode | None = None
    ref: Value = 0
    epoch: int = -1


class HeapSplayTree:
    """splay.js's SplayTree, its nodes in the heap; the ops go into the current message `m`."""

    def __init__(self, tree: Held):
        self.tree = tree  # the persistent handle of the SplayTree object
        self.root: SNode | None = None
        self.m = Msg()
        self.epoch = 0

    def begin(self, m: Msg) -> None:
        """Start a message: every ref of the last one is gone with its scope."""
        self.m = m
        self.epoch += 1

    # -- reads and stores, as JavaScript property accesses -----------------------------------------
    def _ref(self, n: SNode | None) -> Value:
        if n is None:
            return 0
        if n.epoch != self.epoch:
            raise AssertionError(f"node {n.key} has no handle in this message")
        return n.ref

    def _seen(self, n: SNode | None, ref: Value) -> None:
        if n is not None and n.epoch != self.epoch:
            n.ref, n.epoch = ref, self.epoch

    def get(self, n: SNode, side: int) -> SNode | None:
        child = n.left if side == LEFT else n.right
        if child is not None and child.epoch != self.epoch:
            self._seen(child, self.m.get_field(self._ref(n), side))
        return child

    def put(self, n: SNode, side: int, v: SNode | None) -> None:
        self.m.set_field(self._ref(n), side, self._ref(v))
        if side == LEFT:
            n.left = v
        else:
            n.right = v

    def get_root(self) -> SNode | None:
        if self.root is not None and self.root.epoch != self.epoch:
            self._seen(self.root, self.m.get_field(self.tree, ROOT))
        return self.root

    def set_root(self, n: SNode | None) -> None:
        self.m.set_field(self.tree, ROOT, self._ref(n))
        self.root = n

    def new_node(self, key: int | None, value: Value = 0) -> SNode:
        """new SplayTree.Node(key, value): left and right undefined (null here)."""
        n = SNode(key if key is not None else 0)
        n.ref, n.epoch = self.m.new_object([key or 0, 0, 0, value]), self.epoch
        return n

    # -- splay.js ------------------------------------------------------------------------------------
    def insert(self, key: int, value: Value) -> None:
        if self.get_root() is None:
            self.set_root(self.new_node(key, value))
            return
        self.splay(key)
        root = self.get_root()
        assert root is not None
        if root.key == key:
            return
        node = self.new_node(key, value)
        if key > root.key:
            self.put(node, LEFT, root)
            self.put(node, RIGHT, self.get(root, RIGHT))
            self.put(root, RIGHT, None)
        else:
            self.put(node, RIGHT, root)
            self.put(node, LEFT, self.get(root, LEFT))
            self.put(root, LEFT, None)
        self.set_root(node)

    def remove(self, key: int) -> SNode:
        if self.get_root() is None:
            raise KeyError(f"Key not found: {key}")
        self.splay(key)
        removed = self.get_root()
        assert removed is not None
        if removed.key != key:
            raise KeyError(f"Key not found: {key}")
        if self.get(removed, LEFT) is None:
            self.set_root(self.get(removed, RIGHT))
        else:
            right = self.get(removed, RIGHT)
            self.set_root(self.get(removed, LEFT))
            self.splay(key)  # the new root then has no right child
            root = self.get_root()
            assert root is not None
            self.put(root, RIGHT, right)
        return removed

    def find(self, key: int) -> SNode | None:
        if self.get_root() is None:
            return None
        self.splay(key)
        root = self.get_root()
        return root if root is not None and root.key == key else None

    def find_max(self, start: SNode | None = None) -> SNode | None:
        current = start or self.get_root()
        if current is None:
            return None
        while (nxt := self.get(current, RIGHT)) is not None:
            current = nxt
        return current

    def find_greatest_less_than(self, key: int) -> SNode | None:
        if self.get_root() is None:
            return None
        self.splay(key)
        root = self.get_root()
        assert root is not None
        if root.key < key:
            return root
        left = self.get(root, LEFT)
        return self.find_max(left) if left is not None else None

    def splay(self, key: int) -> None:
        """splay.js's splay_: top-down splaying, the left and right trees hung off a fresh dummy node.
        splay.js writes the two directions out; here `side` is the way down and `other` the way back."""
        current = self.get_root()
        if current is None:
            return
        dummy = self.new_node(None)
        hook = {LEFT: dummy, RIGHT: dummy}  # the last node of the right tree (hung by LEFT) and of the left
        while key != current.key:
            side = LEFT if key < current.key else RIGHT
            other = RIGHT if side == LEFT else LEFT
            nxt = self.get(current, side)
            if nxt is None:
                break
            if (key < nxt.key) if side == LEFT else (key > nxt.key):  # rotate right (or left)
                self.put(current, side, self.get(nxt, other))
                self.put(nxt, other, current)
                current = nxt
                if self.get(current, side) is None:
                    break
            self.put(hook[side], side, current)  # link right (or left)
            hook[side] = current
            nxt = self.get(current, side)
            assert nxt is not None
            current = nxt
        # assemble
        self.put(hook[RIGHT], RIGHT, self.get(current, LEFT))
        self.put(hook[LEFT], LEFT, self.get(current, RIGHT))
        self.put(current, LEFT, self.get(dummy, RIGHT))
        self.put(current, RIGHT, self.get(dummy, LEFT))
        self.set_root(current)

    def keys(self) -> list[int]:
        """The mirror's keys in order (the tests compare them with the heap's)."""
        out: list[int] = []
        stack: list[SNode] = []
        n = self.root
        while stack or n is not None:
            while n is not None:
                stack.append(n)
                n = n.left
            n = stack.pop()
            out.append(n.key)
            n = n.right
        return out


class Splay:
    """SplaySetup, then SplayRun again and again, through `send`."""

    def __init__(self, send: Send, scale: float, seed: int):
        self.send = send
        self.size = max(16, round(K_SPLAY_TREE_SIZE * scale))
        self.rng = random.Random(seed)
        self.samples: list[tuple[float, float]] = []  # (monotonic end, ms): one per run
        self.runs = 0
        self.tree: HeapSplayTree | None = None
        self.keys: set[int] = set()

    def figures(self, t0: float, t1: float) -> dict[str, Any]:
        """The runs that ended inside the window [t0, t1] (monotonic seconds)."""
        return {"runs": self.runs, "run_ms": [ms for end, ms in self.samples if t0 <= end <= t1],
                "tree_size": self.size}

    def _payload(self, m: Msg, depth: int, tag: int) -> Ref:
        """GeneratePayloadTree(depth, tag)."""
        if depth == 0:
            array = m.new_object(list(range(10)))
            string = m.new_string(b"String for key %d in leaf node" % tag)
            return m.new_object([array, string])
        return m.new_object([self._payload(m, depth - 1, tag), self._payload(m, depth - 1, tag)])

    def _insert_new_node(self, t: HeapSplayTree) -> int:
        """InsertNewNode: a key not in the tree (find splays, as in splay.js), its payload, insert."""
        while True:
            key = self.rng.randrange(1, MAX_KEY)
            if t.find(key) is None:
                break
        t.insert(key, self._payload(t.m, K_SPLAY_TREE_PAYLOAD_DEPTH, key))
        self.keys.add(key)
        return key

    def _open(self, t: HeapSplayTree) -> None:
        m = Msg()
        m.open_scope()
        t.begin(m)

    def _flush(self, t: HeapSplayTree) -> None:
        t.m.close_scope()
        self.send(t.m)

    def setup(self) -> Program:
        """SplaySetup: the SplayTree object under a persistent handle, then kSplayTreeSize insertions."""
        m = Msg()
        m.open_scope()
        g = m.make_persistent(m.new_object([0]))
        m.close_scope()
        self.tree = t = HeapSplayTree(held(self.send(m)[g.index]))
        self._open(t)
        for _ in range(self.size):
            self._insert_new_node(t)
            if len(t.m) >= MESSAGE_OPS:
                self._flush(t)
                yield
                self._open(t)
        self._flush(t)
        yield

    def run(self) -> Program:
        """SplayRun, forever: kSplayTreeModifications of insert-then-remove, then a latency sample."""
        t = self.tree
        assert t is not None, "setup() first"
        start = time.monotonic()
        while True:
            self._open(t)
            for _ in range(K_SPLAY_TREE_MODIFICATIONS):
                key = self._insert_new_node(t)
                greatest = t.find_greatest_less_than(key)
                gone = t.remove(key if greatest is None else greatest.key).key
                self.keys.discard(gone)
                if len(t.m) >= MESSAGE_OPS:
                    self._flush(t)
                    yield
                    self._open(t)
            self._flush(t)
            now = time.monotonic()
            self.samples.append((now, (now - start) * 1000.0))  # SplayUpdateStats
            start = now
            self.runs += 1
            yield
