"""Where facts are read from. Every path can be pointed elsewhere (INTERFACES.md test seams),
so detection runs on fixture trees in tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FactSources:
    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")
    machine: str = ""  # uname -m; empty: ask the kernel

    @classmethod
    def from_env(cls) -> FactSources:
        return cls(
            sysfs=Path(os.environ.get("DSTACK_AGENT_SYSFS", "/sys")),
            procfs=Path(os.environ.get("DSTACK_AGENT_PROCFS", "/proc")),
            machine=os.environ.get("DSTACK_AGENT_UNAME_M", ""),
        )


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None
