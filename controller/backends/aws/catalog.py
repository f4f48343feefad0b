"""What the account can run, as EC2 says: its regions (DescribeRegions), the sizes
(DescribeInstanceTypes) and the zones each is sold in (DescribeInstanceTypeOfferings).

Nothing comes from a table of ours: no region or size is listed here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controller.backends.aws.errors import error_code
from controller.backends.aws.sdk import KIND, AwsClients
from controller.backends.cache import TtlCache
from controller.backends.model import BackendError, InstanceType, Offering, narrow_regions
from controller.placement.model import GpuInfo

ARCHES = {"x86_64": "amd64", "arm64": "arm64"}  # the API's word -> ours
DESCRIBE_BATCH = 100  # DescribeInstanceTypes takes at most 100 names

# Every (type, zone) a region sells.
Sold = list[tuple[InstanceType, str]]


class Catalog:
    def __init__(
        self,
        clients: AwsClients,
        configured_regions: list[str],
        pricing_region: str,
        clock: Callable[[], float],
        ttl: float,
    ) -> None:
        self._clients = clients
        self.configured_regions = configured_regions
        self.pricing_region = pricing_region
        self._regions: TtlCache[list[str]] = TtlCache(clock, ttl)
        self._sold: TtlCache[Sold] = TtlCache(clock, ttl)

    def regions(self) -> list[str]:
        """The account's regions (cached), narrowed by the configured regions."""
        found = self._regions.get("")
        if found is None:
            now = self._regions.clock()
            # Any region answers DescribeRegions for the account: the SDK's own default region,
            # else the first configured one, else the Price List API's.
            asked = self._clients.default_region or (self.configured_regions or [self.pricing_region])[0]
            answer = self._clients.call(asked, "DescribeRegions")
            found = self._regions.put("", sorted(str(r["RegionName"]) for r in answer.get("Regions", [])), since=now)
        known = found
        return narrow_regions(
            self.configured_regions,
            known,
            lambda unknown: (
                f"aws: configured region{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"{'are' if len(unknown) > 1 else 'is'} not among the regions the account can use: {', '.join(known)}"
            ),
        )

    def sold(self, region: str) -> Sold:
        """Every (type, zone) the region sells, cached for the TTL."""
        cached = self._sold.get(region)
        if cached is not None:
            return cached
        now = self._sold.clock()
        types = self._describe_pages(region)
        pairs: set[tuple[str, str]] = set()
        for page in self._clients.pages(region, "DescribeInstanceTypeOfferings", LocationType="availability-zone"):
            for offer in page.get("InstanceTypeOfferings", []):
                pairs.add((str(offer["InstanceType"]), str(offer["Location"])))
        # A type offered but not described has nothing to rank it by: left out.
        return self._sold.put(region, [(types[name], zone) for name, zone in sorted(pairs) if name in types], since=now)

    def describe(self, names: list[str], region: str) -> dict[str, InstanceType | None]:
        """The named types as the region describes them; None for a name it does not know."""
        result: dict[str, InstanceType | None] = dict.fromkeys(names)
        wanted = list(dict.fromkeys(names))
        for start in range(0, len(wanted), DESCRIBE_BATCH):
            batch = wanted[start : start + DESCRIBE_BATCH]
            try:
                found = self._describe_pages(region, batch)
            except BackendError as exc:
                if error_code(exc) != "InvalidInstanceType":
                    raise
                # One unknown name fails the whole call: ask one at a time to find the known ones.
                found = {}
                for name in batch:
                    try:
                        found.update(self._describe_pages(region, [name]))
                    except BackendError as one:
                        if error_code(one) != "InvalidInstanceType":
                            raise
            result.update({name: itype for name, itype in found.items() if name in result})
        return result

    def _describe_pages(self, region: str, names: list[str] | None = None) -> dict[str, InstanceType]:
        """The named types (every type when `names` is None) by name."""
        params: dict[str, Any] = {} if names is None else {"InstanceTypes": names}
        found: dict[str, InstanceType] = {}
        for page in self._clients.pages(region, "DescribeInstanceTypes", **params):
            for info in page.get("InstanceTypes", []):
                itype = instance_type_from_api(info)
                found[itype.name] = itype
        return found


def offerings(
    sold: Sold, spot: Mapping[tuple[str, str], float], on_demand: Mapping[str, float], region: str
) -> list[Offering]:
    """Every sold (type, zone) on-demand, and spot where the type can be, with the known prices."""
    result: list[Offering] = []
    for itype, zone in sold:
        result.append(Offering(itype, region, zone, spot=False, price=on_demand.get(itype.name)))
        if itype.spot:
            result.append(Offering(itype, region, zone, spot=True, price=spot.get((itype.name, zone))))
    return result


def instance_type_from_api(info: dict[str, Any]) -> InstanceType:
    """An InstanceType from one DescribeInstanceTypes entry."""
    name = str(info["InstanceType"])
    api_arches = list((info.get("ProcessorInfo") or {}).get("SupportedArchitectures") or [])
    raw_arch = next((a for a in ("arm64", "x86_64") if a in api_arches), api_arches[0] if api_arches else "")
    arch = ARCHES.get(raw_arch, "")
    unsupported = ""
    if not arch:
        words = ", ".join(api_arches) or "no architecture"
        unsupported = f"{name} supports {words} only (Mac or 32-bit): this project boots x86_64 and arm64 Linux images"
    gpus: list[GpuInfo] = []
    for gpu in (info.get("GpuInfo") or {}).get("Gpus") or []:
        memory = int((gpu.get("MemoryInfo") or {}).get("SizeInMiB") or 0) * 2**20
        one = GpuInfo(
            vendor=str(gpu.get("Manufacturer") or "").lower(), name=str(gpu.get("Name") or ""), memory_bytes=memory
        )
        gpus.extend([one] * int(gpu.get("Count") or 0))
    storage = info.get("InstanceStorageInfo") or {}
    nvme = (
        int(storage.get("TotalSizeInGB") or 0) * 10**9 if storage.get("NvmeSupport") in ("required", "supported") else 0
    )
    return InstanceType(
        backend=KIND,
        name=name,
        arch=arch,
        raw_arch=raw_arch,
        vcpus=int((info.get("VCpuInfo") or {}).get("DefaultVCpus") or 0),
        memory_bytes=int((info.get("MemoryInfo") or {}).get("SizeInMiB") or 0) * 2**20,
        gpus=tuple(gpus),
        local_nvme_bytes=nvme,
        burstable=bool(info.get("BurstablePerformanceSupported")),
        spot="spot" in (info.get("SupportedUsageClasses") or []),
        family=name.split(".", 1)[0],
        unsupported=unsupported,
        # `instance-types check` reports a previous generation as retiring (lifecycle.py).
        previous_generation=info.get("CurrentGeneration") is False,
    )
