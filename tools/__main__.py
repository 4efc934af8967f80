"""`python -m memsim.tools ...` is the `memsim` command (pyproject's [project.scripts]), for a checkout
without the script on PATH and for child processes that must run this interpreter (tools/local.py)."""

import sys

from memsim.tools.cli import main

sys.exit(main())
