"""The image a size boots: which configured URN fits its architecture, Hyper-V generation and disk
controller, checked against Azure's Virtual Machine Images API.

A URN (publisher:offer:sku:version) is only a name: whether the image exists in a region, which
Hyper-V generation and CPU architecture it boots and which disk controllers it takes are what the
API says (GET .../publishers/{p}/artifacttypes/vmimage/offers/{o}/skus/{s}/versions[/{v}]). Asking
before a launch turns a wrong URN into one sentence naming the config key, instead of a NIC created
and deleted around ARM's PlatformImageNotFound, and `instance-types check` can say so too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from controller.backends.azure.catalog import ARCHES, capability_list
from controller.backends.azure.errors import guard
from controller.backends.azure.sdk import word
from controller.backends.cache import TtlCache
from controller.backends.config import AzureImages
from controller.backends.model import BackendConfigError, BackendError, BootImage, InstanceType


@dataclass(frozen=True)
class PublishedImage:
    urn: str
    version: str  # the exact version; what `latest` stands for when it was asked
    generation: str  # V1 | V2
    arch: str  # amd64 | arm64 | "" (an architecture this project does not boot)
    disk_controllers: tuple[str, ...]  # SCSI, NVMe


class BootImages:
    """Chooses and checks the image for a size; `images` is the SDK's virtual_machine_images operations."""

    def __init__(self, images: Any, urns: AzureImages, clock: Callable[[], float], ttl: float) -> None:
        self._images = images
        self.urns = urns
        self._published: TtlCache[PublishedImage] = TtlCache(clock, ttl)  # "region|urn" -> found

    def boot_image(self, instance_type: InstanceType, region: str) -> BootImage:
        generations = instance_type.hyperv_generations or ("V1",)
        controllers = instance_type.disk_controllers or ("SCSI",)
        if instance_type.unsupported:
            raise BackendError(f"azure {region}: {instance_type.name} cannot boot: {instance_type.unsupported}")
        if instance_type.arch == "arm64":
            if "V2" not in generations:
                raise BackendError(f"azure {region}: {instance_type.name} cannot boot: Arm64 without Gen2")
            key, generation = "gen2_arm64", "V2"
        elif instance_type.arch == "amd64":
            key, generation = ("gen2_amd64", "V2") if "V2" in generations else ("gen1_amd64", "V1")
        else:
            raise BackendError(f"azure {region}: {instance_type.name} cannot boot: unknown architecture")
        urn = str(getattr(self.urns, key))
        # The Gen2 images boot with either controller; sizes without SCSI (Dsv6, Esv6) need NVMe.
        controller = "NVMe" if "NVMe" in controllers and "SCSI" not in controllers else "SCSI"
        if controller == "NVMe" and generation != "V2":
            raise BackendError(f"azure {region}: {instance_type.name} cannot boot: NVMe needs a Gen2 image")
        published = self.published(region, urn)
        where = f"azure {region}: image {urn} (images.{key})"
        if published is None:
            raise BackendError(f"{where} is not published in {region}; `az vm image list --all --location "
                               f"{region} --publisher {urn.split(':')[0]}` lists what is")  # fmt: skip
        if published.arch != instance_type.arch:
            raise BackendError(
                f"{where} is {published.arch or 'of another architecture'}, "
                f"{instance_type.name} is {instance_type.arch}"
            )
        if published.generation != generation:
            raise BackendError(f"{where} is a Gen{published.generation[1:]} image where Gen{generation[1:]} is needed")
        if controller not in published.disk_controllers:
            raise BackendError(f"{where} does not boot with the {controller} disk controller {instance_type.name} has")
        return BootImage(image=urn, description=urn, generation=generation, disk_controller=controller)

    def published(self, region: str, urn: str) -> PublishedImage | None:
        """The image as the Virtual Machine Images API describes it, cached for the TTL when found."""
        key = f"{region.lower()}|{urn.lower()}"
        cached = self._published.get(key)
        if cached is not None:
            return cached
        with guard(region, f"looking up image {urn}"):
            found = find_published(self._images, region, urn)
        return self._published.put(key, found) if found is not None else None


def parse_urn(urn: str) -> tuple[str, str, str, str] | None:
    parts = urn.split(":")
    if len(parts) != 4 or not all(part.strip() for part in parts):
        return None
    return parts[0], parts[1], parts[2], parts[3]


def urn_parts(urn: str) -> tuple[str, str, str, str]:
    """(publisher, offer, sku, version) of a URN about to be launched; BackendConfigError if it is none."""
    parts = parse_urn(urn)
    if parts is None:
        raise BackendConfigError(f'azure: image "{urn}" is not a URN publisher:offer:sku:version')
    return parts


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
    return PublishedImage(
        urn=urn,
        version=version,
        generation=word(image.hyper_v_generation) or "V1",
        arch=ARCHES.get(word(image.architecture).lower() or "x64", ""),
        # An image without the feature boots from SCSI only (the NVMe controller needs it declared).
        disk_controllers=capability_list(features.get("DiskControllerTypes", "SCSI")),
    )
