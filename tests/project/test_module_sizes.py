"""No module of memsim's packages is over 500 lines: a module is one structure or mechanism, as a
file of Redis's src/ or Linux's mm/ is, and one a reader can hold. Lines are counted as a reader
meets them: every line that is not blank, comments and docstrings included (they are read too)."""

from __future__ import annotations

import pytest

from tests.project.sources import modules

MAX_LINES = 500


def lines_of(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


def test_no_module_is_over_500_lines():
    sizes = {m.where: lines_of(m.path.read_text()) for m in modules().values()}
    assert len(sizes) > 50
    over = sorted(((n, where) for where, n in sizes.items() if n > MAX_LINES), reverse=True)
    if over:
        pytest.fail(f"{len(over)} module(s) over {MAX_LINES} non-blank lines; split each along its mechanisms:\n" +
                    "\n".join(f"  {where}: {n} lines" for n, where in over), pytrace=False)


def test_lines_are_the_non_blank_ones():
    assert lines_of('"""doc"""\n\n# why\nx = 1\n   \n\ty = 2\n') == 4
