"""Type-check the package as it is installed: `python dev/typecheck.py` (CI runs it).

The source tree maps directories to dotted names (`sim/` is `memsim.sim`, `protos/memsim/v1/` is
`memsim.v1`: pyproject.toml's `package-dir`), which mypy cannot read from pyproject. So this builds
the installed shape as a tree of symbolic links in a temporary directory and runs mypy on it with
the project's `[tool.mypy]` settings. Errors are reported with the repository's own paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# memsim.<name> -> directory of the repository; the same table as pyproject.toml's package-dir.
PACKAGES = {"sim": "sim", "server": "server", "client": "client", "tools": "tools", "v1": "protos/memsim/v1"}
CHECKED = ("sim", "server", "client", "tools")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="memsim-typecheck-") as tmp:
        pkg = Path(tmp) / "memsim"
        pkg.mkdir()
        for name, directory in PACKAGES.items():
            if (ROOT / directory).is_dir():
                os.symlink(ROOT / directory, pkg / name)
        args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
        for name in CHECKED:
            if (ROOT / PACKAGES[name]).is_dir():
                args += ["-p", f"memsim.{name}"]
        proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, check=False)
        prefix = {f"memsim/{name}/": f"{directory}/" for name, directory in PACKAGES.items()}
        for line in (proc.stdout + proc.stderr).splitlines():
            for old, new in prefix.items():
                if line.startswith(old):
                    line = new + line[len(old):]
                    break
            print(line)
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
