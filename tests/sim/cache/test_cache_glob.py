"""Glob matching (sim/cache/glob.py) against Redis's own stringmatchlen, and against fnmatch.

`redis_stringmatchlen` below is a line-by-line transcription of Redis 7's stringmatchlen_impl
(src/util.c), reading past the end of the pattern as C reads the NUL after an sds string and
comparing ranges as signed chars (x86-64): the reference for every syntax, on short inputs.
For ordinary patterns (no '^', no backslash, closed brackets) fnmatch is a second, independent
oracle.
"""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.sim.cache.commands import Commands
from memsim.sim.cache.glob import MAX_PATTERN_BYTES, MatchBudget, MatchBudgetSpent, compile_glob
from memsim.sim.errors import InvalidArgument, ResourceExhausted


def redis_stringmatchlen(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    skip = [False]

    def at(b: bytes, i: int) -> int:
        v = b[i] if i < len(b) else 0
        return v - 256 if v >= 128 else v  # char is signed

    def low(c: int) -> int:
        return c + 32 if 65 <= c <= 90 else c

    def impl(p: int, plen: int, s: int, slen: int, nesting: int) -> bool:
        if nesting > 1000:
            return False
        while plen and slen:
            c = at(pattern, p)
            if c == ord("*"):
                while plen and at(pattern, p + 1) == ord("*"):
                    p += 1
                    plen -= 1
                if plen == 1:
                    return True
                while slen:
                    if impl(p + 1, plen - 1, s, slen, nesting + 1):
                        return True
                    if skip[0]:
                        return False
                    s += 1
                    slen -= 1
                skip[0] = True
                return False
            elif c == ord("?"):
                s += 1
                slen -= 1
            elif c == ord("["):
                p += 1
                plen -= 1
                neg = at(pattern, p) == ord("^")
                if neg:
                    p += 1
                    plen -= 1
                match = False
                while True:
                    if at(pattern, p) == ord("\\") and plen >= 2:
                        p += 1
                        plen -= 1
                        if at(pattern, p) == at(string, s):
                            match = True
                    elif at(pattern, p) == ord("]"):
                        break
                    elif plen == 0:
                        p -= 1
                        plen += 1
                        break
                    elif plen >= 3 and at(pattern, p + 1) == ord("-"):
                        start, end, ch = at(pattern, p), at(pattern, p + 2), at(string, s)
                        if start > end:
                            start, end = end, start
                        if nocase:
                            start, end, ch = low(start), low(end), low(ch)
                        p += 2
                        plen -= 2
                        if start <= ch <= end:
                            match = True
                    elif (low(at(pattern, p)) == low(at(string, s))) if nocase else \
                            at(pattern, p) == at(string, s):
                        match = True
                    p += 1
                    plen -= 1
                if neg:
                    match = not match
                if not match:
                    return False
                s += 1
                slen -= 1
            else:
                if c == ord("\\") and plen >= 2:
                    p += 1
                    plen -= 1
                a, b = at(pattern, p), at(string, s)
                if (low(a) != low(b)) if nocase else a != b:
                    return False
                s += 1
                slen -= 1
            p += 1
            plen -= 1
            if slen == 0:
                while at(pattern, p) == ord("*") and plen:
                    p += 1
                    plen -= 1
                break
        return plen == 0 and slen == 0

    return impl(0, len(pattern), 0, len(string), 0)


def matches(pattern: bytes, key: bytes, nocase: bool = False) -> bool:
    return compile_glob(pattern, nocase).matches(key)


PATTERN_BYTES = st.sampled_from(list(b"ab*?[]^-\\A\xe9\xff"))
KEY_BYTES = st.sampled_from(list(b"abA-]^\\*?\xe9\xff\x00"))


@settings(max_examples=3000, deadline=None)
@given(st.lists(PATTERN_BYTES, max_size=10).map(bytes), st.lists(KEY_BYTES, max_size=9).map(bytes),
       st.booleans())
def test_agrees_with_redis_stringmatchlen_on_any_syntax(pattern, key, nocase):
    assert matches(pattern, key, nocase) == redis_stringmatchlen(pattern, key, nocase), (pattern, key, nocase)


ORDINARY = st.one_of(st.sampled_from(["a", "b", "c", "*", "?", "[ab]", "[a-c]", "[b-b]", "x"]))


@settings(max_examples=2000, deadline=None)
@given(st.lists(ORDINARY, max_size=8).map("".join), st.text("abcx", min_size=1, max_size=10))
def test_agrees_with_fnmatch_on_ordinary_patterns(pattern, key):
    assert matches(pattern.encode(), key.encode()) == fnmatch.fnmatchcase(key, pattern), (pattern, key)


@pytest.mark.parametrize("pattern, key, expected", [
    (b"h?llo", b"hello", True), (b"h*llo", b"heeeello", True), (b"h[ae]llo", b"hallo", True),
    (b"h[^e]llo", b"hello", False), (b"h[^e]llo", b"hallo", True), (b"h[a-b]llo", b"hbllo", True),
    (b"[z-a]", b"m", True), (b"[b-a]", b"a", True), (b"[b-a]", b"c", False),  # Redis swaps a reversed range
    (b"\\*", b"*", True), (b"\\*", b"a", False), (b"[\\]]", b"]", True), (b"a\\", b"a\\", True),
    (b"[abc", b"c", True), (b"[", b"[", False), (b"[^", b"x", True), (b"[]", b"]", False),
    (b"[a-]", b"^", True), (b"*", b"", False), (b"", b"", True), (b"**a**", b"xa", True),
    (b"[a-\xff]", b"0", True), (b"[a-\xff]", b"b", False), (b"[a-\xff]", b"\xff", True),  # signed char
    (b"*a" * 1000, b"a" * 1000, True), (b"*a" * 1001, b"a" * 1001, False),  # Redis's nesting limit
    (b"*a" * 1001 + b"*", b"a" * 1001 + b"b", False), (b"*a" * 1000 + b"*", b"a" * 1000 + b"b", True),
])
def test_known_redis_answers(pattern, key, expected):
    assert matches(pattern, key) is expected


def test_nocase_is_config_gets_matching():
    assert matches(b"MAXMEMORY*", b"maxmemory-policy", nocase=True)
    assert matches(b"[L-M]*", b"maxmemory", nocase=True) and not matches(b"[L-M]*", b"maxmemory")
    assert not matches(b"[\\M]*", b"maxmemory", nocase=True)  # an escaped byte is compared as is


def test_pathological_patterns_cost_what_the_key_and_pattern_do():
    key = b"a" * 16_384
    assert not matches(b"*?*?*?*?*?*?*?b", key)
    assert not matches(b"*a" * 500 + b"b", key)
    assert not matches(b"*" + b"?" * 1000 + b"b*", key)
    assert matches(b"*?*?*?*?*?*?*?a", key)


def test_a_pattern_over_the_limit_is_invalid_argument():
    compile_glob(b"*" * MAX_PATTERN_BYTES)
    with pytest.raises(InvalidArgument, match="longer than"):
        compile_glob(b"*" * (MAX_PATTERN_BYTES + 1))


# -- the match-work budget (KEYS and SCAN): a command's matching is bounded, its answers unchanged --

PATHOLOGICAL = b"*" + b"[ab]" * 400 + b"c*"  # a long run of classes the key nearly matches everywhere


@settings(max_examples=1500, deadline=None)
@given(st.lists(PATTERN_BYTES, max_size=10).map(bytes), st.lists(KEY_BYTES, max_size=9).map(bytes),
       st.booleans(), st.integers(1, 6))
def test_a_budgeted_match_gives_redis_answer_whatever_its_search_window(pattern, key, nocase, window):
    budget = MatchBudget(10**9, window=window)  # searched a few starts at a time
    got = compile_glob(pattern, nocase).matches(key, budget)
    assert got == redis_stringmatchlen(pattern, key, nocase), (pattern, key, nocase, window)


def test_a_match_over_its_budget_stops_before_the_work_is_done():
    glob = compile_glob(PATHOLOGICAL)
    budget = MatchBudget(100_000)
    with pytest.raises(MatchBudgetSpent):
        glob.matches(b"a" * 100_000, budget)  # 100,000 starts x 400 tests: 40 million
    assert budget.spent and 0 <= budget.left < 100_000
    assert compile_glob(b"*abc*").matches(b"x" * 1000 + b"abc", MatchBudget(2000))  # a literal costs its span


def commands(machine) -> Commands:
    return Commands(machine.keyspace(machine.heap(0)))


def full_scan(cmds: Commands, *opts: bytes) -> tuple[list[bytes], int]:
    """Every key a SCAN iteration returns, and the number of calls it took."""
    cursor, out, calls = b"0", [], 0
    while True:
        cursor, keys = cmds.execute([b"SCAN", cursor, *opts])
        out += keys
        calls += 1
        if cursor == b"0":
            return out, calls


def test_scan_cut_short_by_its_match_budget_still_returns_every_key_once(machine):
    cmds = commands(machine)
    keys = [b"k%03d:" % i + b"a" * 40 for i in range(200)]
    for k in keys:
        cmds.execute([b"SET", k, b"v"])
    want = sorted(k for k in keys if k[3:4] == b"7")
    pattern = b"*" + b"[a-z0-9]" * 3 + b"7:*"  # about 40 x 5 tests a key that fails
    got, calls = full_scan(cmds, b"MATCH", pattern, b"COUNT", b"1000")
    assert sorted(got) == want and calls == 1  # the default budget covers this keyspace
    cmds.match_steps = 2000  # about ten keys' worth
    got, calls = full_scan(cmds, b"MATCH", pattern, b"COUNT", b"1000")
    assert calls > 10, "the budget did not cut the calls short"
    assert sorted(got) == want and len(got) == len(set(got))


def test_keys_over_its_match_budget_is_refused_naming_the_limit_and_scan(machine):
    cmds = commands(machine)
    for i in range(200):
        cmds.execute([b"SET", b"k%03d:" % i + b"a" * 40, b"v"])
    assert len(cmds.execute([b"KEYS", b"*" + b"[a-z0-9]" * 3 + b"7:*"])) == 20
    cmds.match_steps = 2000
    with pytest.raises(ResourceExhausted, match=r"2000-step.*use SCAN"):
        cmds.execute([b"KEYS", b"*" + b"[a-z0-9]" * 3 + b"7:*"])
    assert len(cmds.execute([b"KEYS", b"*"])) == 200  # no pattern, no matching


def test_scan_of_a_key_no_whole_budget_can_match_is_refused(machine):
    cmds = commands(machine)
    cmds.execute([b"SET", b"a" * 100_000, b"v"])
    cmds.match_steps = 1_000_000
    with pytest.raises(ResourceExhausted, match="1000000-step"):
        cmds.execute([b"SCAN", b"0", b"MATCH", PATHOLOGICAL, b"COUNT", b"1"])
    assert full_scan(cmds, b"MATCH", b"a*") == ([b"a" * 100_000], 1)


def test_scan_stops_at_the_reply_limit_whatever_its_count(machine):
    cmds = commands(machine)
    keys = [b"key:%04d" % i for i in range(300)]
    for k in keys:
        cmds.execute([b"SET", k, b"v"])
    cmds.keys_reply_bytes = 1000  # 300 keys of 8 bytes are 2,400
    cursor, got = cmds.execute([b"SCAN", b"0", b"COUNT", b"9223372036854775807"])
    assert cursor != b"0" and 0 < sum(len(k) for k in got) <= 1000
    got, calls = full_scan(cmds, b"COUNT", b"9223372036854775807")
    assert sorted(got) == keys and calls >= 3


def test_commands_of_one_pipeline_message_share_one_match_budget(machine):
    cmds = commands(machine)
    for i in range(200):
        cmds.execute([b"SET", b"k%03d:" % i + b"a" * 40, b"v"])
    scan = [b"SCAN", b"0", b"MATCH", b"*" + b"[a-z0-9]" * 3 + b"7:*", b"COUNT", b"1000"]
    with cmds.match_batch(60_000):  # one whole SCAN takes about 48,000
        assert cmds.execute(scan)[0] == b"0"
        cursor, _ = cmds.execute(scan)
        assert cursor != b"0"  # cut short by what the message has left
        with pytest.raises(ResourceExhausted, match="pipeline message, 0 left"):
            cmds.execute(scan)
        with pytest.raises(ResourceExhausted, match="pipeline message"):
            cmds.execute([b"KEYS", scan[3]])
    assert cmds.execute(scan)[0] == b"0" and cmds.batch_match is None  # the next message starts afresh
