"""What the subscription can run, as Azure's APIs say: its locations, and in each the VM sizes of
Microsoft.Compute/skus with their zones, architecture, Hyper-V generations and disk controllers.

Nothing comes from a table of ours. The locations are read with a plain ARM GET through the compute
client's pipeline (same credential, retries, endpoint): the SubscriptionClient left
azure-mgmt-resource in 25.0 for a package of its own."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cmodels

from controller.backends.azure.errors import guard
from controller.backends.azure.pricing import Prices
from controller.backends.azure.sdk import word
from controller.backends.cache import TtlCache
from controller.backends.model import BackendConfigError, InstanceType, Offering, narrow_regions
from controller.placement.model import GpuInfo

LOCATIONS_API_VERSION = "2022-12-01"
LOCATION_PAGES_MAX = 100
GIB = 1024**3
MIB = 1024**2
ARCHES = {"x64": "amd64", "arm64": "arm64"}  # the API's word (lower-case) -> ours


@dataclass(frozen=True)
class Size:
    """One VM size as the region's SKU listing describes it."""

    itype: InstanceType
    zones: tuple[str, ...]  # usable zones (restricted ones removed); () for a region without zones
    capabilities: dict[str, str]


class Catalog:
    def __init__(
        self,
        compute: ComputeManagementClient,
        subscription_id: str,
        configured_regions: list[str],
        clock: Callable[[], float],
        ttl: float,
    ) -> None:
        self._compute = compute
        self.subscription_id = subscription_id
        self.configured_regions = configured_regions
        self._locations: TtlCache[list[str]] = TtlCache(clock, ttl)
        self._sizes: TtlCache[dict[str, Size]] = TtlCache(clock, ttl)

    def regions(self) -> list[str]:
        """The subscription's physical locations (cached), narrowed by the configured regions."""
        known = self._locations.get("")
        if known is None:
            known = self._locations.put("", self._list_locations())
        return narrow_regions(
            self.configured_regions,
            known,
            lambda unknown: (
                f"azure: region {', '.join(unknown)} is not a region of subscription "
                f"{self.subscription_id}; it has: {', '.join(sorted(known))}"
            ),
        )

    def first_region(self) -> str:
        regions = self.regions()
        if not regions:
            raise BackendConfigError(f"azure: subscription {self.subscription_id} has no regions")
        return regions[0]

    def _list_locations(self) -> list[str]:
        path = f"/subscriptions/{urllib.parse.quote(self.subscription_id)}/locations"
        request: HttpRequest | None = HttpRequest("GET", path, params={"api-version": LOCATIONS_API_VERSION})
        names: list[str] = []
        pages = 0
        with guard(None, "listing the subscription's locations"):
            while request is not None and pages < LOCATION_PAGES_MAX:
                pages += 1
                response = self._compute.send_request(request)
                response.raise_for_status()
                body = response.json()
                for location in body.get("value") or []:
                    name = location.get("name")
                    metadata = location.get("metadata") or {}
                    region_type = metadata.get("regionType")
                    if name and (region_type is None or region_type == "Physical"):
                        names.append(str(name))
                next_link = body.get("nextLink")
                request = HttpRequest("GET", next_link) if next_link else None
        return names

    def sizes(self, region: str) -> dict[str, Size]:
        """The region's deployable VM sizes by lower-case name (cached with the TTL)."""
        key = region.lower()
        cached = self._sizes.get(key)
        if cached is not None:
            return cached
        sizes: dict[str, Size] = {}
        with guard(region, "listing VM sizes"):
            for sku in self._compute.resource_skus.list(filter=f"location eq '{region}'"):
                if word(sku.resource_type).lower() != "virtualmachines" or not sku.name:
                    continue
                size = size_in_region(sku, region)
                if size is not None:
                    sizes[sku.name.lower()] = size
        return self._sizes.put(key, sizes)

    def capabilities(self, region: str, size: str) -> dict[str, str]:
        """The size's SKU capabilities in the region; {} when the listing lacks it."""
        found = self.sizes(region).get(size.lower())
        return found.capabilities if found is not None else {}

    def describe(self, names: list[str], region: str) -> dict[str, InstanceType | None]:
        sizes = self.sizes(region)
        found: dict[str, InstanceType | None] = {}
        for name in names:
            size = sizes.get(name.lower())
            found[name] = size.itype if size is not None else None
        return found


def offerings(sizes: dict[str, Size], prices: Prices, region: str) -> list[Offering]:
    """Every bootable size in each of its zones ("" without zones), on-demand, and spot where it can be."""
    offers: list[Offering] = []
    for key in sorted(sizes):
        size = sizes[key]
        itype = size.itype
        if itype.unsupported:
            continue
        on_demand, spot = prices.get(key, (None, None))
        for zone in size.zones or ("",):
            offers.append(Offering(itype, region, zone, spot=False, price=on_demand))
            if itype.spot:
                offers.append(Offering(itype, region, zone, spot=True, price=spot))
    return offers


def size_in_region(sku: cmodels.ResourceSku, region: str) -> Size | None:
    """The SKU as a size of `region`, its restricted zones removed; None when not deployable there."""
    name = sku.name or ""
    region_l = region.lower()
    zones: set[str] = set()
    in_region = False
    for info in sku.location_info or []:
        if (info.location or "").lower() == region_l:
            in_region = True
            zones.update(info.zones or [])
    if not in_region and region_l not in [loc.lower() for loc in sku.locations or []]:
        return None
    for restriction in sku.restrictions or []:
        restricted_in = restriction.restriction_info
        restricted = (restricted_in.locations if restricted_in else None) or restriction.values_property or []
        if restricted and region_l not in [loc.lower() for loc in restricted]:
            continue
        kind = word(restriction.type).lower()
        if kind == "location":
            return None  # NotAvailableForSubscription (or QuotaId): not deployable here at all
        if kind == "zone":
            zones.difference_update((restricted_in.zones if restricted_in else None) or [])
            if not zones:
                return None
    caps = {c.name: c.value or "" for c in sku.capabilities or [] if c.name}
    return Size(instance_type(name, sku.family or "", caps), tuple(sorted(zones)), caps)


def instance_type(name: str, family: str, caps: dict[str, str]) -> InstanceType:
    """The size's SKU capabilities as an InstanceType; `unsupported` says why it cannot boot here."""
    raw_arch = caps.get("CpuArchitectureType", "")
    arch = ARCHES.get(raw_arch.lower(), "")
    generations = capability_list(caps.get("HyperVGenerations", "")) or ("V1",)
    generations = tuple(g.upper() for g in generations)
    controllers = capability_list(caps["DiskControllerTypes"]) if "DiskControllerTypes" in caps else ("SCSI",)
    controllers = tuple("NVMe" if c.lower() == "nvme" else c.upper() for c in controllers)
    unsupported = ""
    if not arch:
        unsupported = f"CPU architecture {raw_arch or '(not given)'} is neither x64 nor Arm64"
    elif arch == "arm64" and "V2" not in generations:
        unsupported = "an Arm64 size without Hyper-V generation V2"
    elif "SCSI" not in controllers and "V2" not in generations:
        unsupported = "NVMe-only disk controller without Hyper-V generation V2"
    gpu_count = int(_number(caps.get("GPUs")))
    # The SKU listing gives the GPU count only: the size name stands for the model, vendor unknown.
    gpus = tuple(GpuInfo(vendor="", name=name, memory_bytes=0) for _ in range(gpu_count))
    return InstanceType(
        backend="azure",
        name=name,
        arch=arch,
        raw_arch=raw_arch,
        vcpus=int(_number(caps.get("vCPUs"))),
        memory_bytes=int(_number(caps.get("MemoryGB")) * GIB),
        gpus=gpus,
        local_nvme_bytes=int(_number(caps.get("NvmeDiskSizeInMiB")) * MIB),
        burstable=family.lower().startswith("standardb"),
        spot=truthy(caps.get("LowPriorityCapable")),
        hyperv_generations=generations,
        disk_controllers=controllers,
        family=family,
        unsupported=unsupported,
    )


def capability_list(value: str) -> tuple[str, ...]:
    """A comma-separated capability ("V1,V2", "SCSI, NVMe") as its parts."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def truthy(value: str | None) -> bool:
    """A capability's "True"/"False" (any case); missing is false."""
    return (value or "").strip().lower() == "true"


def _number(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
