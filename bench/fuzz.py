"""A fuzz campaign against a memsim server: random and malformed calls on every method of every service.

    python bench/fuzz.py --calls 10000 --seed 1 --json fuzz.json [--target HOST:PORT]

Every service a worker serves (Machine = the allocator, Cache, VM, grpc.health.v1.Health and
server reflection) gets --calls calls. The methods are read from the generated *_pb2 service
descriptors, so a method added to a .proto is fuzzed without editing this file. Each call is
one of three modes:

- structured: a well-formed request whose fields are drawn from values that sit on the edges
  (0, 2^31, 2^64-1, sizes around a size class or a page, addresses of live, freed and interior
  objects, known and unknown space ids, Redis commands with bad integers and globs, batch
  columns of the wrong lengths, refs to later ops, ...);
- mutated: such a request's encoding with bytes flipped, cut or inserted;
- junk: random bytes, sent through `channel.unary_unary` / `stream_stream` with identity
  serializers, so the server's own deserializer sees them.

A stream method gets one to four messages per call. Every call carries a deadline, and the
run is bounded in calls and in seconds.

Before the run the campaign stamps data it then never lets a fuzzed call touch (allocator
objects on every core, cache keys under one prefix, VM pages in one space per page-table
kind), keeping a SHA-256 of each; after the run it reads them all back. It passes when:
no INTERNAL or UNKNOWN came from memsim's code (per call, and per op inside batch and
pipeline replies), no worker died (its PIDs, and the supervisor's recovery count), every
stamp reads back intact, the allocator's heap check (GetStats check_heap, what
`memsim stats --check` runs) is clean, and every core answers a health check and a PING at
the end. After a call that timed out, the core it went to is probed the same way; one that does
not answer is reported (a core wedged by one request) and skipped until it answers again.
Health and reflection are gRPC's own services: an INTERNAL there with gRPC-Python's text for
an undecodable request is reported as the library's, not counted against memsim.

Each call's input comes from its own generator, seeded by (seed, service, index), plus what
the campaign learned from earlier replies (live addresses, space ids); a failing call is
printed with its seed, service and index, and `--replay SERVICE:INDEX` (with the same seed and
flags) runs the same sequence on a fresh server up to that call and prints its request and reply.
`--check-every N` reads the stamps back every N calls, to pin a damage to a window of calls.

Without --target the campaign starts its own server (tools/local.py's LocalServer) and stops it.
The reusable logic (`Campaign`, `run_campaign`) is imported by tests/bench/test_fuzz_campaign.py.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
import msgpack
from google.protobuf import descriptor as gdesc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from memsim.tools.local import LocalServer
from memsim.v1 import cache_pb2, machine_pb2, v8_pb2, vm_pb2
from memsim.v1 import machine_pb2 as mpb

# The services a worker registers (server/worker.py), by the short name the report uses.
SERVICES: dict[str, gdesc.ServiceDescriptor] = {
    "Machine": machine_pb2.DESCRIPTOR.services_by_name["Machine"],
    "Cache": cache_pb2.DESCRIPTOR.services_by_name["Cache"],
    "VM": vm_pb2.DESCRIPTOR.services_by_name["VM"],
    "V8": v8_pb2.DESCRIPTOR.services_by_name["V8"],
    "Health": health_pb2.DESCRIPTOR.services_by_name["Health"],
    "Reflection": reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
}
MEMSIM_SERVICES = ("Machine", "Cache", "VM", "V8")
BAD_CODES = ("INTERNAL", "UNKNOWN")
# gRPC-Python's own text when it cannot parse a request: in a service memsim only registers
# (health, reflection) that is the library's answer, not memsim's code.
LIBRARY_MESSAGES = re.compile(r"^Exception (deserializing request|iterating requests)")
# Defects already reported (and being fixed); a finding that matches none of these is new.
KNOWN = [
    (re.compile(r"Exceeds the limit \(4300 digits\)|integer string conversion"), "9: >4300-digit integers"),
    (re.compile(r"bad character range|character range"), "10: reversed glob range"),
    (re.compile(r"int16|OverflowError|Python int too large"), "11: CreateSpace int16 overflow"),
    (re.compile(r"^Exception deserializing request"), "11: undecodable request bytes"),
    (re.compile(r"^Exception (calling application|iterating responses)"), "11: reply built outside the wrapper"),
    (re.compile(r"Value out of range"), "1: hugetlb fault"),
]
STAMP_KEY_PREFIX = b"memsim-fuzz-stamp:"
# Inputs that wedge a core for minutes while these reported defects are open; --skip-defect
# leaves them out so that a campaign can look past them (the default leaves nothing out).
WEDGES = "5 = a glob with many stars (KEYS/SCAN backtracking), 7 = VM ranges over 1 GiB (page-by-page walks)"
SERVER_EXTRA = ["--vm-memory", "16MiB", "--swap", "64MiB", "--hugetlb-pages", "2", "--khugepaged-ms", "200",
                "--no-pin"]

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
INTS = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 255, 256, 511, 512, 4095, 4096, 4097, 8191, 8192,
        32767, 32768, 32769, 65535, 65536, (1 << 20), (1 << 21) - 1, 1 << 21, (1 << 30), (1 << 31) - 1, 1 << 31,
        U32, 1 << 32, (1 << 40), (1 << 47), (1 << 48), (1 << 57), (1 << 63) - 1, 1 << 63, U64 - 4095, U64]
RANGES = {
    gdesc.FieldDescriptor.TYPE_UINT32: (0, U32), gdesc.FieldDescriptor.TYPE_FIXED32: (0, U32),
    gdesc.FieldDescriptor.TYPE_UINT64: (0, U64), gdesc.FieldDescriptor.TYPE_FIXED64: (0, U64),
    gdesc.FieldDescriptor.TYPE_INT32: (-(1 << 31), (1 << 31) - 1),
    gdesc.FieldDescriptor.TYPE_SINT32: (-(1 << 31), (1 << 31) - 1),
    gdesc.FieldDescriptor.TYPE_SFIXED32: (-(1 << 31), (1 << 31) - 1),
    gdesc.FieldDescriptor.TYPE_INT64: (-(1 << 63), (1 << 63) - 1),
    gdesc.FieldDescriptor.TYPE_SINT64: (-(1 << 63), (1 << 63) - 1),
    gdesc.FieldDescriptor.TYPE_SFIXED64: (-(1 << 63), (1 << 63) - 1),
}
TEXT = ["", "a", "x" * 300, "é∂ß\u2028\x00", "../../etc/passwd", "%s%n", "\ud7ff" * 3, "memsim.v1.Machine",
        "memsim.v1.Cache", "memsim.v1.VM", "grpc.health.v1.Health", "memsim/v1/machine.proto", "*", "[z-a]"]


def message_class(desc: gdesc.Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(desc)


def method_path(service: gdesc.ServiceDescriptor, method: gdesc.MethodDescriptor) -> str:
    return f"/{service.full_name}/{method.name}"


# -- values --------------------------------------------------------------------------------------


def pick_int(rng: random.Random, lo: int = 0, hi: int = U64) -> int:
    r = rng.random()
    if r < 0.6:
        v = rng.choice(INTS) + rng.choice((0, 0, 0, -1, 1))
    elif r < 0.85:
        v = rng.randint(0, 1 << rng.randint(1, 64))
    else:
        v = rng.randint(lo, hi)
    if lo < 0 and rng.random() < 0.3:
        v = -v
    return min(max(v, lo), hi)


def pick_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.5:
        return rng.randint(0, 300)
    if r < 0.8:
        return rng.choice([0, 1, 8, 16, 17, 24, 32, 1024, 4096, 8192, 32768, 32769, 65536, 70_000, 1 << 20])
    return pick_int(rng)


def pick_bytes(rng: random.Random, big: bool = True) -> bytes:
    r = rng.random()
    if r < 0.2:
        return b""
    if r < 0.85:
        return rng.randbytes(rng.randint(1, 64))
    if r < 0.97 or not big:
        return rng.randbytes(rng.randint(64, 9000))
    return bytes([rng.randrange(256)]) * rng.choice([1 << 16, 1 << 20, 3 << 20])


def pick_text(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(TEXT)
    return "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0x80, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
                   for _ in range(rng.randint(0, 40)))


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Flip, cut, insert or duplicate bytes of an encoding (what a broken or hostile peer sends)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randint(0, len(b))
        if op == 0 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            del b[pos:pos + rng.randint(1, 8)]
        elif op == 2:
            b[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            b[pos:pos] = rng.choice([b"\xff" * 10, b"\x80" * 11, b"\x0a\xff\xff\xff\xff\x0f",
                                     b"\x12\x80\x80\x80\x80\x08"])
        else:
            b = b[:pos]
    return bytes(b)


# Call metadata a client may send: the session headers (server/sessions.py) with values a
# broken or hostile client could put there, and a header nobody knows.
METADATA_KEYS = ("memsim-client-id", "memsim-lease-seconds", "x-memsim-junk")
METADATA_VALUES = ("", "0", "1", "7f", "ffffffffffffffff", "10000000000000000", "-1", "nan", "inf", "1e309", "zz",
                   " ", "0x10", "3.5", "0.001", "86401", "1" * 200)


def pick_metadata(rng: random.Random) -> list[tuple[str, str]]:
    if rng.random() < 0.9:
        return []
    return [(rng.choice(METADATA_KEYS), rng.choice(METADATA_VALUES)) for _ in range(rng.randint(1, 2))]


def junk(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.1:
        return b""
    if r < 0.3:  # a varint that never ends, a length past the end, a group tag, a field 0
        return rng.choice([b"\xff" * 12, b"\x0a\xff\xff\xff\xff\x07abc", b"\x0b\x0c", b"\x00\x01",
                           b"\x08" + b"\x80" * 10, b"\x12\x05\xff\xfe\xfd\xfc\xfb", b"\x0f", b"\x1a\x02\xc3\x28"])
    return rng.randbytes(rng.randint(1, 200 if r < 0.95 else 5000))


def build(desc: gdesc.Descriptor, rng: random.Random, hint: Callable[[str, random.Random], Any] | None,
          depth: int = 0) -> Message:
    """A message of `desc` with random fields: what the hint gives for a field's name, else edge values by type."""
    msg = message_class(desc)()
    oneof_pick = {o.name: rng.choice(o.fields) if rng.random() < 0.8 else None for o in desc.oneofs}
    for f in desc.fields:
        if f.containing_oneof is not None and oneof_pick[f.containing_oneof.name] is not f:
            continue
        if f.containing_oneof is None and rng.random() < 0.25:
            continue
        repeated = f.is_repeated
        n = rng.choice([0, 1, 1, 2, 3, 5, 8, rng.randint(0, 64)]) if repeated else 1
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            continue
        for _ in range(n):
            if f.type == gdesc.FieldDescriptor.TYPE_MESSAGE:
                if depth >= 3:
                    break
                sub = build(f.message_type, rng, hint, depth + 1)
                if repeated:
                    getattr(msg, f.name).add().CopyFrom(sub)
                else:
                    getattr(msg, f.name).CopyFrom(sub)
                continue
            v = hint(f.name, rng) if hint is not None else None
            if v is None:
                v = scalar(f, rng)
            if repeated:
                getattr(msg, f.name).append(v)
            else:
                setattr(msg, f.name, v)
    return msg


def scalar(f: gdesc.FieldDescriptor, rng: random.Random) -> Any:
    t = f.type
    if t in RANGES:
        return pick_int(rng, *RANGES[t])
    if t == gdesc.FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t in (gdesc.FieldDescriptor.TYPE_DOUBLE, gdesc.FieldDescriptor.TYPE_FLOAT):
        return rng.choice([0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), 1e38, -1.0])
    if t == gdesc.FieldDescriptor.TYPE_STRING:
        return pick_text(rng)
    if t == gdesc.FieldDescriptor.TYPE_BYTES:
        return pick_bytes(rng)
    if t == gdesc.FieldDescriptor.TYPE_ENUM:  # proto3 enums are open: unknown numbers go on the wire
        values = [v.number for v in f.enum_type.values]
        return rng.choice(values) if rng.random() < 0.85 else rng.choice([-1, 99, 1 << 30])
    raise ValueError(f"no generator for field {f.full_name} of type {t}")


# -- what each service's fuzzer knows -------------------------------------------------------------


@dataclass
class Stamp:
    kind: str
    where: dict
    length: int
    sha256: str


class ServiceFuzz:
    """Structured requests for one service, what it learned from replies, and which requests would hit a stamp."""

    name = ""

    def __init__(self, info: mpb.MachineInfo):
        self.info = info

    def hint(self, method: str) -> Callable[[str, random.Random], Any] | None:
        return None

    def special(self, method: str, rng: random.Random) -> list[Message] | None:
        """Hand-made requests for methods whose fields only mean something together (batches)."""
        return None

    def harmful(self, method: str, msg: Message) -> bool:
        """Would this request change stamped data? Such a request is never sent."""
        return False

    def observe(self, method: str, requests: list[Message], replies: list[Message]) -> None:
        pass


class MachineFuzz(ServiceFuzz):
    name = "Machine"

    def __init__(self, info: mpb.MachineInfo):
        super().__init__(info)
        self.live: list[int] = []
        self.freed: list[int] = []
        self.protected: list[tuple[int, int]] = []  # stamped objects [lo, hi)

    def address(self, rng: random.Random) -> int:
        base, mem = self.info.arena_base, self.info.memory_bytes
        r = rng.random()
        if r < 0.35 and self.live:
            return rng.choice(self.live)
        if r < 0.45 and self.live:
            return rng.choice(self.live) + rng.choice([1, 7, 8, 16, 4096, -1, -8])
        if r < 0.55 and self.freed:
            return rng.choice(self.freed)
        if r < 0.8:
            return max(0, base + rng.randint(-64, mem + 64) // 8 * 8)
        return pick_int(rng)

    def hint(self, method: str) -> Callable[[str, random.Random], Any]:
        def h(name: str, rng: random.Random) -> Any:
            if name == "address":
                return self.address(rng)
            if name in ("size", "length"):
                return pick_size(rng) if rng.random() < 0.9 else rng.choice([1 << 40, U64])
            if name == "offset":
                return rng.choice([0, 0, 1, 8, 100, 4095, 4096, 1 << 20, U64]) if rng.random() < 0.8 else pick_int(rng)
            if name == "data":
                return pick_bytes(rng)
            return None
        return h

    def special(self, method: str, rng: random.Random) -> list[Message] | None:
        if method != "Batch" or rng.random() < 0.2:
            return None
        return [self.op_batch(rng, seq) for seq in range(rng.randint(1, 3))]

    def op_batch(self, rng: random.Random, seq: int) -> mpb.OpBatch:
        n = rng.choice([0, 1, 2, 5, 10, 40, rng.randint(0, 200)])
        kinds = [rng.choice([mpb.ALLOC, mpb.ALLOC, mpb.FREE, mpb.READ, mpb.WRITE]) if rng.random() < 0.97
                 else rng.choice([0, 9, -3]) for _ in range(n)]
        b = mpb.OpBatch(seq=seq, kind=kinds)
        well_formed = rng.random() < 0.85
        if rng.random() < 0.8:
            b.address.extend(self.address(rng) for _ in range(n if well_formed else rng.randint(0, n + 2)))
        if rng.random() < 0.8:
            b.size.extend(pick_size(rng) % (1 << 17) if rng.random() < 0.95 else pick_size(rng)
                          for _ in range(n if well_formed else rng.randint(0, n + 2)))
        if rng.random() < 0.5:
            b.offset.extend(rng.choice([0, 0, 8, 4096, U64]) for _ in range(n))
        if rng.random() < 0.5:
            b.ref.extend(rng.choice([-1, -1, max(0, i - 1), i, i + 5, -(1 << 31)]) for i in range(n))
        writes = sum(1 for k in kinds if k == mpb.WRITE)
        b.data.extend(pick_bytes(rng, big=False) for _ in range(writes if well_formed else rng.randint(0, writes + 2)))
        return b

    def stamped(self, addr: int) -> bool:
        return any(lo <= addr < hi for lo, hi in self.protected)

    def harmful(self, method: str, msg: Message) -> bool:
        if method in ("Free", "Write"):
            return self.stamped(msg.address)
        if method == "Batch":
            n = len(msg.kind)
            addrs = list(msg.address) or [0] * n
            refs = list(msg.ref) or [-1] * n
            for i, k in enumerate(msg.kind):
                if k in (mpb.FREE, mpb.WRITE) and i < len(addrs) and (i >= len(refs) or refs[i] < 0) \
                        and self.stamped(addrs[i]):
                    return True
        return False

    def observe(self, method: str, requests: list[Message], replies: list[Message]) -> None:
        if method == "Alloc" and replies:
            self.live.append(replies[0].address)
        elif method == "Free" and requests[0].address in self.live:
            self.live.remove(requests[0].address)
            self.freed.append(requests[0].address)
        elif method == "Batch":
            for req, rep in zip(requests, replies, strict=False):
                failed = {e.index for e in rep.errors}
                for i, k in enumerate(req.kind):
                    if i in failed:
                        continue
                    if k == mpb.ALLOC and i < len(rep.address):
                        self.live.append(rep.address[i])
                    elif k == mpb.FREE and i < len(req.address) and req.address[i] in self.live:
                        self.live.remove(req.address[i])
                        self.freed.append(req.address[i])
        del self.freed[:-200]


# Cache arguments: integers past int64 and past Python's 4300-digit limit, globs with reversed
# ranges and backtracking, Redis's option words, and keys from a small set so commands meet.
CACHE_WORDS = [b"EX", b"PX", b"EXAT", b"PXAT", b"NX", b"XX", b"GT", b"LT", b"KEEPTTL", b"GET", b"MATCH", b"COUNT",
               b"TYPE", b"SET", b"GET", b"RESETSTAT", b"maxmemory", b"maxmemory-policy", b"lfu-log-factor",
               b"lfu-decay-time", b"maxmemory-samples", b"*", b"ENCODING", b"FREQ", b"IDLETIME", b"REFCOUNT",
               b"ASYNC", b"SYNC", b"server", b"stats", b"memory", b"keyspace", b"all", b"everything"]
CACHE_INTS = [b"0", b"1", b"-1", b"10", b"9223372036854775807", b"9223372036854775808", b"-9223372036854775808",
              b"-9223372036854775809", b"1e3", b"0x10", b" 1", b"1 ", b"+1", b"01", b"", b"3.5", b"nan", b"inf",
              b"99999999999999999999999999", b"-0"]
CACHE_GLOBS = [b"*", b"?", b"[a-z]*", b"[z-a]", b"[b-a]", b"[^a]*", b"\\", b"[", b"[a-", b"k*", b"*\\*",
               b"*?*?*?*?*?*?*?b", b"[[]", b"[\\]]", b"**********x"]
DESTRUCTIVE = {b"FLUSHALL", b"FLUSHDB"}
READ_ONLY = {b"GET", b"MGET", b"EXISTS", b"STRLEN", b"TTL", b"PTTL", b"TYPE", b"OBJECT", b"KEYS", b"SCAN"}


class CacheFuzz(ServiceFuzz):
    name = "Cache"

    def __init__(self, info: mpb.MachineInfo, commands: list[bytes]):
        super().__init__(info)
        self.commands = [c for c in commands if c.upper() not in DESTRUCTIVE] or [b"PING"]

    def key(self, rng: random.Random) -> bytes:
        r = rng.random()
        if r < 0.7:
            return b"k%d" % rng.randrange(64)
        if r < 0.8:
            return b"n%d" % rng.randrange(8)  # keys INCR and friends meet
        if r < 0.85:
            return b"x" * 200  # a long key for the globs
        return pick_bytes(rng, big=False)

    def arg(self, rng: random.Random) -> bytes:
        r = rng.random()
        if r < 0.35:
            return self.key(rng)
        if r < 0.55:
            return rng.choice(CACHE_INTS)
        if r < 0.6:
            return b"1" * rng.choice([4300, 4301, 5000]) if rng.random() < 0.5 else b"-" + b"9" * 4400
        if r < 0.7:
            return rng.choice(CACHE_WORDS) if rng.random() < 0.7 else rng.choice(CACHE_WORDS).lower()
        if r < 0.78:
            return rng.choice(CACHE_GLOBS)
        return pick_bytes(rng)

    def command(self, rng: random.Random) -> list[bytes]:
        r = rng.random()
        if r < 0.9:
            name = rng.choice(self.commands)
            name = name.upper() if rng.random() < 0.5 else name
        elif r < 0.95:
            name = pick_bytes(rng, big=False) or b"?"
        else:
            name = b""
        return [name, *(self.arg(rng) for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4, 6, rng.randint(0, 40)])))]

    def hint(self, method: str) -> Callable[[str, random.Random], Any] | None:
        return None

    def special(self, method: str, rng: random.Random) -> list[Message] | None:
        if rng.random() < 0.1:
            return None  # leave it to the generic builder: args and argc that do not agree
        if method == "Command":
            return [cache_pb2.CommandRequest(args=self.command(rng))]
        if method == "Pipeline":
            batches = []
            for seq in range(rng.randint(1, 3)):
                cmds = [self.command(rng) for _ in range(rng.choice([0, 1, 3, 10, 50]))]
                b = cache_pb2.CommandBatch(seq=seq, args=[a for c in cmds for a in c], argc=[len(c) for c in cmds])
                if rng.random() < 0.1 and b.argc:
                    b.argc[rng.randrange(len(b.argc))] = rng.choice([0, 1, 1000, U32])
                batches.append(b)
            return batches
        return None

    @staticmethod
    def command_harmful(args: list[bytes]) -> bool:
        if not args:
            return False
        name = args[0].upper()
        if name in DESTRUCTIVE:
            return True
        if name not in READ_ONLY and any(STAMP_KEY_PREFIX in a for a in args[1:]):
            return True
        if name == b"CONFIG":  # a positive maxmemory would let a policy evict the stamps
            words = [a.lower() for a in args]
            for i, w in enumerate(words[:-1]):
                v = words[i + 1]
                if w.startswith(b"maxmemory") and w != b"maxmemory-policy" and any(48 <= c <= 57 for c in v) \
                        and v.strip(b"0 ") and len(v) < 4000 and not v.startswith(b"-"):
                    return True
        return False

    def harmful(self, method: str, msg: Message) -> bool:
        if method == "Command":
            return self.command_harmful(list(msg.args))
        if method == "Pipeline":
            args, argc = list(msg.args), list(msg.argc)
            if sum(argc) != len(args):  # refused whole; still, spare the stamps if it were not
                return any(a.upper() in DESTRUCTIVE or STAMP_KEY_PREFIX in a for a in args)
            pos = 0
            for n in argc:
                if self.command_harmful(args[pos:pos + n]):
                    return True
                pos += n
        return False


class VmFuzz(ServiceFuzz):
    name = "VM"
    MUTATING = frozenset({"DestroySpace", "Munmap", "Mprotect", "Store"})

    def __init__(self, info: mpb.MachineInfo):
        super().__init__(info)
        self.spaces: list[int] = []
        self.regions: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self.protected: set[int] = set()

    def space(self, rng: random.Random) -> int:
        r = rng.random()
        if r < 0.75 and self.spaces:
            return rng.choice(self.spaces)
        if r < 0.85 and self.protected:
            return rng.choice(sorted(self.protected))
        if rng.random() < 0.8:
            return rng.choice([0, 1, 2, 63, 64, 255, 256, 1023, 1024, 65535, U32])
        return pick_int(rng, 0, U32)

    def address(self, rng: random.Random, space: int | None = None) -> int:
        regions = self.regions.get(space) if space is not None else None
        if regions is None:
            regions = [r for rs in self.regions.values() for r in rs]
        r = rng.random()
        if r < 0.6 and regions:
            lo, length = rng.choice(regions)
            return lo + rng.choice([0, 1, 4095, 4096, length - 1, length, length + 4096, rng.randrange(max(1, length))])
        if r < 0.8:
            return rng.choice([0, 4096, 1 << 20, (1 << 32) - 4096, 1 << 32, (1 << 47) - 4096, 1 << 47, 1 << 48,
                               (1 << 57) - 1, U64 - 4095, U64])
        return pick_int(rng)

    def length(self, rng: random.Random) -> int:
        r = rng.random()
        if r < 0.6:
            return rng.choice([0, 1, 100, 4095, 4096, 4097, 8192, 16384, 65536, 1 << 21, (1 << 21) + 4096, 4 << 20])
        if r < 0.9:
            return rng.randint(0, 1 << 16)
        return rng.choice([1 << 30, 1 << 40, 1 << 47, U64 - 4095, U64]) if rng.random() < 0.7 else pick_int(rng)

    def hint(self, method: str) -> Callable[[str, random.Random], Any]:
        def h(name: str, rng: random.Random) -> Any:
            if name == "space":
                return self.space(rng)
            if name == "address":
                return self.address(rng)
            if name == "length":
                return self.length(rng) if method != "Load" or rng.random() < 0.1 else rng.randint(0, 9000)
            if name == "page_table":
                return rng.choice(["linear", "hybrid", "multilevel", "inverted", "", "LINEAR", "x" * 100, "\x00"])
            if name == "bits":
                return rng.choice([0, 0, 1, 12, 13, 14, 16, 20, 24, 32, 39, 48, 57, 58, 64, 65, 255, U32])
            if name in ("levels", "level_bits"):
                return rng.choice([0, 0, 1, 2, 3, 4, 5, 9, 10, 16, 30, 64, 255, 1 << 15, 1 << 16, U32])
            if name == "prot":
                return rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 255, U32])
            if name == "kind":
                return rng.choice(["code", "data", "heap", "stack", "anon", "guard", "", "DATA", "x" * 64])
            if name == "data":
                return pick_bytes(rng) if rng.random() < 0.97 else b"\xab" * rng.choice([1 << 21, 5 << 20])
            if name in ("fixed", "huge", "hugetlb"):
                return rng.random() < {"fixed": 0.3, "huge": 0.2, "hugetlb": 0.1}[name]
            return None
        return h

    def special(self, method: str, rng: random.Random) -> list[Message] | None:
        if method == "Mmap" and self.spaces and rng.random() < 0.6:  # small maps that later calls land in
            sp = rng.choice(self.spaces)
            return [vm_pb2.MmapRequest(space=sp, length=rng.choice([4096, 8192, 65536, 1 << 21]),
                                       prot=rng.choice([1, 3, 3, 5, 7]), kind=rng.choice(["data", "anon", "stack"]),
                                       huge=rng.random() < 0.2, hugetlb=rng.random() < 0.05)]
        if method == "DestroySpace" and len(self.spaces) > 8:
            return [vm_pb2.SpaceRequest(space=rng.choice(self.spaces))]
        if method != "Batch" or rng.random() < 0.2:
            return None
        return [self.vm_batch(rng, seq) for seq in range(rng.randint(1, 3))]

    def vm_batch(self, rng: random.Random, seq: int) -> vm_pb2.VmBatch:
        n = rng.choice([0, 1, 2, 5, 10, 40, rng.randint(0, 200)])
        ops = [rng.choice([vm_pb2.VM_LOAD, vm_pb2.VM_STORE, vm_pb2.VM_TRANSLATE]) if rng.random() < 0.97
               else rng.choice([0, 7]) for _ in range(n)]
        well_formed = rng.random() < 0.85
        spaces = [self.space(rng) for _ in range(n)]
        for i, op in enumerate(ops):  # stores go to the campaign's own spaces, never to the stamps
            if op == vm_pb2.VM_STORE and spaces[i] in self.protected:
                spaces[i] = rng.choice(self.spaces) if self.spaces else 0
        b = vm_pb2.VmBatch(seq=seq, op=ops)
        b.space.extend(spaces if rng.random() < 0.9 else spaces[:rng.randint(0, n)])
        b.address.extend(self.address(rng, s) for s in (spaces if well_formed else spaces[:rng.randint(0, n)]))
        if rng.random() < 0.8:
            b.length.extend(rng.choice([0, 1, 8, 4096, 9000, 1 << 20]) if rng.random() < 0.97 else pick_int(rng)
                            for _ in range(n))
        stores = ops.count(vm_pb2.VM_STORE)
        b.data.extend(pick_bytes(rng, big=False) for _ in range(stores if well_formed else rng.randint(0, stores + 2)))
        return b

    def harmful(self, method: str, msg: Message) -> bool:
        if method in self.MUTATING:
            return msg.space in self.protected
        if method == "Mmap":  # a new region beside the stamps is fine, one over them is not
            return msg.space in self.protected and msg.fixed
        if method == "Batch":
            spaces = list(msg.space) or [0] * len(msg.op)
            return any(op == vm_pb2.VM_STORE and i < len(spaces) and spaces[i] in self.protected
                       for i, op in enumerate(msg.op))
        return False

    def observe(self, method: str, requests: list[Message], replies: list[Message]) -> None:
        if method == "CreateSpace" and replies:
            self.spaces.append(replies[0].space)
        elif method == "DestroySpace" and replies and requests[0].space in self.spaces:
            self.spaces.remove(requests[0].space)
            self.regions.pop(requests[0].space, None)
        elif method == "Mmap" and replies:
            self.regions[requests[0].space].append((replies[0].address, requests[0].length))
            del self.regions[requests[0].space][:-20]


class V8Fuzz(ServiceFuzz):
    """Isolates and handles the campaign made (so that calls reach real objects), sizes near the
    limits, and random ids; the isolates are the campaign's own, so nothing here touches a stamp."""

    name = "V8"
    SIZES = (0, 1, 4096, 256 << 10, 512 << 10, 1 << 20, 3 << 20, 8 << 20, 1 << 30, U64)

    def __init__(self, info: mpb.MachineInfo):
        super().__init__(info)
        self.isolates: list[int] = []
        self.handles: dict[int, list[int]] = defaultdict(list)

    def isolate(self, rng: random.Random) -> int:
        if self.isolates and rng.random() < 0.8:
            return rng.choice(self.isolates)
        return rng.choice([0, 1, 15, 16, 255, 256, U32])

    def handle(self, rng: random.Random) -> int:
        known = [h for hs in self.handles.values() for h in hs]
        if known and rng.random() < 0.8:
            h = rng.choice(known)
            return h if rng.random() < 0.9 else h ^ (1 << rng.randrange(64))  # a stale or forged stamp
        return pick_int(rng, 0, U64)

    def hint(self, method: str) -> Callable[[str, random.Random], Any]:
        def h(name: str, rng: random.Random) -> Any:
            if name == "isolate":
                return self.isolate(rng)
            if name in ("handle", "escape"):
                return self.handle(rng)
            if name in ("semi_space_size", "max_old_space_size"):
                return rng.choice(self.SIZES) if rng.random() < 0.9 else pick_int(rng, 0, U64)
            if name in ("index", "nfields"):
                return rng.choice([0, 1, 2, 3, 100, 1 << 20, (1 << 20) + 1, U32])
            if name in ("offset", "length", "byte_length"):
                return rng.choice([0, 1, 8, 100, 4096, 16 << 20, (16 << 20) + 1, U32])
            if name == "lease_seconds":
                return rng.choice([0.0, 0.001, 1.0, 30.0, 86400.0, 1e9, -1.0, float("nan"), float("inf")])
            return None
        return h

    def observe(self, method: str, requests: list[Message], replies: list[Message]) -> None:
        if method == "CreateIsolate" and replies:
            self.isolates.append(replies[0].isolate)
        elif method == "DestroyIsolate" and replies and requests[0].isolate in self.isolates:
            self.isolates.remove(requests[0].isolate)
            self.handles.pop(requests[0].isolate, None)
        elif method in ("NewObject", "NewString", "NewArrayBuffer", "MakePersistent") and replies:
            kept = self.handles[requests[0].isolate]
            kept.append(replies[0].handle)
            del kept[:-50]


class HealthFuzz(ServiceFuzz):
    name = "Health"

    def hint(self, method: str) -> Callable[[str, random.Random], Any]:
        def h(name: str, rng: random.Random) -> Any:
            if name == "service":
                if rng.random() < 0.3:
                    return pick_text(rng)
                return rng.choice(["", "memsim.v1.Machine", "memsim.v1.Cache", "memsim.v1.VM", "nope",
                                   "grpc.reflection.v1alpha.ServerReflection"])
            return None
        return h


class ReflectionFuzz(ServiceFuzz):
    name = "Reflection"
    SYMBOLS = ("memsim.v1.Machine", "memsim.v1.VM", "memsim.v1.Cache", "memsim.v1.OpBatch", "memsim.v1.Machine.Alloc",
               "grpc.health.v1.Health", "memsim.v1.Layer", "memsim.v1", "memsim", ".memsim.v1.VM", "no.such.Thing")
    FILES = ("memsim/v1/machine.proto", "memsim/v1/vm.proto", "memsim/v1/cache.proto",
             "grpc/health/v1/health.proto", "google/protobuf/descriptor.proto", "nope.proto", "../machine.proto")

    def hint(self, method: str) -> Callable[[str, random.Random], Any]:
        def h(name: str, rng: random.Random) -> Any:
            if rng.random() < 0.25:
                return None
            if name in ("file_containing_symbol", "all_extension_numbers_of_type", "containing_type"):
                return rng.choice(self.SYMBOLS)
            if name == "file_by_filename":
                return rng.choice(self.FILES)
            if name == "list_services":
                return rng.choice(["", "*"])
            return None
        return h


def known_wedge(service: str, method: str, msg: Message) -> int | None:
    """The open defect (see WEDGES) this request would trigger, if any."""
    if service == "Cache" and method in ("Command", "Pipeline") and any(a.count(b"*") >= 3 for a in msg.args):
        return 5
    if service == "VM" and method in ("Mmap", "Munmap", "Mprotect") and msg.length > 1 << 30:
        return 7
    return None


# -- the campaign ---------------------------------------------------------------------------------


@dataclass
class Finding:
    service: str
    method: str
    index: int
    seed: int
    mode: str
    code: str
    message: str
    origin: str  # memsim | grpc library
    known: str  # the reported defect it matches, or "" when new
    request: str
    kind: str  # what findings are grouped by: origin|service|method|code|defect or message


@dataclass
class Report:
    seed: int
    calls_per_service: int
    target: str
    elapsed_s: float = 0.0
    stopped_early: str = ""
    calls: dict[str, int] = field(default_factory=dict)
    skipped_harmful: dict[str, int] = field(default_factory=dict)
    skip_defects: list[int] = field(default_factory=list)
    skipped_known: dict[str, int] = field(default_factory=dict)  # by defect number
    histogram: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    op_histogram: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)  # INTERNAL/UNKNOWN: first examples per kind
    finding_counts: dict[str, int] = field(default_factory=dict)
    wedges: list[dict] = field(default_factory=list)
    workers_before: list[int] = field(default_factory=list)
    workers_after: list[int] = field(default_factory=list)
    recoveries_before: int = 0
    recoveries_after: int = 0
    stamps: dict[str, dict[str, int]] = field(default_factory=dict)
    stamp_failures: list[str] = field(default_factory=list)
    damage_windows: list[dict] = field(default_factory=list)  # with --check-every: when damage appeared
    heap_problems: list[str] = field(default_factory=list)
    unhealthy_cores: list[int] = field(default_factory=list)
    worker_rss_kib_before: list[int] = field(default_factory=list)  # RssAnon of each worker (a server started here)
    worker_rss_kib_after: list[int] = field(default_factory=list)

    def memsim_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.origin == "memsim"]

    def violations(self) -> list[str]:
        out = []
        n = sum(c for k, c in self.finding_counts.items() if k.startswith("memsim|"))
        if n:
            out.append(f"{n} INTERNAL/UNKNOWN from memsim's code, e.g. "
                       + "; ".join(f"{f.service}.{f.method}#{f.index} {f.code} {f.message[:100]!r}"
                                   for f in self.memsim_findings()[:3]))
        if self.workers_before != self.workers_after:
            out.append(f"workers died: pids {self.workers_before} before, {self.workers_after} after")
        if self.recoveries_after != self.recoveries_before:
            out.append(f"workers recovered by the supervisor: {self.recoveries_after - self.recoveries_before}")
        if self.stamp_failures:
            unverified = sum(c.get("unverified", 0) for c in self.stamps.values())
            out.append(f"{len(self.stamp_failures) - unverified} stamps damaged, {unverified} not verified: "
                       + "; ".join(self.stamp_failures[:5]))
        if self.heap_problems:
            out.append("heap check: " + "; ".join(self.heap_problems[:5]))
        if self.wedges:
            out.append(f"{len(self.wedges)} times a core stopped answering (health check and PING) after a call: "
                       + "; ".join(f"{w['service']}.{w['method']}#{w['index']} core {w['core']}"
                                   for w in self.wedges[:3]))
        if self.unhealthy_cores:
            out.append(f"cores not serving at the end: {self.unhealthy_cores}")
        if self.stopped_early:
            out.append(f"stopped early: {self.stopped_early}")
        return out

    def to_json(self) -> dict:
        return asdict(self)


class Core:
    """A channel pinned to one core (port + 1 + core), with identity-serializer callables per method."""

    def __init__(self, host: str, port: int, core: int):
        self.core = core
        self.channel = grpc.insecure_channel(f"{host}:{port}", options=[
            ("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)])
        self.down_since: float | None = None
        self._calls: dict[tuple[str, str], Any] = {}

    def callable(self, service: gdesc.ServiceDescriptor, method: gdesc.MethodDescriptor):
        key = (service.full_name, method.name)
        if key not in self._calls:
            path = method_path(service, method)
            kind = {(False, False): self.channel.unary_unary, (False, True): self.channel.unary_stream,
                    (True, False): self.channel.stream_unary, (True, True): self.channel.stream_stream}
            self._calls[key] = kind[(method.client_streaming, method.server_streaming)](
                path, request_serializer=None, response_deserializer=None)
        return self._calls[key]

    def healthy(self, timeout: float = 2.0) -> bool:
        """The core says SERVING and runs a PING: the health service alone answers from its own thread
        even while a call holds the core (worker.py's core_lock), a command does not."""
        check = self.callable(SERVICES["Health"], SERVICES["Health"].methods_by_name["Check"])
        ping = self.callable(SERVICES["Cache"], SERVICES["Cache"].methods_by_name["Command"])
        try:
            reply = health_pb2.HealthCheckResponse.FromString(
                check(health_pb2.HealthCheckRequest().SerializeToString(), timeout=timeout))
            ping(cache_pb2.CommandRequest(args=[b"PING"]).SerializeToString(), timeout=timeout)
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def close(self) -> None:
        self.channel.close()


def kept(request: Message) -> Message:
    """The request with `keep` set where the server has one (an owner's lease never takes a stamp away)."""
    if "keep" in request.DESCRIPTOR.fields_by_name:
        request.keep = True
    return request


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stamp_bytes(seed: int, what: str, n: int) -> bytes:
    return random.Random(f"stamp/{seed}/{what}").randbytes(n)


class Campaign:
    def __init__(self, target: str, seed: int = 1, calls: int = 10_000, deadline: float = 5.0,
                 max_seconds: float = 1800.0, services: tuple[str, ...] = tuple(SERVICES),
                 verbose_index: tuple[str, int] | None = None, log: Callable[[str], None] = print,
                 skip_defects: frozenset[int] = frozenset(), check_every: int = 0, check_from: int = 0):
        self.check_every, self.check_from = check_every, check_from
        self.seen_damage: set[str] = set()
        self.target, self.seed, self.calls, self.deadline, self.max_seconds = target, seed, calls, deadline, max_seconds
        self.services = services
        self.verbose_index = verbose_index
        self.log = log
        self.skip_defects = skip_defects
        self.report = Report(seed=seed, calls_per_service=calls, target=target, skip_defects=sorted(skip_defects))
        self.hist: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        self.op_hist: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        self.stamps: list[Stamp] = []
        self._finding_keys: Counter = Counter()

    # -- setup ------------------------------------------------------------------------------

    def connect(self) -> None:
        host = self.target.rsplit(":", 1)[0]
        with grpc.insecure_channel(self.target) as ch:
            grpc.channel_ready_future(ch).result(timeout=30)
            self.info = mpb.MachineInfo.FromString(ch.unary_unary(
                "/memsim.v1.Machine/GetInfo", request_serializer=None, response_deserializer=None)(
                    b"", timeout=self.deadline * 4))
        self.cores = [Core(host, self.info.port + 1 + c, c) for c in range(self.info.cores)]
        commands = self.unary(self.cores[0], "Cache", "Command", cache_pb2.CommandRequest(args=[b"COMMAND"]))
        names = msgpack.unpackb(commands.reply) if commands is not None else []
        self.fuzz: dict[str, ServiceFuzz] = {
            "Machine": MachineFuzz(self.info), "Cache": CacheFuzz(self.info, list(names)), "VM": VmFuzz(self.info),
            "V8": V8Fuzz(self.info), "Health": HealthFuzz(self.info), "Reflection": ReflectionFuzz(self.info)}

    def unary(self, core: Core, service: str, method: str, request: Message) -> Any:
        sd = SERVICES[service]
        md = sd.methods_by_name[method]
        raw = core.callable(sd, md)(request.SerializeToString(), timeout=self.deadline * 2)
        return message_class(md.output_type).FromString(raw)

    def recoveries(self) -> int:
        return self.unary((self.answering() or self.cores)[0], "Machine", "GetStats", mpb.StatsRequest()).recoveries

    # -- stamps -----------------------------------------------------------------------------

    def stamp(self) -> None:
        """Data the fuzzed calls must never be able to damage, with a digest of each."""
        m: MachineFuzz = self.fuzz["Machine"]  # type: ignore[assignment]
        for core in self.cores:
            for size in (1, 8, 16, 24, 100, 512, 1024, 4000, 8192, 32768, 40_000, 100_000):
                a = self.unary(core, "Machine", "Alloc", kept(mpb.AllocRequest(size=size)))
                data = stamp_bytes(self.seed, f"alloc/{core.core}/{size}", size)
                self.unary(core, "Machine", "Write", mpb.WriteRequest(address=a.address, data=data))
                m.protected.append((a.address, a.address + a.usable_size))
                self.stamps.append(Stamp("alloc", {"address": a.address, "core": core.core}, size, digest(data)))
        for i in range(48):
            key = STAMP_KEY_PREFIX + b"%d" % i
            data = stamp_bytes(self.seed, f"cache/{i}", [0, 1, 10, 100, 1000, 40_000][i % 6])
            self.unary(self.cores[i % len(self.cores)], "Cache", "Command",
                       cache_pb2.CommandRequest(args=[b"SET", key, data]))
            self.stamps.append(Stamp("cache", {"key": key.decode()}, len(data), digest(data)))
        v: VmFuzz = self.fuzz["VM"]  # type: ignore[assignment]
        page = self.info.frame_size
        for kind, bits in (("linear", 24), ("hybrid", 32), ("multilevel", 48), ("inverted", 48)):
            core = self.cores[len(v.protected) % len(self.cores)]
            create = kept(vm_pb2.CreateSpaceRequest(page_table=kind, bits=bits, name=f"fuzz-stamp-{kind}"))
            sp = self.unary(core, "VM", "CreateSpace", create).space
            v.protected.add(sp)
            base = self.unary(core, "VM", "Mmap", vm_pb2.MmapRequest(space=sp, length=16 * page, prot=3,
                                                                     kind="data")).address
            for p in range(16):
                data = stamp_bytes(self.seed, f"vm/{kind}/{p}", page)
                self.unary(core, "VM", "Store", vm_pb2.StoreRequest(space=sp, address=base + p * page, data=data))
                self.stamps.append(Stamp("vm", {"space": sp, "address": base + p * page, "kind": kind}, page,
                                         digest(data)))

    def damaged(self) -> tuple[dict[str, Counter], list[str]]:
        """Read every stamp back, through the cores that answer (the data is the machine's, any core reads it)."""
        counts: dict[str, Counter] = defaultdict(Counter)
        problems = []
        cores = self.answering()
        for i, s in enumerate(self.stamps):
            if not cores:
                counts[s.kind]["unverified"] += 1
                problems.append(f"{s.kind} {s.where}: not verified, no core answers")
                continue
            core = cores[i % len(cores)]
            try:
                problem = self.check_stamp(core, s)
            except grpc.RpcError as e:
                problem = f"{e.code().name} {e.details()}"
                if e.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                    cores.remove(core)  # a wedged core: the rest go through the others
            counts[s.kind]["intact" if not problem else "damaged"] += 1
            if problem:
                problems.append(f"{s.kind} {s.where}: {problem}")
        return counts, problems

    def answering(self) -> list[Core]:
        return [c for c in self.cores if c.healthy(1.0)]

    def check_stamp(self, core: Core, s: Stamp) -> str:
        """What is wrong with one stamp, or ""."""
        if s.kind == "alloc":
            read = mpb.ReadRequest(address=s.where["address"], length=s.length)
            data = self.unary(core, "Machine", "Read", read).data
        elif s.kind == "cache":
            key = s.where["key"].encode()
            data = msgpack.unpackb(self.unary(core, "Cache", "Command", cache_pb2.CommandRequest(
                args=[b"GET", key])).reply)
            ttl = msgpack.unpackb(self.unary(core, "Cache", "Command", cache_pb2.CommandRequest(
                args=[b"TTL", key])).reply)
            if ttl != -1:
                return f"TTL {ttl} where none was set"
        else:
            data = self.unary(core, "VM", "Load", vm_pb2.LoadRequest(
                space=s.where["space"], address=s.where["address"], length=s.length)).data
        if not isinstance(data, bytes):
            return f"read back {data!r} where {s.length} bytes were written"
        if digest(data) != s.sha256:
            return f"{s.length} bytes written, {len(data)} read back, first {data[:16]!r}"
        return ""

    def verify(self) -> None:
        counts, problems = self.damaged()
        self.report.stamps = {k: dict(c) for k, c in counts.items()}
        self.report.stamp_failures.extend(problems)

    def release(self) -> None:
        """Give back what the campaign knows it made (for a server it did not start): the stamps, the
        objects it still holds, the keys of its small key set and its address spaces. Keys with random
        names that its SETs made stay."""
        core = self.cores[0]
        m: MachineFuzz = self.fuzz["Machine"]  # type: ignore[assignment]
        frees = [s.where["address"] for s in self.stamps if s.kind == "alloc"] + m.live
        keys = [s.where["key"].encode() for s in self.stamps if s.kind == "cache"]
        keys += [b"k%d" % i for i in range(64)] + [b"n%d" % i for i in range(8)] + [b"x" * 200]
        for address in frees:
            with contextlib.suppress(grpc.RpcError):
                self.unary(core, "Machine", "Free", mpb.FreeRequest(address=address))
        with contextlib.suppress(grpc.RpcError):
            self.unary(core, "Cache", "Command", cache_pb2.CommandRequest(args=[b"DEL", *keys]))
        v: VmFuzz = self.fuzz["VM"]  # type: ignore[assignment]
        for sp in sorted(v.protected | set(v.spaces)):
            with contextlib.suppress(grpc.RpcError):
                self.unary(core, "VM", "DestroySpace", vm_pb2.SpaceRequest(space=sp))

    # -- calls ------------------------------------------------------------------------------

    def make_call(self, service: str, index: int) -> tuple[str, gdesc.MethodDescriptor, list[bytes], list, list]:
        """The request(s) of call `index`: from its own generator, redrawn while it would hit a stamp."""
        sd = SERVICES[service]
        fz = self.fuzz[service]
        rng = random.Random(f"{self.seed}/{service}/{index}")
        for _attempt in range(20):
            md = rng.choice(list(sd.methods))
            in_cls = message_class(md.input_type)
            n_msgs = rng.choice([1, 1, 1, 2, 3, 4]) if md.client_streaming else 1
            mode = rng.choices(["structured", "mutated", "junk"], weights=[70, 15, 15])[0]
            msgs = fz.special(md.name, rng) if mode != "junk" else None
            if msgs is None:
                msgs = [build(md.input_type, rng, fz.hint(md.name)) for _ in range(n_msgs)]
            if not md.client_streaming:
                msgs = msgs[:1]
            if mode == "structured":
                raw = [m.SerializeToString() for m in msgs]
            elif mode == "mutated":
                raw = [mutate(rng, m.SerializeToString()) if rng.random() < 0.7 else m.SerializeToString()
                       for m in msgs]
            else:
                raw = [junk(rng) for _ in msgs]
            decoded = []
            for r in raw:  # what the server will see, as far as it can parse it
                try:
                    decoded.append(in_cls.FromString(r))
                except DecodeError:
                    decoded.append(None)
            if any(d is not None and fz.harmful(md.name, d) for d in decoded):
                self.report.skipped_harmful[service] = self.report.skipped_harmful.get(service, 0) + 1
                continue
            defect = next((n for d in decoded if d is not None
                           for n in [known_wedge(service, md.name, d)] if n in self.skip_defects), None)
            if defect is not None:
                self.report.skipped_known[str(defect)] = self.report.skipped_known.get(str(defect), 0) + 1
                continue
            return mode, md, raw, decoded, pick_metadata(rng)
        ping = sd.methods_by_name.get("GetInfo") or sd.methods_by_name.get("VmStat") or md
        return "structured", ping, [b""], [message_class(ping.input_type)()], []

    def invoke(self, core: Core, service: str, md: gdesc.MethodDescriptor, raw: list[bytes],
               metadata: list | None = None) -> tuple[str, str, list]:
        """Send one call; returns (status name, details, replies)."""
        fn = core.callable(SERVICES[service], md)
        kw = {"timeout": self.deadline, "metadata": metadata or None}
        out_cls = message_class(md.output_type)
        try:
            if not md.client_streaming and not md.server_streaming:
                return "OK", "", [out_cls.FromString(fn(raw[0], **kw))]
            if md.client_streaming and not md.server_streaming:
                return "OK", "", [out_cls.FromString(fn(iter(raw), **kw))]
            call = fn(raw[0] if not md.client_streaming else iter(raw), **kw)
            replies = []
            for r in call:
                replies.append(out_cls.FromString(r))
                if not md.client_streaming and len(replies) >= 1:  # Watch streams forever: one answer is enough
                    call.cancel()
                    return "OK", "", replies
            return "OK", "", replies
        except grpc.RpcError as e:
            return e.code().name, e.details() or "", []
        except DecodeError as e:  # the server sent something that is not its reply type
            return "BAD_REPLY", str(e), []

    def record_finding(self, service: str, method: str, index: int, mode: str, code: str, message: str,
                       decoded: list) -> None:
        origin = "memsim"
        if service not in MEMSIM_SERVICES and LIBRARY_MESSAGES.search(message):
            origin = "grpc library"
        known = next((label for rx, label in KNOWN if rx.search(message)), "")
        kind = f"{origin}|{service}|{method}|{code}|{known or re.sub(r'[0-9]+', 'N', message)[:80]}"
        self._finding_keys[kind] += 1
        self.report.finding_counts[kind] = self._finding_keys[kind]
        if self._finding_keys[kind] <= 3:
            req = "; ".join(str(d)[:300].replace("\n", " ") if d is not None else "<undecodable>" for d in decoded)
            f = Finding(service, method, index, self.seed, mode, code, message[:500], origin, known, req, kind)
            self.report.findings.append(f)
            if self._finding_keys[kind] == 1:
                self.log(f"{code} {service}.{method} (seed {self.seed}, call {index}, {mode}, "
                         f"{'known #' + known if known else 'NEW'}): {message[:200]}\n    request: {req[:400]}")

    def one_call(self, service: str, index: int) -> bool:
        """Make call `index` of `service`; False if no core answered in the time the run had left."""
        mode, md, raw, decoded, metadata = self.make_call(service, index)
        core = self.pick_core(index)
        if core is None:
            return False
        code, details, replies = self.invoke(core, service, md, raw, metadata)
        self.hist[service][md.name][code] += 1
        if metadata:
            decoded = [*decoded, f"metadata {metadata}"]
        if code in BAD_CODES:
            self.record_finding(service, md.name, index, mode, code, details, decoded)
        for rep in replies:  # per-op errors inside batch and pipeline replies
            errs = getattr(rep, "errors", None)
            if errs is None or not hasattr(rep, "seq"):
                continue
            for e in errs:
                name = grpc_code_name(e.code)
                self.op_hist[service][md.name][name] += 1
                if name in BAD_CODES:
                    self.record_finding(service, f"{md.name}[op]", index, mode, name, e.message, decoded)
        if code == "OK" and mode == "structured":
            self.fuzz[service].observe(md.name, decoded, replies)
        if code in ("DEADLINE_EXCEEDED", "UNAVAILABLE") and not core.healthy():
            core.down_since = time.monotonic()
            self.report.wedges.append({"service": service, "method": md.name, "index": index, "core": core.core,
                                       "seed": self.seed, "mode": mode})
            self.log(f"core {core.core} stopped answering after {service}.{md.name} (seed {self.seed}, call {index})")
        if self.verbose_index is not None and self.verbose_index[1] == index \
                and self.verbose_index[0] in (service, "*"):
            self.log(f"{service}.{md.name} #{index} ({mode}) request: {decoded}\n  -> {code} {details} {replies}")
        return True

    def pick_core(self, index: int) -> Core | None:
        """Round-robin over the cores that answer; a core that stopped answering is probed once a second.
        None when none answers and the run is out of time."""
        while True:
            now = time.monotonic()
            for c in self.cores:
                if c.down_since is not None and now - c.down_since >= 1.0:
                    c.down_since = None if c.healthy(0.5) else now
            up = [c for c in self.cores if c.down_since is None]
            if up:
                return up[index % len(up)]
            if self.out_of_time():
                return None
            time.sleep(0.5)

    def calls_until_bound(self) -> str:
        """Every service's calls, interleaved; why the run stopped short, or ""."""
        for i in range(self.calls):
            for service in self.services:
                if self.out_of_time():
                    return f"the {self.max_seconds:.0f} s bound came at call {i} of {service}"
                if not self.one_call(service, i):
                    return f"no core answered by the {self.max_seconds:.0f} s bound (call {i} of {service})"
                self.report.calls[service] = i + 1
            if self.check_every and (i + 1) % self.check_every == 0 and i >= self.check_from:
                self.check_between(i + 1 - self.check_every, i)
        return ""

    def out_of_time(self) -> bool:
        return time.monotonic() - self.t0 > self.max_seconds

    # -- the run ----------------------------------------------------------------------------

    def check_between(self, first: int, last: int) -> None:
        """Stamps read back during the run: the first damage is pinned to a window of calls to replay."""
        _, problems = self.damaged()
        new = [p for p in problems if p not in self.seen_damage]
        if new:
            self.seen_damage.update(new)
            self.log(f"stamps damaged by calls {first}..{last} (seed {self.seed}): " + "; ".join(new[:5]))
            self.report.damage_windows.append({"first": first, "last": last, "problems": new})

    def run(self) -> Report:
        self.t0 = time.monotonic()
        self.report.recoveries_before = self.recoveries()
        self.stamp()
        self.report.stopped_early = self.calls_until_bound()
        end = time.monotonic() + self.deadline * 2  # a wedged core gets until then to come back
        while len(self.answering()) < len(self.cores) and time.monotonic() < end:
            time.sleep(0.2)
        self.report.unhealthy_cores = [c.core for c in self.cores if not c.healthy(2.0)]
        self.verify()
        try:
            self.report.recoveries_after = self.recoveries()
            st = self.unary((self.answering() or self.cores)[0], "Machine", "GetStats",
                            mpb.StatsRequest(check_heap=True))
            self.report.heap_problems = list(st.heap_problems)
        except grpc.RpcError as e:
            self.report.heap_problems = [f"GetStats(check_heap) failed: {e.code().name} {e.details()}"]
        self.report.elapsed_s = round(time.monotonic() - self.t0, 1)
        self.report.histogram = {s: {m: dict(c) for m, c in ms.items()} for s, ms in self.hist.items()}
        self.report.op_histogram = {s: {m: dict(c) for m, c in ms.items()} for s, ms in self.op_hist.items()}
        return self.report

    def close(self) -> None:
        for c in getattr(self, "cores", []):
            c.close()


STATUS_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


def grpc_code_name(code: int) -> str:
    return STATUS_NAMES.get(code, f"CODE_{code}")


def run_campaign(seed: int = 1, calls: int = 10_000, target: str | None = None, deadline: float = 5.0,
                 max_seconds: float = 1800.0, services: tuple[str, ...] = tuple(SERVICES),
                 server: dict | None = None, verbose_index: tuple[str, int] | None = None,
                 log: Callable[[str], None] = print, release_after: bool = True,
                 skip_defects: frozenset[int] = frozenset(), check_every: int = 0, check_from: int = 0) -> Report:
    """Run a campaign against `target`, or against a server it starts (LocalServer(**server)) and stops."""
    srv = None
    if target is None:
        kw = {"cores": 2, "memory": "64MiB", "extra": list(SERVER_EXTRA), **(server or {})}
        srv = LocalServer(**kw).start()
        target = srv.target
    campaign = Campaign(target, seed=seed, calls=calls, deadline=deadline, max_seconds=max_seconds,
                        services=services, verbose_index=verbose_index, log=log, skip_defects=skip_defects,
                        check_every=check_every, check_from=check_from)
    try:
        campaign.connect()
        pids_before = sorted(srv.alive_workers()) if srv else []
        rss_before = [rss_kib(p) for p in pids_before]
        report = campaign.run()
        report.workers_before = pids_before
        report.workers_after = sorted(srv.alive_workers()) if srv else []
        report.worker_rss_kib_before, report.worker_rss_kib_after = rss_before, [rss_kib(p) for p in pids_before]
        if srv is None and release_after:
            campaign.release()
        return report
    finally:
        campaign.close()
        if srv is not None:
            code = srv.stop()
            if code != 0:
                log(f"the server exited with {code}:\n" + "".join(srv.output[-40:]))


def rss_kib(pid: int) -> int:
    """A process's own resident memory (RssAnon: not the machine's shared segments it maps)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("RssAnon:")), 0)
    except OSError:
        return 0


def iter_rows(report: Report) -> Iterator[tuple[str, str, dict[str, int]]]:
    for service, methods in report.histogram.items():
        for method in sorted(methods):
            yield service, method, methods[method]
        for method in sorted(report.op_histogram.get(service, {})):
            yield service, f"{method} (per op)", report.op_histogram[service][method]


def print_report(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    codes = sorted({c for _, _, h in iter_rows(report) for c in h}, key=lambda c: (c != "OK", c))
    table = Table(title=f"memsim fuzz: seed {report.seed}, {report.calls_per_service} calls per service, "
                        f"{report.elapsed_s} s")
    table.add_column("service")
    table.add_column("method")
    for c in codes:
        table.add_column(c, justify="right", style="bold red" if c in BAD_CODES else None)
    last = None
    for service, method, h in iter_rows(report):
        if last is not None and service != last:
            table.add_section()
        table.add_row(service if service != last else "", method, *[str(h.get(c, "")) for c in codes])
        last = service
    console.print(table)
    totals = Table(title="per service")
    for col in ("service", "calls", *codes):
        totals.add_column(col, justify="right" if col != "service" else "left")
    for service, methods in report.histogram.items():
        agg: Counter = Counter()
        for h in methods.values():
            agg.update(h)
        totals.add_row(service, str(sum(agg.values())), *[str(agg.get(c, "")) for c in codes])
    console.print(totals)
    heap = "clean" if not report.heap_problems else report.heap_problems
    console.print(f"stamps: {report.stamps}; heap check: {heap}"
                  f"; workers {report.workers_before} -> {report.workers_after}; recoveries "
                  f"{report.recoveries_before} -> {report.recoveries_after}; worker RssAnon KiB "
                  f"{report.worker_rss_kib_before} -> {report.worker_rss_kib_after}; redrawn to spare stamps: "
                  f"{report.skipped_harmful}; left out as known wedges: {report.skipped_known}")
    if report.finding_counts:
        ft = Table(title="INTERNAL / UNKNOWN, by kind")
        for col in ("origin", "service.method", "code", "count", "defect", "first message", "first call"):
            ft.add_column(col)
        firsts: dict[str, Finding] = {}
        for f in report.findings:
            firsts.setdefault(f.kind, f)
        for kind, n in sorted(report.finding_counts.items(), key=lambda kv: -kv[1]):
            origin, service, method, code, _ = kind.split("|", 4)
            f = firsts[kind]
            ft.add_row(origin, f"{service}.{method}", code, str(n), "#" + f.known if f.known else "NEW",
                       f.message[:100], str(f.index))
        console.print(ft)
    v = report.violations()
    console.print("[bold green]all invariants hold[/]" if not v else "[bold red]violations:[/]\n  " + "\n  ".join(v))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=10_000, help="calls per service (default 10000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--target", help="a running server's HOST:PORT (default: start one, and stop it after)")
    p.add_argument("--deadline", type=float, default=5.0, help="seconds each call may take (default 5)")
    p.add_argument("--max-seconds", type=float, default=1800.0, help="bound on the whole run (default 1800)")
    p.add_argument("--services", default=",".join(SERVICES), help=f"comma-separated subset of {', '.join(SERVICES)}")
    p.add_argument("--replay", metavar="SERVICE:INDEX",
                   help="rerun the same calls (all services, interleaved as in the run) up to this one and print its "
                        "request and reply; SERVICE * prints every service's call INDEX")
    p.add_argument("--skip-defect", default="", metavar="N,...",
                   help=f"leave out inputs known to wedge a core until these are fixed: {WEDGES}")
    p.add_argument("--check-every", type=int, default=0, metavar="N",
                   help="also read the stamps back every N calls per service, to find the call that damaged one")
    p.add_argument("--check-from", type=int, default=0, metavar="I", help="with --check-every: only from call I on")
    p.add_argument("--json", help="write the report as JSON to this file")
    args = p.parse_args(argv)
    # SIGTERM (a CI timeout, a kill) unwinds like ^C, so the server this run started is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        skip = frozenset(int(n) for n in args.skip_defect.split(",") if n)
    except ValueError:
        p.error(f"--skip-defect takes numbers, e.g. 5,7 ({WEDGES})")
    services = tuple(s for s in args.services.split(",") if s)
    unknown = [s for s in services if s not in SERVICES]
    if unknown or args.calls < 1 or args.deadline <= 0 or args.max_seconds <= 0:
        p.error(f"unknown service {unknown}" if unknown else "--calls, --deadline and --max-seconds must be positive")
    verbose = None
    if args.replay:
        service, _, index = args.replay.partition(":")
        if service not in (*SERVICES, "*") or not index.isdigit():
            p.error(f"--replay takes SERVICE:INDEX with SERVICE one of {', '.join(SERVICES)} or *")
        verbose, args.calls = (service, int(index)), int(index) + 1
    report = run_campaign(seed=args.seed, calls=args.calls, target=args.target, deadline=args.deadline,
                          max_seconds=args.max_seconds, services=services, verbose_index=verbose, skip_defects=skip,
                          check_every=args.check_every, check_from=args.check_from)
    print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_json(), f, indent=1)
    return 1 if report.violations() else 0


if __name__ == "__main__":
    sys.exit(main())
