"""The cache's configuration, as Redis's src/config.c: the parameter table, the policy names, CONFIG SET/GET.

Owns: `CONFIG_PARAMS` (every parameter: Redis's name, its ks_config cell, default and range) and
`POLICY_IDS` (every maxmemory-policy name and its id), which CONFIG SET, the machine's defaults
(`MachineConfig`, sim/system.py) and the `memsim serve` flags all read; and the ks_config cells,
written by CONFIG SET from any core (one store each, no lock: a core reads them on its next
command). A policy switch holds every stripe lock and `keyspace/policy` (exact.py).

Parameters: Redis's names and value syntax (memtoull's memory units: "100mb", "1gb", "1k" = 1000,
"1kb" = 1024; string2ll for the numbers). maxmemory-policy takes Redis's eight names
(noeviction, allkeys-*, volatile-*) and every policy of the `sim/policies` registry, looked up
when asked, so a policy registered before the machine is created is a maxmemory-policy too:
`exact-lru` and `exact-lfu` for the registry's `lru` and `lfu` (Redis's own LRU and LFU are
the sampled ones), the registry's name for the others (`fifo`, `clock`, `twolist`, `sieve`,
`s3fifo`, ...). Ids: Redis's 0-7, then exact.py's (8 + the policy's place in exact.py's `BUILTIN_ORDER`, then
in the order of registration);
an id is also the column of its evicted-keys counter.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from memsim.sim.alloc.sizeclasses import PAGE_SIZE
from memsim.sim.cache.evict import (
    DEFAULT_LFU_DECAY_TIME,
    DEFAULT_LFU_LOG_FACTOR,
    DEFAULT_SAMPLES,
    NOEVICTION,
    REDIS_POLICIES,
)
from memsim.sim.cache.exact import FIRST_EXACT_ID, ExactPolicies, registered_policies
from memsim.sim.cache.glob import MAX_PATTERN_BYTES, compile_glob
from memsim.sim.cache.layout import (
    C_EXPIRE_EFFORT,
    C_LFU_DECAY_TIME,
    C_LFU_LOG_FACTOR,
    C_MAXMEMORY,
    C_POLICY,
    C_SAMPLES,
    C_TENACITY,
    CacheConfig,
)
from memsim.sim.cache.stats import Stats
from memsim.sim.cache.util import string2ll
from memsim.sim.errors import InvalidArgument

# -- maxmemory-policy names ---------------------------------------------------------------------

# Registered policies whose name would read as one of Redis's sampled policies get this prefix.
_PREFIXED = {"lru", "lfu"}


def maxmemory_name(registered: str) -> str:
    """The maxmemory-policy name of a `sim/policies` registry name."""
    return f"exact-{registered}" if registered in _PREFIXED or registered in REDIS_POLICIES else registered


@functools.lru_cache(maxsize=8)
def _policy_table(registered: tuple[str, ...]) -> dict[str, int]:
    table = dict(REDIS_POLICIES)
    for i, name in enumerate(registered):
        table[maxmemory_name(name)] = FIRST_EXACT_ID + i
    return table


@functools.lru_cache(maxsize=8)
def _name_table(registered: tuple[str, ...]) -> dict[int, str]:
    return {i: name for name, i in _policy_table(registered).items()}


class _PolicyIds(Mapping[str, int]):
    """maxmemory-policy name -> id: Redis's eight, then the registry's (exact.py's order), built
    once per state of the registry."""

    def _table(self) -> dict[str, int]:
        return _policy_table(registered_policies())

    def __getitem__(self, name: str) -> int:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


class _PolicyNames(Mapping[int, str]):
    """id -> maxmemory-policy name (POLICY_IDS turned round)."""

    def __getitem__(self, pid: int) -> str:
        return _name_table(registered_policies())[pid]

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(POLICY_IDS)))

    def __len__(self) -> int:
        return len(POLICY_IDS)


POLICY_IDS: Mapping[str, int] = _PolicyIds()
POLICY_NAMES: Mapping[int, str] = _PolicyNames()


def maxmemory_policies() -> list[str]:
    """Every maxmemory-policy name, in id order (what `memsim serve --maxmemory-policy` offers)."""
    return list(POLICY_IDS)


# -- the parameter table ------------------------------------------------------------------------

MEMORY, POLICY, NUMBER = "memory", "policy", "number"  # how a value is written


@dataclass(frozen=True)
class ConfigParam:
    name: str  # Redis's parameter name
    field: str  # CacheConfig's attribute, and the name Keyspace.config_set takes
    cell: int  # its ks_config cell (layout.py)
    default: int
    lo: int
    hi: int  # for maxmemory-policy: the last id, known when asked (bounds())
    kind: str

    def bounds(self) -> tuple[int, int]:
        return (self.lo, len(POLICY_IDS) - 1) if self.kind == POLICY else (self.lo, self.hi)

    @property
    def default_text(self) -> str:
        """The default as CONFIG GET prints it (and `memsim serve` takes it)."""
        return POLICY_NAMES[self.default] if self.kind == POLICY else str(self.default)


CONFIG_PARAMS: tuple[ConfigParam, ...] = (
    ConfigParam("maxmemory", "maxmemory", C_MAXMEMORY, 0, 0, 1 << 62, MEMORY),
    ConfigParam("maxmemory-policy", "policy", C_POLICY, NOEVICTION, 0, -1, POLICY),
    ConfigParam("maxmemory-samples", "samples", C_SAMPLES, DEFAULT_SAMPLES, 1, 64, NUMBER),
    ConfigParam("lfu-log-factor", "lfu_log_factor", C_LFU_LOG_FACTOR, DEFAULT_LFU_LOG_FACTOR, 0, 1 << 31, NUMBER),
    ConfigParam("lfu-decay-time", "lfu_decay_time", C_LFU_DECAY_TIME, DEFAULT_LFU_DECAY_TIME, 0, 1 << 31, NUMBER),
    ConfigParam("maxmemory-eviction-tenacity", "tenacity", C_TENACITY, 10, 0, 100, NUMBER),
    ConfigParam("active-expire-effort", "expire_effort", C_EXPIRE_EFFORT, 1, 1, 10, NUMBER),
)
BY_NAME = {p.name: p for p in CONFIG_PARAMS}
BY_FIELD = {p.field: p for p in CONFIG_PARAMS}
assert list(CacheConfig.__dataclass_fields__) == [p.field for p in sorted(CONFIG_PARAMS, key=lambda p: p.cell)]

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
    """(field, value) for CONFIG SET param value; INVALID_ARGUMENT with Redis's text if bad."""
    p = BY_NAME.get(param)
    if p is None:
        raise InvalidArgument(f"ERR Unknown option or number of arguments for CONFIG SET - '{param}'")
    text = value.decode("utf-8", "replace")
    if p.kind == MEMORY:
        return p.field, parse_memory(text)
    if p.kind == POLICY:
        if text.lower() not in POLICY_IDS:
            raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - "
                                  f"argument(s) must be one of the following: {', '.join(POLICY_IDS)}")
        return p.field, POLICY_IDS[text.lower()]
    n = string2ll(value)  # Redis's numeric configs parse with string2ll too
    if n is None:
        raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument '{param}') - "
                              f"argument couldn't be parsed into an integer")
    return p.field, n


def maxmemory_over_heap(value: int, heap_bytes: int) -> str | None:
    """Why `value` cannot be the cache's maxmemory on a heap of `heap_bytes`, or None if it can.
    The one rule for CONFIG SET and for a machine's configuration at start.

    Redis takes any value and lets the OS's OOM killer decide; this machine's memory is known,
    and a limit above it would only make writes fail with the allocator's error, evicting nothing.
    """
    if value > heap_bytes:
        return f"{value} bytes is more than this machine's heap of {heap_bytes} bytes"
    return None


class Config(Stats):
    """CONFIG GET/SET/RESETSTAT over ks_config (RESETSTAT zeroes stats.py's counters, as Redis's
    configResetStatCommand calls resetServerStats)."""

    @property
    def config(self) -> CacheConfig:
        return CacheConfig.read(self.a.ks_config)

    def config_items(self) -> list[tuple[str, str]]:
        """Every parameter with its current value, as CONFIG GET prints it."""
        cfg = self.config
        return [(p.name, POLICY_NAMES[cfg.policy] if p.kind == POLICY else str(getattr(cfg, p.field)))
                for p in CONFIG_PARAMS]

    def config_get(self, patterns: list[bytes]) -> list[bytes]:
        """CONFIG GET pattern...: name, value, ... for every parameter some pattern matches, once each."""
        patterns = list(dict.fromkeys(patterns))
        total = sum(len(x) for x in patterns)
        if total > MAX_PATTERN_BYTES:  # compiling costs about 1 us a byte: held to one pattern's limit
            raise InvalidArgument(f"ERR CONFIG GET patterns of {total} bytes in all, over the {MAX_PATTERN_BYTES}-byte "
                                  f"limit")
        out: list[bytes] = []
        for arg in patterns:
            pattern = compile_glob(arg, nocase=True)  # Redis: stringmatch(pattern, name, 1)
            for name, value in self.config_items():
                if pattern.matches(name.encode()) and name.encode() not in out[::2]:
                    out += [name.encode(), value.encode()]
        return out

    def config_set_pairs(self, pairs: list[tuple[str, bytes]]) -> None:
        """CONFIG SET param value ...: all or nothing, as Redis 7's (every value parsed and checked first;
        a parameter given twice refused)."""
        parsed = [parse_config(name, value) for name, value in pairs]
        seen: set[str] = set()
        for (param, _), (field, _) in zip(pairs, parsed, strict=True):
            if field in seen:
                raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument '{param}') - "
                                      f"duplicate parameter")
            seen.add(field)
        for field, n in parsed:
            self.config_check(field, n)
        for field, n in parsed:
            self.config_set(field, n)

    def config_check(self, name: str, value: int) -> None:
        """What config_set would refuse, refused without changing anything (CONFIG SET of several
        parameters checks them all first: all or nothing, as Redis 7's)."""
        p = BY_FIELD.get(name)
        if p is None:
            raise InvalidArgument(f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'")
        lo, hi = p.bounds()
        if not isinstance(value, int) or not lo <= value <= hi:
            raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument '{p.name}') - "
                                  f"argument must be between {lo} and {hi} inclusive")
        if p.kind == POLICY and value >= self.a.ks_evicted.shape[1]:
            raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - "
                                  f"{POLICY_NAMES[value]} was registered after this cache was laid out "
                                  f"(register a policy before Machine.create)")
        too_big = maxmemory_over_heap(value, self.heap.mheap.total_pages * PAGE_SIZE) if p.kind == MEMORY else None
        if too_big:
            raise InvalidArgument(f"ERR CONFIG SET failed (possibly related to argument 'maxmemory') - {too_big}")

    def config_set(self, name: str, value: int) -> None:
        self.config_check(name, value)
        if name == "policy":
            self.set_policy(value)
        else:
            self.a.ks_config[BY_FIELD[name].cell] = value
        if name in ("maxmemory", "policy") and self.evictor is not None:
            self.evictor.shrink_to_limit()

    def set_policy(self, pid: int) -> None:
        """Switch maxmemory-policy with every stripe lock held, so that no command sees a half-built
        registered policy: one is laid out holding every live key, oldest 24-bit field first."""
        a = self.a
        with self.all_stripes() as held:
            held.enter_context(self.exact.locked())
            if pid < FIRST_EXACT_ID:
                self.exact.lay_out(pid, [])  # none: the registered policy's state is simply no longer used
            elif pid != self.exact.active:
                live = np.flatnonzero(a.e_klen > 0)
                self.exact.lay_out(pid, live[np.argsort(a.e_lru[live], kind="stable")].tolist())
            a.ks_config[C_POLICY] = pid


def boot_config(cells: np.ndarray, policies: ExactPolicies, maxmemory: int, policy: str) -> None:
    """The configuration at start, before any core runs (so without locks): every default, then the
    machine's maxmemory and maxmemory-policy (a registered one laid out empty)."""
    for p in CONFIG_PARAMS:
        cells[p.cell] = p.default
    cells[C_MAXMEMORY] = maxmemory
    pid = POLICY_IDS[policy]
    policies.lay_out(pid, [])
    cells[C_POLICY] = pid
