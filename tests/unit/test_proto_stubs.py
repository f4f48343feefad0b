"""The committed stubs are what `proto/generate` makes from the .proto files today."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("hybrid_pb2.py", "hybrid_pb2.pyi", "hybrid_pb2_grpc.py")


def test_committed_stubs_are_not_stale(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "proto", tmp_path / "proto", ignore=shutil.ignore_patterns("*_pb2*", "__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            "--python_out=.",
            "--pyi_out=.",
            "--grpc_python_out=.",
            "dstack_hybrid/v1/hybrid.proto",
        ],
        cwd=tmp_path / "proto",
        check=True,
        capture_output=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "proto/dstack_hybrid/v1" / name).read_text()
        committed = (ROOT / "proto/dstack_hybrid/v1" / name).read_text()
        assert committed == fresh, f"proto/dstack_hybrid/v1/{name} is stale: run ./proto/generate and commit it"
