"""Composes the fact sources into one HostFacts. Each source is its own module; host
sources first, then the cloud (which asks a metadata service only when DMI names a cloud)."""

from __future__ import annotations

import logging
import socket

from agent.facts import arch, cloud, cpu, disks, emulation, gpu, memory, nvme
from agent.facts.model import HostFacts
from agent.facts.sources import FactSources

FACTS_LOGGER = "dstack.agent.facts"


class _Collector(logging.Handler):
    """Keeps the warnings the sources log while detecting, so they travel with the facts."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def collect(sources: FactSources, disk_paths: list[str] | None = None, cloud_mode: str = "auto") -> HostFacts:
    logger = logging.getLogger(FACTS_LOGGER)
    warnings = _Collector()
    logger.addHandler(warnings)
    try:
        arch_facts = arch.detect(sources)
        found_cloud = cloud.detect(sources, cloud_mode)
        return HostFacts(
            arch=arch_facts.arch,
            arch_raw=arch_facts.arch_raw,
            cpu=cpu.detect(sources),
            memory_bytes=memory.detect(sources),
            disks=disks.detect(["/", *(disk_paths or [])]),
            emulators=emulation.detect(sources, arch_facts.arch),
            hostname=socket.gethostname(),
            nvme=nvme.detect(sources),
            gpus=gpu.detect(sources),
            cloud=found_cloud,
            region=found_cloud.region if found_cloud else None,
            zone=found_cloud.zone if found_cloud else None,
            warnings=warnings.messages,
        )
    finally:
        logger.removeHandler(warnings)
