"""Azure identity from the Azure Instance Metadata Service (one request for the whole instance
document) and the Hyper-V generation from the firmware the VM booted with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.facts.cloud._values import word
from agent.facts.cloud.metadata import MetadataClient, MetadataError, base_url
from agent.facts.cloud.model import CloudFacts
from agent.facts.sources import FactSources

# A dated version so the document's shape does not change under us; 2021-02-01 has all the
# compute fields read here and is served by every Azure region.
INSTANCE_PATH = "/metadata/instance?api-version=2021-02-01"

# "Low" is the older VM scale set name for evictable capacity, billed and evicted like Spot.
SPOT_BY_PRIORITY = {"Spot": True, "Low": True, "Regular": False, "": False}


def fetch(sources: FactSources, client: MetadataClient) -> CloudFacts:
    url = base_url(sources.azure_endpoint) + INSTANCE_PATH
    text = client.request("GET", url, {"Metadata": "true"})
    try:
        document = json.loads(text or "")
    except ValueError:
        raise MetadataError(url, "the answer is not JSON") from None
    compute = document.get("compute") if isinstance(document, dict) else None
    if not isinstance(compute, dict):
        raise MetadataError(url, 'the answer has no "compute" object')
    zone = _optional(compute, "zone")
    priority = _optional(compute, "priority")
    return CloudFacts(
        provider="azure",
        region=word(url, _optional(compute, "location")),
        zone=word(url, zone) if zone else None,  # "" on a VM placed in no availability zone
        instance_type=word(url, _optional(compute, "vmSize")),
        instance_id=word(url, _optional(compute, "vmId")),
        spot=SPOT_BY_PRIORITY.get(priority) if priority is not None else None,
        hyperv_generation=hyperv_generation(sources.sysfs),
    )


def without_metadata(sources: FactSources) -> CloudFacts:
    # The generation is read from local firmware, so it stays known when IMDS does not answer.
    return CloudFacts(provider="azure", hyperv_generation=hyperv_generation(sources.sysfs))


def hyperv_generation(sysfs: Path) -> str:
    """Generation 2 VMs boot UEFI, generation 1 VMs BIOS; the kernel shows UEFI as /sys/firmware/efi."""
    return "V2" if (sysfs / "firmware" / "efi").is_dir() else "V1"


def _optional(compute: dict[str, Any], key: str) -> str | None:
    value = compute.get(key)
    return value if isinstance(value, str) else None
