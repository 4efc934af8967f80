"""Every command of sim/cache/commands.py with hostile arguments: each answers a reply or Redis's error
(a SimError with its status), never an exception its handler did not expect (CommandFailed), and the
keyspace stays sound."""

from __future__ import annotations

import random

import grpc

from memsim.sim.alloc.recovery import check
from memsim.sim.cache.commands import COMMANDS, CommandFailed, Commands
from memsim.sim.errors import SimError

STATUS_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}
NASTY = [b"", b"0", b"-0", b"1", b"-1", b"01", b"+1", b" 1", b"1 ", b"1_0", b"1.5", b"nan", b"inf", b"1e3",
         b"9223372036854775807", b"9223372036854775808", b"-9223372036854775808", b"-9223372036854775809",
         b"18446744073709551616", b"9" * 5000, b"-" + b"9" * 5000, b"\xff\xfe", b"\x00", "١".encode(),
         b"*", b"?", b"[", b"[z-a]", b"[^", b"\\", b"*?*?*?*?*?*?*?b", b"[a-\xff]", b"k", b"key", b"n",
         b"NX", b"XX", b"GT", b"LT", b"EX", b"PX", b"EXAT", b"PXAT", b"KEEPTTL", b"GET", b"MATCH", b"COUNT",
         b"TYPE", b"string", b"hash", b"GET", b"SET", b"RESETSTAT", b"FREQ", b"IDLETIME", b"maxmemory",
         b"maxmemory-policy", b"allkeys-lfu", b"lfu-log-factor", b"1mb", b"9" * 30 + b"gb", b"ASYNC", b"SYNC",
         b"x" * 300]


def test_every_command_answers_hostile_arguments_with_a_reply_or_redis_error(machine):
    heap = machine.heap(0)
    ks = machine.keyspace(heap)
    cmds = Commands(ks, info=lambda sections: "# Server\r\n")
    rng = random.Random(8)
    names = sorted(COMMANDS)
    codes: dict[str, int] = {}
    for i in range(6000):
        if i % 500 == 0:
            for k in (b"k", b"key", b"n"):
                ks.set(k, rng.choice([b"5", b"9" * 40, b"\xff", b"-9223372036854775808"]))
        name = rng.choice(names).encode()
        args = [name.upper() if rng.random() < 0.5 else name] + [rng.choice(NASTY)
                                                                   for _ in range(rng.randint(0, 6))]
        try:
            cmds.execute(args)
            codes["OK"] = codes.get("OK", 0) + 1
        except CommandFailed as e:
            raise AssertionError(f"{args!r:.300}: unexpected {e}") from e
        except SimError as e:
            name = STATUS_NAMES[e.code]
            codes[name] = codes.get(name, 0) + 1
    assert set(codes) <= {"OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"}, codes
    assert codes["OK"] > 1000 and codes["INVALID_ARGUMENT"] > 1000
    cmds.execute([b"CONFIG", b"SET", b"maxmemory", b"0", b"maxmemory-policy", b"noeviction"])
    cmds.execute([b"FLUSHALL"])
    assert ks.dbsize() == 0 and ks.used_memory() == 0
    ks.release()
    heap.release_caches()
    assert check(heap) == []
