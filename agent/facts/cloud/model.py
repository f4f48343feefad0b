"""A host's cloud identity, in the shape of the `cloud` object of `dstack-agent facts --json`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class CloudFacts:
    provider: str  # aws | azure | gcp (an on-prem host has no CloudFacts at all)
    region: str | None = None
    zone: str | None = None
    zone_id: str | None = None  # AWS only: the zone's account-independent id (euw1-az1)
    instance_type: str | None = None
    instance_id: str | None = None
    spot: bool | None = None
    hyperv_generation: str | None = None  # Azure only: V1 (BIOS) or V2 (UEFI)

    def to_dict(self) -> dict[str, Any]:
        # The field names are the INTERFACES.md keys, so asdict is the schema.
        return dataclasses.asdict(self)
