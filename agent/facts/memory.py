"""Total memory from /proc/meminfo."""

from __future__ import annotations

from agent.facts.sources import FactSources, read_text


def detect(sources: FactSources) -> int | None:
    for line in (read_text(sources.procfs / "meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) >= 2 and parts[1].isdigit() else None
    return None
