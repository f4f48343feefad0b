"""Sizes of the filesystems tasks use: / and the Docker data root."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import psutil

DOCKER_DAEMON_JSON = Path("/etc/docker/daemon.json")
DOCKER_DEFAULT_ROOT = Path("/var/lib/docker")


@dataclass(frozen=True)
class DiskFacts:
    path: str
    size_bytes: int


def detect(paths: list[str]) -> list[DiskFacts]:
    found: list[DiskFacts] = []
    for path in dict.fromkeys(paths):  # keep order, drop repeats
        try:
            found.append(DiskFacts(path, psutil.disk_usage(path).total))
        except OSError:
            continue
    return found


def configured_docker_root(daemon_json: Path = DOCKER_DAEMON_JSON) -> str | None:
    """The engine's data root without asking the engine (which may be down): its config, else the default."""
    try:
        root = json.loads(daemon_json.read_text()).get("data-root")
        if isinstance(root, str) and root:
            return root
    except (OSError, ValueError, AttributeError):
        pass
    return str(DOCKER_DEFAULT_ROOT) if DOCKER_DEFAULT_ROOT.is_dir() else None
