"""`--version` on each program, as INTERFACES.md names it: the project's version, exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.mark.parametrize("program", ["dstack-controller", "dstack-agent", "dstackctl"])
def test_version_names_the_program_and_the_projects_version(program: str) -> None:
    done = subprocess.run([str(BIN / program), "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{program} {VERSION}\n", "")
