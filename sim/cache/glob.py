"""Redis's glob matching (src/util.c, stringmatchlen) for KEYS, SCAN MATCH and CONFIG GET.

The syntax is Redis's, quirks included, so that a pattern selects here what it selects there:

    *        any run of bytes (consecutive '*' are one)      ?       any one byte
    [abc]    one of a, b, c     [^a]  any byte but a         [a-z]   a range; [z-a] is the same range
    \\x      x itself (also inside [...])                     [       unclosed: the set runs to the end

Redis compares bytes as C's `char`, which is signed on x86-64, so a range that crosses 0x7f
([a-\\xff]) is the signed interval \\xff..a; a pattern never matches the empty string unless it
is empty itself; and a pattern that needs more than 1,000 non-final star groups never matches
(Redis's `nesting` guard against abusive patterns).

Cost. Redis 7's stringmatchlen_impl recurses at each '*' and tries every start for the rest;
its `skipLongerMatches` flag ends the search as soon as one star has tried every start and
failed, because a longer match for an earlier star can only start the rest later. So a star's
loop is entered at most once per match, and the first start where the text up to the next star
fits is the one that decides. That is what `GlobPattern.matches` does without recursion: the
pattern is split at its star groups into segments of fixed-length single-byte tests, each
compiled to a regular expression of fixed length (no '*', '+' or alternation: trying it at one
place costs at most its length and cannot backtrack), and each segment is searched once from
where the previous one ended. A match costs at most len(key) x len(pattern) byte tests, in C,
the bound Redis has too: the worst case is a long key that nearly matches a long run of
[classes] everywhere (a 1 MiB key and 1,000 of them: about 3 s; a 16 MiB key and a 64 KiB pattern:
minutes). The backtracking regex this replaced, `.*.` per `*?`, took minutes for
`*?*?*?*?*?*?*?b` on a 200-byte key.

Budget. Redis just runs that long (KEYS, SCAN MATCH block its one thread). Here a core's mutex is
held meanwhile, so KEYS and SCAN pass a `MatchBudget`: each search is cut into windows of start
positions, each window charged its worst case before sre runs it (starts x segment length; a
segment of literal bytes only starts + length, as sre's literal search is linear), the unused part
given back when it matches early. When a window would overrun the budget the match raises
`MatchBudgetSpent` instead: the command stops with no answer for that key (SCAN returns its cursor,
KEYS refuses). Ordinary keys and patterns cost a few steps a byte and never meet it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memsim.sim.errors import InvalidArgument

MAX_NESTING = 1000  # Redis: "if (nesting > 1000) return 0;"
# Redis has no limit; here a pattern is compiled to regexes (about 1 us a byte, so 64 KiB is ~60 ms
# before any budget applies), so a pattern is held to a size no real key pattern comes near. Its
# matching cost is bounded by MatchBudget, not by this.
MAX_PATTERN_BYTES = 64 << 10
# One command's matching (KEYS, or one SCAN call): 100 million byte tests, about 0.1 s of sre at
# ~1 ns a test (measured: a 4 MiB key against '*' + '[ab]' * 4000 + 'c*' is 16.8e9 tests in 18 s).
# That is a whole 16 MiB key against a segment of 6 classes, or ~1 million 30-byte keys against
# `*foo*`; what needs more is pathological, and holds the core's mutex no longer than this.
MATCH_STEPS = 100_000_000
# Steps one sre call may take (~1 ms): between calls the budget is checked, so a spent budget stops
# a match within this much work instead of at the end of a search that may run for minutes.
SEARCH_WINDOW = 1 << 20

ALL = (1 << 256) - 1  # a set of bytes as a 256-bit mask
_UPPER = sum(1 << c for c in range(ord("A"), ord("Z") + 1))
_STAR, _QUESTION, _OPEN, _CLOSE, _BACKSLASH, _CARET, _DASH = b"*?[]\\^-"


def _signed(c: int) -> int:
    """The byte as C's signed char (x86-64), which is what Redis's range test compares."""
    return c - 256 if c >= 128 else c


def _lower(c: int) -> int:
    """C's tolower() in the C locale: only A-Z change."""
    return c + 32 if ord("A") <= c <= ord("Z") else c


def _literal(c: int, nocase: bool) -> int:
    """The bytes equal to c (with nocase, whose tolower() equals c's)."""
    if nocase and (_lower(c) != c or ord("a") <= c <= ord("z")):
        return (1 << _lower(c)) | (1 << (_lower(c) - 32))
    return 1 << c


def _interval(lo: int, hi: int) -> int:
    """Bytes whose signed value lies in [lo, hi]."""
    mask = 0
    for a, b, shift in ((max(lo, 0), min(hi, 127), 0), (max(lo, -128), min(hi, -1), 256)):
        if a <= b:
            mask |= ((1 << (b + shift + 1)) - 1) ^ ((1 << (a + shift)) - 1)
    return mask


def _range(first: int, last: int, nocase: bool) -> int:
    lo, hi = sorted((_signed(first), _signed(last)))  # Redis swaps a reversed range
    if not nocase:
        return _interval(lo, hi)
    mask = _interval(_lower(lo), _lower(hi))  # lowered after the swap, as Redis does: [Z-a] is empty
    return (mask & ~_UPPER) | ((mask >> 32) & _UPPER)  # a byte is in if its tolower() is


def _bracket(p: bytes, i: int, nocase: bool) -> tuple[int, int]:
    """The set [...] starting at p[i] == '[', parsed exactly as Redis's loop walks it:
    (set of bytes, index of its last pattern byte)."""
    n = len(p)
    i += 1
    negate = i < n and p[i] == _CARET
    if negate:
        i += 1
    mask = 0
    while True:
        if i < n and p[i] == _BACKSLASH and n - i >= 2:
            i += 1
            mask |= 1 << p[i]  # Redis compares an escaped byte as is, even with nocase
        elif i < n and p[i] == _CLOSE:
            break
        elif i >= n:  # unclosed: the set ends with the pattern
            i -= 1
            break
        elif n - i >= 3 and p[i + 1] == _DASH:
            mask |= _range(p[i], p[i + 2], nocase)
            i += 2
        else:
            mask |= _literal(p[i], nocase)
        i += 1
    return (ALL & ~mask if negate else mask), i


def _tokens(p: bytes, nocase: bool) -> list[int | None]:
    """The pattern as a list of byte sets, one per byte of the key it consumes; None for a '*'."""
    out: list[int | None] = []
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == _STAR:
            out.append(None)
        elif c == _QUESTION:
            out.append(ALL)
        elif c == _OPEN:
            mask, i = _bracket(p, i, nocase)
            out.append(mask)
        else:
            if c == _BACKSLASH and n - i >= 2:
                i += 1
            out.append(_literal(p[i], nocase))
        i += 1
    return out


def _regex_class(mask: int) -> bytes:
    if mask == ALL:
        return rb"(?s:.)"  # sre skips a run of these by arithmetic: '?' * 1000 costs one step
    if mask == 0:
        return rb"(?!)"
    if mask & (mask - 1) == 0:
        return re.escape(bytes([mask.bit_length() - 1]))
    runs = bytearray(b"[")
    c = 0
    while c < 256:
        if mask >> c & 1:
            start = c
            while c < 256 and mask >> c & 1:
                c += 1
            runs += b"\\x%02x" % start if c - 1 == start else b"\\x%02x-\\x%02x" % (start, c - 1)
        else:
            c += 1
    return bytes(runs) + b"]"


class MatchBudgetSpent(Exception):
    """A match stopped because its command's MatchBudget ran out: that key's answer is unknown."""


class MatchBudget:
    """The byte tests one command may still spend matching keys (see the module doc)."""

    def __init__(self, steps: int = MATCH_STEPS, window: int = SEARCH_WINDOW):
        self.limit = steps
        self.left = steps
        self.window = window  # steps one sre call may take
        self.granted = steps  # `left` when last charged to a pipeline's budget (commands.py)
        self.spent = False

    def take(self, n: int) -> None:
        if n > self.left:
            self.spent = True
            raise MatchBudgetSpent(f"match budget of {self.limit} steps spent")
        self.left -= n


@dataclass(frozen=True)
class GlobPattern:
    """A compiled pattern: the segments between its star groups (the first one before any star,
    maybe empty; the last one empty if the pattern ends with a star)."""

    source: bytes
    segments: tuple[re.Pattern[bytes], ...]
    lengths: tuple[int, ...]
    literal: tuple[bool, ...]  # a segment of single bytes only: sre searches it in linear time

    @property
    def matches_all(self) -> bool:
        return self.lengths == (0, 0)  # "*": every (non-empty) key

    def matches(self, s: bytes, budget: MatchBudget | None = None) -> bool:
        """Redis's stringmatchlen(pattern, s): see the module doc for why this is the same answer.
        With a budget, raises MatchBudgetSpent rather than go past it."""
        size = len(s)
        if size == 0:
            return not self.source
        lens, segs = self.lengths, self.segments
        if size < sum(lens):
            return False  # every non-star byte of the pattern consumes one byte of the key
        last = len(segs) - 1
        head = lens[0]
        if budget is not None and head:
            budget.take(head)  # at one place: at most its length
        if last == 0:
            return head == size and segs[0].match(s) is not None
        if head and segs[0].match(s) is None:
            return False
        if head == size:
            return last == 1 and lens[1] == 0  # only stars left
        pos, k = head, 1  # at star group k, with bytes left
        while True:
            if k == last and lens[k] == 0:
                return True  # a final star takes the rest
            if k > MAX_NESTING:
                return False
            if k == last:  # the last segment must end the key
                start = size - lens[k]
                if budget is not None:
                    budget.take(lens[k])
                return start >= pos and segs[k].match(s, start) is not None
            m = segs[k].search(s, pos) if budget is None else self._search(k, s, pos, budget)
            if m is None:
                return False
            pos = m.end()
            if pos == size:
                return k + 1 == last and lens[last] == 0
            k += 1

    def _search(self, k: int, s: bytes, pos: int, budget: MatchBudget) -> re.Match[bytes] | None:
        """segments[k].search(s, pos), a window of start positions at a time, each charged first.
        endpos = last start + length tries exactly that window's starts, and the leftmost match is
        the one found: every earlier start was tried in an earlier window."""
        seg, n, literal = self.segments[k], max(self.lengths[k], 1), self.literal[k]
        last_start = len(s) - n
        span = last_start - pos + 1
        if span > 0 and (span + n if literal else span * n) <= min(budget.window, budget.left):
            m = seg.search(s, pos)  # the common case: the whole search is one window
            tried = span if m is None else m.start() - pos + 1
            budget.left -= (tried + n) if literal else tried * n
            return m
        while pos <= last_start:
            per_window = budget.window - n if literal else budget.window // n
            room = budget.left - n if literal else budget.left // n
            starts = min(last_start - pos + 1, max(1, per_window), room)
            cost = (starts + n) if literal else starts * n
            budget.take(cost if starts > 0 else budget.left + 1)  # not one start left: spent
            m = seg.search(s, pos, pos + starts - 1 + n)
            if m is not None:
                tried = m.start() - pos + 1
                budget.left += cost - ((tried + n) if literal else tried * n)  # the starts not tried
                return m
            pos += starts
        return None


def compile_glob(pattern: bytes, nocase: bool = False) -> GlobPattern:
    """Compile a Redis glob pattern; INVALID_ARGUMENT only if it is over MAX_PATTERN_BYTES."""
    pattern = bytes(pattern)
    if len(pattern) > MAX_PATTERN_BYTES:
        raise InvalidArgument(f"ERR pattern of {len(pattern)} bytes is longer than the {MAX_PATTERN_BYTES}-byte "
                              f"limit")
    groups: list[list[int]] = [[]]
    for t in _tokens(pattern, nocase):
        if t is None:
            if groups[-1] or len(groups) == 1:
                groups.append([])  # consecutive stars are one group
        else:
            groups[-1].append(t)
    segs = tuple(re.compile(_segment_regex(g)) for g in groups)
    literal = tuple(all(t and t & (t - 1) == 0 for t in g) for g in groups)
    return GlobPattern(pattern, segs, tuple(len(g) for g in groups), literal)


def _segment_regex(tokens: list[int]) -> bytes:
    """A run of equal byte sets that are not one byte is one fixed repeat (`[ab]{40}`, `(?s:.){40}`):
    sre tests it in one tight loop, and skips a run of '?' in one step. Literal bytes stay spelled
    out, so that sre's search for a literal prefix (a KMP table) applies."""
    out = bytearray()
    classes: dict[int, bytes] = {}
    i = 0
    while i < len(tokens):
        t = tokens[i]
        j = i + 1
        if t & (t - 1):  # more than one byte
            while j < len(tokens) and tokens[j] == t:
                j += 1
        if t not in classes:
            classes[t] = _regex_class(t)
        out += classes[t] if j - i == 1 else b"%s{%d}" % (classes[t], j - i)
        i = j
    return bytes(out)
