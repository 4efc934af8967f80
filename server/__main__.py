import sys

from memsim.server.cli import main

sys.exit(main())
