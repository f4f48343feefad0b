"""CPU architecture: `uname -m` normalised to the names images use (amd64, arm64)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from agent.facts.sources import FactSources

NORMALISED = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class ArchFacts:
    arch: str  # amd64 | arm64, or the raw value when it is neither
    arch_raw: str

    @property
    def supported(self) -> bool:
        return self.arch in ("amd64", "arm64")


def normalise(value: str) -> str:
    return NORMALISED.get(value.strip().lower(), value.strip())


def detect(sources: FactSources) -> ArchFacts:
    raw = sources.machine or os.uname().machine
    return ArchFacts(normalise(raw), raw)
