"""The checked-in protobuf/gRPC stubs must be exactly what the pinned grpcio-tools generates."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stubs_match_the_proto(tmp_path):
    spec = importlib.util.spec_from_file_location("genproto", ROOT / "dev" / "genproto.py")
    gen = importlib.util.module_from_spec(spec)
    sys.modules["genproto"] = gen
    spec.loader.exec_module(gen)
    gen.generate(tmp_path)
    checked_in = ROOT / "protos" / "memsim" / "v1"
    names = [f"{p.stem}{suffix}" for p in sorted(checked_in.glob("*.proto"))
             for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]
    assert len(names) >= 6
    for name in names:
        fresh = (tmp_path / "memsim" / "v1" / name).read_text()
        assert fresh == (checked_in / name).read_text(), (
            f"{name} is stale: run `python dev/genproto.py` and commit the result")
