"""Composes the fact sources into one HostFacts. Each source is its own module."""

from __future__ import annotations

import socket

from agent.facts import arch, cpu, disks, emulation, memory
from agent.facts.model import HostFacts
from agent.facts.sources import FactSources


def collect(sources: FactSources, disk_paths: list[str] | None = None) -> HostFacts:
    arch_facts = arch.detect(sources)
    return HostFacts(
        arch=arch_facts.arch,
        arch_raw=arch_facts.arch_raw,
        cpu=cpu.detect(sources),
        memory_bytes=memory.detect(sources),
        disks=disks.detect(["/", *(disk_paths or [])]),
        emulators=emulation.detect(sources, arch_facts.arch),
        hostname=socket.gethostname(),
    )
