"""Regenerate the protobuf/gRPC stubs in protos/memsim/v1 from its .proto files.

Run with the pinned grpcio-tools (see pyproject's test extra). tests/project/test_proto_stubs.py
regenerates into a temporary directory and fails if the checked-in stubs differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent


def generate(out: Path) -> None:
    proto_dir = ROOT / "protos"
    args = ["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
            *sorted(str(p) for p in (proto_dir / "memsim" / "v1").glob("*.proto"))]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "protos")
