"""`python -m memsim.server` is not the command any more: the CLI lives in memsim.tools, and server/
may not import it (tools import the server, never the reverse). Say where it went."""

import sys

sys.exit("memsim.server has no command line of its own: run `memsim ...` or `python -m memsim.tools ...`")
