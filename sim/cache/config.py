"""CONFIG GET/SET for the cache's memory settings: Redis's names and value syntax over ks_config.

The settings live in the keyspace's shared `ks_config` row (keyspace.CONFIG_FIELDS), so a
CONFIG SET on one core is what every core reads on its next command. This module only
translates: Redis's parameter names, its memory units (memtoull: "100mb", "1gb", "1k" =
1000, "1kb" = 1024), and the policy names, to the integer fields and back.

maxmemory-policy takes Redis's eight names and memsim's exact and modern policies, which
are kept by `sim/policies` (see `exact.py`); their ids follow Redis's, so a per-policy
eviction counter is one column of `ks_evicted`.
"""

from __future__ import annotations

import re

from memsim.sim.cache.evict import POLICY_IDS as REDIS_POLICY_IDS
from memsim.sim.cache.exact import EXACT_IDS
from memsim.sim.cache.keyspace import CONFIG_RANGES, Keyspace, string2ll
from memsim.sim.errors import InvalidArgument

# memsim's policies beside Redis's: maxmemory-policy name -> sim/policies registry name
EXACT_POLICIES = {"exact-lru": "lru", "exact-lfu": "lfu", "fifo": "fifo", "clock": "clock", "twolist": "twolist",
                  "sieve": "sieve", "s3fifo": "s3fifo"}
POLICY_IDS: dict[str, int] = dict(REDIS_POLICY_IDS)
POLICY_IDS.update({name: 8 + i for i, name in enumerate(EXACT_POLICIES)})
POLICY_NAMES = {v: k for k, v in POLICY_IDS.items()}
NPOLICIES = len(POLICY_IDS)
assert {POLICY_IDS[n]: impl for n, impl in EXACT_POLICIES.items()} == EXACT_IDS, "exact.py and this table disagree"
assert CONFIG_RANGES["policy"] == (0, NPOLICIES - 1)

# Redis parameter -> ks_config field
PARAMS = {"maxmemory": "maxmemory", "maxmemory-policy": "policy", "maxmemory-samples": "samples",
          "lfu-log-factor": "lfu_log_factor", "lfu-decay-time": "lfu_decay_time",
          "maxmemory-eviction-tenacity": "tenacity", "active-expire-effort": "expire_effort"}

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
_MEMORY = re.compile(r"([0-9]+)([a-z]*)")
MAX_U64_DIGITS = 20  # 18446744073709551615: memtoull's strtoull refuses more (ERANGE)


def parse_memory(text: str) -> int:
    """Redis's memtoull(): digits and an optional unit, case-insensitive, the digits an unsigned
    64-bit number (looked at by length first: no parse costs more than 20 digits)."""
    m = _MEMORY.fullmatch(text.strip().lower())
    if not m or m.group(2) not in _UNITS or len(m.group(1)) > MAX_U64_DIGITS or int(m.group(1)) >= 1 << 64:
        shown = text if len(text) <= 40 else f"{text[:40]}... ({len(text)} characters)"
        raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument 'maxmemory') - "
                              f"argument must be a memory value, got '{shown}'")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_config(param: str, value: bytes) -> tuple[str, int]:
    """(ks_config field, value) for CONFIG SET param value; INVALID_ARGUMENT with Redis's text if bad."""
    field = PARAMS.get(param)
    if field is None:
        raise InvalidArgument(f"ERR Unknown option or number of arguments for CONFIG SET - '{param}'")
    text = value.decode("utf-8", "replace")
    if field == "maxmemory":
        return field, parse_memory(text)
    if field == "policy":
        if text.lower() not in POLICY_IDS:
            raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - "
                                  f"argument(s) must be one of the following: {', '.join(POLICY_IDS)}")
        return field, POLICY_IDS[text.lower()]
    n = string2ll(value)  # Redis's numeric configs parse with string2ll too
    if n is None:
        raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument '{param}') - "
                              f"argument couldn't be parsed into an integer")
    return field, n


def config_items(ks: Keyspace) -> list[tuple[str, str]]:
    """Every parameter with its current value, as CONFIG GET prints it."""
    cfg = ks.config
    out = []
    for param, field in PARAMS.items():
        v = getattr(cfg, field)
        out.append((param, POLICY_NAMES[v] if field == "policy" else str(v)))
    return out
