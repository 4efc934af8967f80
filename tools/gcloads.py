"""The GC bench's workloads, as programs that build and drop object graphs in one isolate's heap.

Owns the three mutators of `memsim bench gc` and the message they speak:

- `gcbench`: Boehm's GCBench (hboehm.info/gc/gc_bench/GCBench.java): a stretch tree
  (MakeTree(kStretchTreeDepth), dropped), a long-lived tree built top down (Populate) and a
  double array of kArraySize kept for the whole run, then for each depth from kMinTreeDepth to
  kMaxTreeDepth step 2, NumIters(d) = 2*TreeSize(kStretchTreeDepth)/TreeSize(d) trees built top
  down and as many bottom up, each dropped at once. A Node has Boehm's four fields: left, right,
  i, j. `--scale` takes log2(1/scale) levels off every depth and scales the array.
- `splay`: Octane's Splay (v8/octane splay.js): a splay tree of kSplayTreeSize nodes, each node
  an object {key, left, right, value} and each value a payload tree of depth
  kSplayTreePayloadDepth whose leaves are {array: [0..9], string}; a run is
  kSplayTreeModifications times InsertNewNode then remove(findGreatestLessThan(key) or key), the
  SplayTree methods (insert, remove, find, findMax, findGreatestLessThan, and the top-down splay_
  with its dummy node) written as splay.js writes them. The tree lives in the heap: the SplayTree
  object {root_} is held by a persistent handle and every pointer store is a SetField; the
  client keeps only the keys and shape it needs to know which fields to read and write.
  Octane's latency score is the RMS of its samples (the time of each run, `run_ms`).
- `handler`: a web server's request handler: per request about 50 short-lived objects (url and
  header strings, a request and its parsed query and body, an ArrayBuffer body with an external
  backing store, a response) in a handle scope that closes when the request ends; 1 % of the
  responses go into a long-lived cache of persistent handles, the oldest dropped past its size.

Each program is a generator: it sends messages (`Msg`, one gRPC batch each, with forward
references so a whole tree is one message) through the `Send` it was given, and yields after
each send, which is where the driver (tools/gcbench.py) may stop it. A tree larger than
`OPS_PER_MESSAGE` is built as subtrees, each in its own message and scope, then joined.

May touch: only the isolate behind its Send. Invariant: between two yields every mutation the
program made to its own bookkeeping (the splay tree's keys) has been sent.
"""

from __future__ import annotations

import math
import random
import struct
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

OPS_PER_MESSAGE = 2000  # well under the wire's batch limit, and under the handle table: a message's handles die with it


@dataclass(frozen=True)
class Ref:
    """The result of op `index` of the same message (a forward reference)."""

    index: int


@dataclass(frozen=True)
class Held:
    """A handle the isolate gave back in an earlier message (its uint64 id on the wire)."""

    id: int


Value = int | Ref | Held  # an int is a Smi; 0 stands for JavaScript's null in a pointer field
Result = int | Held | bytes | None


@dataclass(frozen=True)
class Op:
    code: str  # one of OPS
    a: Value = 0  # the object (or global) the op works on
    b: int = 0  # field index, payload offset or length, byte length
    c: Value = 0  # the value stored
    data: bytes = b""
    fields: tuple[Value, ...] = ()
    nfields: int = 0


OPS = ("new_object", "new_string", "new_array_buffer", "set_field", "get_field", "read_payload", "open_scope",
       "close_scope", "make_persistent", "drop")


@dataclass
class Msg:
    """One batch message, built op by op; each builder method returns the op's Ref."""

    ops: list[Op] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ops)

    def _add(self, op: Op) -> Ref:
        self.ops.append(op)
        return Ref(len(self.ops) - 1)

    def new_object(self, fields: Sequence[Value] = (), payload: bytes = b"", nfields: int | None = None) -> Ref:
        return self._add(Op("new_object", data=payload, fields=tuple(fields),
                            nfields=len(fields) if nfields is None else nfields))

    def new_string(self, data: bytes) -> Ref:
        return self._add(Op("new_string", data=data))

    def new_array_buffer(self, byte_length: int) -> Ref:
        return self._add(Op("new_array_buffer", b=byte_length))

    def set_field(self, h: Value, i: int, v: Value) -> Ref:
        return self._add(Op("set_field", a=h, b=i, c=v))

    def get_field(self, h: Value, i: int) -> Ref:
        return self._add(Op("get_field", a=h, b=i))

    def read_payload(self, h: Value, offset: int, length: int) -> Ref:
        return self._add(Op("read_payload", a=h, b=offset, nfields=length))

    def open_scope(self) -> Ref:
        return self._add(Op("open_scope"))

    def close_scope(self, escape: Value = 0) -> Ref:
        return self._add(Op("close_scope", a=escape))

    def make_persistent(self, h: Value) -> Ref:
        return self._add(Op("make_persistent", a=h))

    def drop(self, g: Value) -> Ref:
        return self._add(Op("drop", a=g))


Send = Callable[[Msg], list[Result]]  # runs a message, returns each op's result in order
Program = Generator[None, None, None]


def held(r: Result) -> Held:
    if not isinstance(r, Held):
        raise TypeError(f"expected a handle, got {r!r}")
    return r


# -- Boehm's GCBench --------------------------------------------------------------------------------------

def tree_size(depth: int) -> int:
    """Nodes in a complete binary tree of this depth (GCBench's TreeSize)."""
    return (1 << (depth + 1)) - 1


@dataclass(frozen=True)
class GcBenchShape:
    stretch_depth: int = 18  # kStretchTreeDepth
    long_lived_depth: int = 16  # kLongLivedTreeDepth
    array_size: int = 500_000  # kArraySize (doubles)
    min_depth: int = 4  # kMinTreeDepth
    max_depth: int = 16  # kMaxTreeDepth

    @staticmethod
    def scaled(scale: float) -> GcBenchShape:
        """Boehm's sizes times `scale`: every tree log2(1/scale) levels shallower, the array scaled."""
        s = max(0, round(math.log2(1 / scale)))
        d = GcBenchShape()
        return GcBenchShape(max(d.min_depth, d.stretch_depth - s), max(d.min_depth, d.long_lived_depth - s),
                            max(2048, round(d.array_size * scale)), d.min_depth, max(d.min_depth, d.max_depth - s))

    def num_iters(self, depth: int) -> int:
        return 2 * tree_size(self.stretch_depth) // tree_size(depth)


NODE_FIELDS = 4  # left, right, i, j
LEFT, RIGHT = 0, 1


class GcBench:
    """Boehm's GCBench through `send`: `run` is its main again and again; `trees` and `passes` count
    the temporary trees built and the whole passes done (each ending in GCBench's own check)."""

    def __init__(self, send: Send, shape: GcBenchShape):
        self.send, self.shape = send, shape
        self.passes = 0
        self.trees = 0

    # Boehm's MakeTree: children first, so each node is born pointing at older ones.
    def _bottom_up(self, m: Msg, depth: int) -> Ref:
        if depth <= 0:
            return m.new_object(nfields=NODE_FIELDS)
        return m.new_object([self._bottom_up(m, depth - 1), self._bottom_up(m, depth - 1)], nfields=NODE_FIELDS)

    # Boehm's Populate: parents first, children stored into them (the write barrier's case once a parent is old).
    def _populate(self, m: Msg, depth: int, node: Value) -> None:
        if depth <= 0:
            return
        left = m.new_object(nfields=NODE_FIELDS)
        m.set_field(node, LEFT, left)
        right = m.new_object(nfields=NODE_FIELDS)
        m.set_field(node, RIGHT, right)
        self._populate(m, depth - 1, left)
        self._populate(m, depth - 1, right)

    def _fits(self, depth: int) -> int:
        """The deepest subtree whose top-down build fits in one message."""
        s = depth
        while s > 0 and 2 * tree_size(s) + 2 > OPS_PER_MESSAGE:
            s -= 1
        return s

    def make_tree(self, depth: int) -> Generator[None, None, Held]:
        """MakeTree(depth) as messages; the root's handle is left in the caller's scope."""
        s = self._fits(depth)
        per = max(1, OPS_PER_MESSAGE // (tree_size(s) + 2))
        level: list[Held] = []
        for lo in range(0, 1 << (depth - s), per):  # the subtrees, several to a message, each in its own scope
            m = Msg()
            roots = []
            for _ in range(min(per, (1 << (depth - s)) - lo)):
                m.open_scope()
                roots.append(m.close_scope(self._bottom_up(m, s)))
            res = self.send(m)
            level += [held(res[r.index]) for r in roots]
            yield
        if len(level) == 1:
            return level[0]
        m = Msg()
        refs: list[Value] = list(level)
        while len(refs) > 1:  # the top levels over the subtrees' roots, bottom up
            refs = [m.new_object([refs[i], refs[i + 1]], nfields=NODE_FIELDS) for i in range(0, len(refs), 2)]
        res = self.send(m)
        yield
        return held(res[len(m) - 1])

    def populate(self, depth: int, root: Held) -> Program:
        """Populate(depth, root) as messages: the top levels in one, then each subtree below in its own scope."""
        s = self._fits(depth)
        frontier: list[Value] = [root]
        if depth > s:
            m = Msg()
            level: list[Value] = [root]
            for _ in range(depth - s):
                nxt: list[Value] = []
                for node in level:
                    for side in (LEFT, RIGHT):
                        child = m.new_object(nfields=NODE_FIELDS)
                        m.set_field(node, side, child)
                        nxt.append(child)
                level = nxt
            res = self.send(m)
            yield
            frontier = [held(res[r.index]) if isinstance(r, Ref) else r for r in level]
        per = max(1, OPS_PER_MESSAGE // (2 * tree_size(s) + 2))
        for lo in range(0, len(frontier), per):
            m = Msg()
            for node in frontier[lo:lo + per]:
                m.open_scope()
                self._populate(m, s, node)
                m.close_scope()
            self.send(m)
            yield

    def _scoped(self, body: Generator[None, None, object]) -> Program:
        """Run body in a handle scope of its own (its handles, and what only they held, die after)."""
        m = Msg()
        m.open_scope()
        self.send(m)
        yield from body
        m = Msg()
        m.close_scope()
        self.send(m)
        yield

    def _new_node(self) -> Generator[None, None, Held]:
        m = Msg()
        r = m.new_object(nfields=NODE_FIELDS)
        res = self.send(m)
        yield
        return held(res[r.index])

    def _top_down(self, depth: int) -> Generator[None, None, object]:
        root = yield from self._new_node()
        yield from self.populate(depth, root)
        return root

    def time_construction(self, depth: int) -> Program:
        """GCBench's TimeConstruction: NumIters(depth) trees top down, as many bottom up, each dropped."""
        n = self.shape.num_iters(depth)
        if 2 * tree_size(depth) + 2 > OPS_PER_MESSAGE:  # big trees: one at a time, across messages
            for top_down in (True, False):
                for _ in range(n):
                    yield from self._scoped(self._top_down(depth) if top_down else self.make_tree(depth))
                    self.trees += 1
            return
        for top_down in (True, False):  # small trees: as many to a message as fit, each in its own scope
            per = max(1, OPS_PER_MESSAGE // (2 * tree_size(depth) + 3))
            for lo in range(0, n, per):
                m = Msg()
                for _ in range(min(per, n - lo)):
                    m.open_scope()
                    if top_down:
                        self._populate(m, depth, m.new_object(nfields=NODE_FIELDS))
                    else:
                        self._bottom_up(m, depth)
                    m.close_scope()
                self.send(m)
                self.trees += min(per, n - lo)
                yield

    def setup(self) -> Program:
        yield from ()

    def run(self) -> Program:
        """GCBench's main, again and again: each pass's long-lived data replaces the last one's."""
        keep: list[Held] = []
        while True:
            sh = self.shape
            yield from self._scoped(self.make_tree(sh.stretch_depth))  # the stretch tree, dropped
            m = Msg()
            m.open_scope()
            self.send(m)
            root = yield from self._new_node()
            yield from self.populate(sh.long_lived_depth, root)
            # array[i] = 1/i for the first half, as GCBench fills it (array[0] = 1/0 = Infinity)
            doubles = [math.inf] + [1.0 / i for i in range(1, sh.array_size // 2)]
            doubles += [0.0] * (sh.array_size - len(doubles))
            m = Msg()
            arr = m.new_object(payload=struct.pack(f"<{sh.array_size}d", *doubles))
            g_tree, g_arr = m.make_persistent(root), m.make_persistent(arr)
            for g in keep:  # the previous pass's long-lived tree and array become garbage
                m.drop(g)
            m.close_scope()
            res = self.send(m)
            keep = [held(res[g_tree.index]), held(res[g_arr.index])]
            yield
            for d in range(sh.min_depth, sh.max_depth + 1, 2):
                yield from self.time_construction(d)
            self.check(keep)
            self.passes += 1
            yield

    def figures(self, t0: float, t1: float) -> dict[str, Any]:
        sh = self.shape
        return {"passes": self.passes, "trees": self.trees, "stretch_depth": sh.stretch_depth,
                "long_lived_depth": sh.long_lived_depth, "max_depth": sh.max_depth, "array_size": sh.array_size}

    def check(self, keep: list[Held]) -> None:
        """GCBench's last line: the long-lived tree is there and array[1000] is still 1/1000."""
        m = Msg()
        m.open_scope()
        left = m.get_field(keep[0], LEFT)
        probe = m.read_payload(keep[1], 8 * 1000, 8)
        m.close_scope()
        res = self.send(m)
        if not isinstance(res[left.index], Held) or res[probe.index] != struct.pack("<d", 1.0 / 1000):
            raise RuntimeError("GCBench failed: the long-lived tree or the array did not survive intact")


# -- a web server's request handler ------------------------------------------------------------------------

REQUESTS_PER_MESSAGE = 20
CACHE_SHARE = 0.01  # of responses kept in the long-lived cache
HEADERS = (b"Host: api.example.com", b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
           b"Accept: application/json", b"Accept-Encoding: gzip, deflate, br", b"Accept-Language: en-GB,en;q=0.5",
           b"Cookie: session=%016x; theme=dark; consent=1", b"Connection: keep-alive", b"X-Request-Id: %032x")


class Handler:
    """Requests as a Node web server handles them: ~50 objects each, in the request's handle scope."""

    def __init__(self, send: Send, scale: float, seed: int):
        self.send = send
        self.rng = random.Random(seed)
        self.cache_entries = max(8, round(4096 * scale))
        self.cache: deque[Held] = deque()  # persistent handles, oldest first
        self.requests = 0
        self.cached = 0

    def request(self, m: Msg, n: int) -> Ref | None:
        """One request's objects; returns the response's persistent handle's Ref if it is to be cached."""
        rng = self.rng
        m.open_scope()
        url = m.new_string(b"GET /api/items/%d?page=%d&sort=desc HTTP/1.1" % (rng.randrange(10**6), n % 50))
        values = [m.new_string(h % rng.getrandbits(64) if b"%" in h else h) for h in HEADERS]
        headers = m.new_object(values)
        qs = [m.new_string(b"%d" % rng.randrange(1000)), m.new_string(b"desc"), m.new_string(b"items")]
        query = m.new_object(qs)
        body = m.new_array_buffer(rng.randrange(256, 2048))  # the body's bytes, outside the heap
        parts: list[Value] = [m.new_string(b"name-%d" % rng.randrange(10**6)), m.new_string(b"description " * 4),
                              m.new_string(b"tag")]
        for _ in range(2):
            parts.append(m.new_object([m.new_string(b"k"), m.new_string(b"v%d" % rng.randrange(99)), 7]))
        parsed = m.new_object(parts)
        req = m.new_object([url, headers, query, body, parsed])
        session: Value = req
        for i in range(4):  # middleware: a chain of small context objects
            session = m.new_object([session, i])
        rh = m.new_object([m.new_string(b"Content-Type: application/json"), m.new_string(b"Cache-Control: no-store"),
                           m.new_string(b"ETag: W/\"%08x\"" % rng.getrandbits(32)), m.new_string(b"Vary: Accept")])
        rbody = m.new_string(b"{\"items\": [%s]}" % b",".join(b"%d" % i for i in range(rng.randrange(20, 120))))
        response = m.new_object([200, rh, rbody, req, session])
        m.new_string(b"%d GET /api/items 200 %dms" % (n, rng.randrange(1, 40)))  # the access log's line
        step: Value = response
        for _ in range(8):  # promises and closures of the async handler
            step = m.new_object([step, 0])
        keep = m.make_persistent(response) if rng.random() < CACHE_SHARE else None
        m.close_scope()
        return keep

    def setup(self) -> Program:
        yield from ()

    def figures(self, t0: float, t1: float) -> dict[str, Any]:
        return {"requests": self.requests, "cached": self.cached, "cache_entries": self.cache_entries}

    def run(self) -> Program:
        while True:
            m = Msg()
            dropped = 0
            while len(self.cache) - dropped > self.cache_entries:  # the oldest entries leave the cache
                m.drop(self.cache[dropped])
                dropped += 1
            keeps = [k for i in range(REQUESTS_PER_MESSAGE) if (k := self.request(m, self.requests + i)) is not None]
            res = self.send(m)
            for _ in range(dropped):
                self.cache.popleft()
            self.cache.extend(held(res[k.index]) for k in keeps)
            self.requests += REQUESTS_PER_MESSAGE
            self.cached += len(keeps)
            yield
