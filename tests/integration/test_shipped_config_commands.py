"""Every command that a shipped configuration file tells operators to run exists.

The agent.yaml comment once named `dstackctl token create`, which no program has: an operator
following it got "invalid choice". This runs each backticked program command from the shipped
files' comments with --help through the installed entry points, so a renamed or missing command
fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROGRAMS = ("dstack-agent", "dstack-controller", "dstackctl")
SHIPPED = sorted((ROOT / "packaging" / "config").glob("*.yaml"))
COMMAND = re.compile(r"`((?:" + "|".join(re.escape(p) for p in PROGRAMS) + r")(?: [a-z][a-z-]*)*)[^`]*`")


def _commands() -> list[tuple[str, str]]:
    found = []
    for path in SHIPPED:
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("#"):
                found += [(path.name, m.group(1)) for m in COMMAND.finditer(line)]
    return found


def test_the_shipped_comments_name_commands() -> None:
    assert ("agent.yaml", "dstack-controller token create") in _commands()


@pytest.mark.parametrize(("file", "command"), _commands())
def test_a_command_named_in_a_shipped_comment_exists(file: str, command: str) -> None:
    program, *words = command.split()
    done = subprocess.run([str(BIN / program), *words, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{file} names `{command}`: {done.stderr.strip()}"
