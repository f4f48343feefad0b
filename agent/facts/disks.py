"""Sizes of the filesystems tasks use: / and the Docker data root."""

from __future__ import annotations

from dataclasses import dataclass

import psutil


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
