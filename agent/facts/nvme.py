"""NVMe controllers from sysfs: model, serial, transport, capacity, and what kind of disk the
model string says it is (EBS, instance store, Azure's remote or local NVMe disks)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.facts.sources import FactSources, read_text

SECTOR_BYTES = 512  # sysfs `size` counts 512-byte sectors whatever the namespace's block size

# Model strings the clouds' NVMe controllers report (sysfs pads them to 40 chars with spaces).
KINDS: dict[str, str] = {
    "Amazon Elastic Block Store": "ebs",
    "Amazon EC2 NVMe Instance Storage": "instance-store",
    # Azure v6 sizes: one controller carries the OS disk (nsid 1) and the data disks (nsid 2+).
    "MSFT NVMe Accelerator v1.0": "azure-remote",
    "Microsoft NVMe Direct Disk": "azure-local",
    "Microsoft NVMe Direct Disk v2": "azure-local",
}

_CONTROLLER = re.compile(r"nvme(\d+)")
# nvme0n1; with native multipath the controller's path to a namespace is nvme0c0n1 instead.
_NAMESPACE = re.compile(r"nvme\d+(?:c\d+)?n\d+")


@dataclass(frozen=True)
class NvmeFacts:
    name: str
    model: str
    serial: str
    transport: str  # pcie, tcp, rdma, fc, loop
    size_bytes: int  # all namespaces of the controller together
    kind: str  # ebs | instance-store | azure-remote | azure-local | other

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def detect(sources: FactSources) -> list[NvmeFacts]:
    """One entry per controller, by controller number (nvme2 before nvme10). A device that is
    half set up (fields unreadable, namespaces not yet attached) gives "" and 0, never an error."""
    found: list[tuple[int, NvmeFacts]] = []
    for entry in _list(sources.sysfs / "class/nvme"):
        match = _CONTROLLER.fullmatch(entry.name)
        if match is None:
            continue
        model = _field(entry / "model")
        facts = NvmeFacts(
            name=entry.name,
            model=model,
            serial=_field(entry / "serial"),
            transport=_field(entry / "transport"),
            size_bytes=_namespaces_bytes(entry),
            kind=KINDS.get(model, "other"),
        )
        found.append((int(match.group(1)), facts))
    return [facts for _, facts in sorted(found, key=lambda pair: pair[0])]


def _list(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:  # no NVMe driver loaded, or not readable
        return []


def _field(path: Path) -> str:
    return (read_text(path) or "").strip()


def _namespaces_bytes(controller: Path) -> int:
    total = 0
    for entry in _list(controller):
        if _NAMESPACE.fullmatch(entry.name):
            try:
                total += int(_field(entry / "size")) * SECTOR_BYTES
            except ValueError:
                continue
    return total
