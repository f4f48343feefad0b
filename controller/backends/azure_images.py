"""Marketplace images as Azure's Virtual Machine Images API describes them.

A URN (publisher:offer:sku:version) is only a name: whether the image exists in a region, which
Hyper-V generation and CPU architecture it boots and which disk controllers it takes are what the
API says (GET .../publishers/{p}/artifacttypes/vmimage/offers/{o}/skus/{s}/versions[/{v}]). Asking
before a launch turns a wrong URN into one sentence naming the config key, instead of a NIC created
and deleted around ARM's PlatformImageNotFound, and `instance-types check` can say so too."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

ARCHES = {"x64": "amd64", "arm64": "arm64"}  # the API's word (lower-case) -> ours


@dataclass(frozen=True)
class PublishedImage:
    urn: str
    version: str  # the exact version; what `latest` stands for when it was asked
    generation: str  # V1 | V2
    arch: str  # amd64 | arm64 | "" (an architecture this project does not boot)
    disk_controllers: tuple[str, ...]  # SCSI, NVMe


def parse_urn(urn: str) -> tuple[str, str, str, str] | None:
    parts = urn.split(":")
    if len(parts) != 4 or not all(part.strip() for part in parts):
        return None
    return parts[0], parts[1], parts[2], parts[3]


def _word(value: object) -> str:
    # The SDK gives enums (HyperVGenerationTypes.V2) or plain strings, depending on the model.
    return str(value.value) if isinstance(value, Enum) else str(value or "")


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """24.04.202411030 > 24.04.202409120, and 10.0 > 9.0: numeric parts compare as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in version.split("."))


def find_published(images: Any, region: str, urn: str) -> PublishedImage | None:
    """What `images` (the SDK's virtual_machine_images operations) says the URN is in `region`;
    None when the API does not publish it there. Other API errors propagate."""
    parsed = parse_urn(urn)
    if parsed is None:
        return None
    publisher, offer, sku, version = parsed
    try:
        if version.lower() == "latest":
            listed = [str(v.name) for v in images.list(region, publisher, offer, sku) if v.name]
            if not listed:
                return None
            version = max(listed, key=_version_key)
        image = images.get(region, publisher, offer, sku, version)
    except ResourceNotFoundError:  # 404 NotFound "Artifact: VMImage was not found."
        return None
    features = {str(f.name): str(f.value or "") for f in (image.features or [])}
    # An image without the feature boots from SCSI only (the NVMe controller needs it declared).
    controllers = tuple(c.strip() for c in features.get("DiskControllerTypes", "SCSI").split(",") if c.strip())
    return PublishedImage(
        urn=urn,
        version=version,
        generation=_word(image.hyper_v_generation) or "V1",
        arch=ARCHES.get(_word(image.architecture).lower() or "x64", ""),
        disk_controllers=controllers,
    )
