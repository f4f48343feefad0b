"""The AWS backend: EC2 (and the Price List API for on-demand prices) through boto3.

Everything the controller knows about AWS comes from the APIs: the regions from DescribeRegions,
the sizes from DescribeInstanceTypes, where they are sold from DescribeInstanceTypeOfferings, the
image from DescribeImages. Nothing here lists regions, sizes or AMI ids."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore import xform_name  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError  # type: ignore[import-untyped]

from controller.backends.config import AWSAccessKeyCreds, AWSBackendConfig
from controller.backends.model import (
    TAG_CONTROLLER,
    TAG_NAME,
    BackendConfigError,
    BackendError,
    BootImage,
    CapacityError,
    CloudInstance,
    CloudVolume,
    InstanceType,
    LaunchSpec,
    Offering,
    narrow_regions,
)
from controller.placement.model import GpuInfo

log = logging.getLogger("dstack.controller.backends.aws")

KIND = "aws"

# RunInstances refusals that mean "not here, not now": the offering is blocked for a while and the
# next one is tried. `Unsupported` is AWS's answer for a type not sold in the subnet's zone.
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "SpotMaxPriceTooLow",
        "InsufficientFreeAddressesInSubnet",
        "Unsupported",
    }
)
# Refusals an operator fixes in the configuration or the account: credentials, permissions, regions.
CONFIG_CODES = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "UnauthorizedOperation",
        "AccessDeniedException",
        "OptInRequired",
    }
)

ARCHES = {"x86_64": "amd64", "arm64": "arm64"}  # the API's word -> ours
API_ARCH = {ours: api for api, ours in ARCHES.items()}
DEVICE_NAMES = tuple(f"/dev/sd{letter}" for letter in "fghijklmnop")  # for attached EBS volumes
LIVE_STATES = ("pending", "running", "stopping", "stopped")
# A failed price source is asked again this soon, not only when the offerings' TTL runs out.
PRICE_RETRY_S = 300.0
DESCRIBE_BATCH = 100  # DescribeInstanceTypes takes at most 100 names
# What boto3 raises: ClientError (the API said no), BotoCoreError (no answer, bad parameters, no
# credentials) and ResponseParserError (an answer that is not XML or JSON), which is neither.
SDK_ERRORS = (ClientError, BotoCoreError, ResponseParserError)


def backend_error(region: str, operation: str, exc: Exception) -> BackendError:
    """One sentence for an SDK error: CapacityError for RunInstances' capacity and quota codes,
    BackendConfigError for credentials and permissions, BackendError otherwise."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "") or "")
        message = str(error.get("Message", "") or "") or str(exc)
        text = f"aws {region}: {operation} failed: {message}" + (f" ({code})" if code else "")
        if operation == "RunInstances" and code in CAPACITY_CODES:
            return CapacityError(text)
        if code in CONFIG_CODES:
            return BackendConfigError(text)
        return BackendError(text)
    text = f"aws {region}: {operation} failed: {exc}"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return BackendConfigError(text)
    return BackendError(text)


def error_code(exc: BaseException) -> str:
    """The AWS error code behind a BackendError raised from a ClientError ("" when none)."""
    cause = exc.__cause__
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code", "") or "")
    return ""


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


def on_demand_prices(price_list: Iterable[str]) -> dict[str, float]:
    """Instance type -> dollars per hour from GetProducts' PriceList (one JSON document per product).
    Where several products name a type (they should not, given the filters), the cheapest wins."""
    prices: dict[str, float] = {}
    for document in price_list:
        product = _dict(json.loads(document))
        name = _dict(_dict(product.get("product")).get("attributes")).get("instanceType")
        if not isinstance(name, str) or not name:
            continue
        for term in _dict(_dict(product.get("terms")).get("OnDemand")).values():
            for dimension in _dict(_dict(term).get("priceDimensions")).values():
                try:
                    usd = float(_dict(_dict(dimension).get("pricePerUnit")).get("USD", ""))
                except (TypeError, ValueError):
                    continue
                if usd > 0 and (name not in prices or usd < prices[name]):
                    prices[name] = usd
    return prices


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tags(items: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in items or []}


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _device_letter(device: str) -> str:
    """/dev/sdf, /dev/xvdf and sdf name the same slot on EC2: its letter."""
    name = device.rsplit("/", 1)[-1]
    for prefix in ("xvd", "sd"):
        if name.startswith(prefix):
            return name[len(prefix) :][:1]
    return name


class AWSBackend:
    kind = KIND

    def __init__(
        self, config: AWSBackendConfig, clock: Callable[[], float] = time.time, cache_ttl: float = 3600.0
    ) -> None:
        self.config = config
        self._clock = clock
        self._ttl = cache_ttl
        self.session = boto3.session.Session()
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        self._discovered: tuple[float, list[str]] | None = None  # (expires, the API's regions)
        self._catalogs: dict[str, tuple[float, list[tuple[InstanceType, str]]]] = {}  # region -> (type, zone)s
        self._prices: dict[tuple[str, str], tuple[float, Mapping[Any, float]]] = {}  # (region, market) -> prices
        self._images: dict[tuple[str, str], tuple[float, BootImage]] = {}
        self._root_devices: dict[tuple[str, str], str] = {}  # (region, image id) -> root device name

    # -- SDK plumbing -------------------------------------------------------------------------

    def _client(self, service: str, region: str) -> Any:
        with self._lock:  # a boto3 Session is not thread-safe; the clients it makes are
            client = self._clients.get((service, region))
            if client is None:
                kwargs: dict[str, Any] = {}
                if self.config.endpoint_url:
                    kwargs["endpoint_url"] = self.config.endpoint_url
                if isinstance(self.config.creds, AWSAccessKeyCreds):
                    kwargs["aws_access_key_id"] = self.config.creds.access_key
                    kwargs["aws_secret_access_key"] = self.config.creds.secret_key
                # Prices are a nicety (unknown ones rank by size): one retry for the Price List API.
                attempts = 2 if service == "pricing" else 4
                config = Config(
                    retries={"mode": "standard", "max_attempts": attempts},
                    connect_timeout=10,
                    read_timeout=60,
                    user_agent_extra="dstack-hybrid",
                )
                client = self.session.client(service, region_name=region, config=config, **kwargs)
                self._clients[(service, region)] = client
            return client

    def _call(self, region: str, operation: str, service: str = "ec2", **params: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = getattr(self._client(service, region), xform_name(operation))(**params)
        except SDK_ERRORS as exc:
            raise backend_error(region, operation, exc) from exc
        return result

    def _pages(self, region: str, operation: str, service: str = "ec2", **params: Any) -> list[dict[str, Any]]:
        try:
            paginator = self._client(service, region).get_paginator(xform_name(operation))
            return list(paginator.paginate(**params))
        except SDK_ERRORS as exc:
            raise backend_error(region, operation, exc) from exc

    # -- regions and sizes --------------------------------------------------------------------

    def regions(self) -> list[str]:
        now = self._clock()
        if self._discovered is None or now >= self._discovered[0]:
            # Any region answers DescribeRegions for the account: the SDK's own default region,
            # else the first configured one, else the Price List API's.
            asked = self.session.region_name or (self.config.regions or [self.config.pricing_region])[0]
            answer = self._call(asked, "DescribeRegions")
            found = sorted(str(r["RegionName"]) for r in answer.get("Regions", []))
            self._discovered = (now + self._ttl, found)
        found = self._discovered[1]
        return narrow_regions(
            self.config.regions,
            found,
            lambda unknown: (
                f"aws: configured region{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"{'are' if len(unknown) > 1 else 'is'} not among the regions the account can use: {', '.join(found)}"
            ),
        )

    def _describe_all(self, region: str) -> dict[str, InstanceType]:
        types: dict[str, InstanceType] = {}
        for page in self._pages(region, "DescribeInstanceTypes"):
            for info in page.get("InstanceTypes", []):
                itype = instance_type_from_api(info)
                types[itype.name] = itype
        return types

    def offerings(self, region: str) -> list[Offering]:
        now = self._clock()
        catalog = self._catalog(region, now)
        spot = self._cached_prices(region, "spot", now, self._spot_prices)
        on_demand = self._cached_prices(region, "on-demand", now, self._on_demand_prices)
        result: list[Offering] = []
        for itype, zone in catalog:
            result.append(Offering(itype, region, zone, spot=False, price=on_demand.get(itype.name)))
            if itype.spot:
                result.append(Offering(itype, region, zone, spot=True, price=spot.get((itype.name, zone))))
        return result

    def _catalog(self, region: str, now: float) -> list[tuple[InstanceType, str]]:
        """Every (type, zone) the region sells, cached for the TTL."""
        cached = self._catalogs.get(region)
        if cached is not None and now < cached[0]:
            return cached[1]
        types = self._describe_all(region)
        pairs: set[tuple[str, str]] = set()
        for page in self._pages(region, "DescribeInstanceTypeOfferings", LocationType="availability-zone"):
            for offer in page.get("InstanceTypeOfferings", []):
                pairs.add((str(offer["InstanceType"]), str(offer["Location"])))
        # A type offered but not described has nothing to rank it by: left out.
        catalog = [(types[name], zone) for name, zone in sorted(pairs) if name in types]
        self._catalogs[region] = (now + self._ttl, catalog)
        return catalog

    def _cached_prices(
        self, region: str, market: str, now: float, fetch: Callable[[str], Mapping[Any, float] | None]
    ) -> Mapping[Any, float]:
        """A price source's answer for the TTL; a failed one (None: prices unknown) for PRICE_RETRY_S."""
        cached = self._prices.get((region, market))
        if cached is None or now >= cached[0]:
            prices = fetch(region)
            ttl = self._ttl if prices is not None else min(self._ttl, PRICE_RETRY_S)
            cached = (now + ttl, prices or {})
            self._prices[(region, market)] = cached
        return cached[1]

    def _spot_prices(self, region: str) -> dict[tuple[str, str], float] | None:
        """(type, zone) -> the latest Linux spot price; None when the API failed."""
        try:
            # Start and end now: the API answers each type and zone's last change before the start,
            # the price in effect now, and not the history.
            now = datetime.now(timezone.utc)
            pages = self._pages(
                region, "DescribeSpotPriceHistory", ProductDescriptions=["Linux/UNIX"], StartTime=now, EndTime=now
            )
        except BackendError as exc:
            log.warning("spot prices unknown: %s", exc)
            return None
        latest: dict[tuple[str, str], tuple[float, float]] = {}  # -> (timestamp, price)
        for page in pages:
            for item in page.get("SpotPriceHistory", []):
                if not str(item.get("ProductDescription", "")).startswith("Linux/UNIX"):
                    continue
                key = (str(item.get("InstanceType")), str(item.get("AvailabilityZone")))
                stamp = item.get("Timestamp")
                when = stamp.timestamp() if stamp is not None else 0.0
                try:
                    price = float(item["SpotPrice"])
                except (KeyError, ValueError):
                    continue
                if key not in latest or when >= latest[key][0]:
                    latest[key] = (when, price)
        return {key: price for key, (_, price) in latest.items()}

    def _on_demand_prices(self, region: str) -> dict[str, float] | None:
        """Type -> on-demand Linux price in `region` from the Price List API; None when it failed.
        One filtered query for the whole region, 100 products a page."""
        filters = {
            "regionCode": region,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
        }
        try:
            pages = self._pages(
                self.config.pricing_region,
                "GetProducts",
                service="pricing",
                ServiceCode="AmazonEC2",
                Filters=[{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in filters.items()],
                FormatVersion="aws_v1",
                PaginationConfig={"PageSize": 100},
            )
            return on_demand_prices(doc for page in pages for doc in page.get("PriceList", []))
        except (BackendError, ValueError) as exc:  # ValueError: a PriceList entry that is not JSON
            log.warning("aws %s: on-demand prices unknown: %s", region, exc)
            return None

    def describe(self, names: list[str], region: str | None = None) -> dict[str, InstanceType | None]:
        region = region or self.regions()[0]
        result: dict[str, InstanceType | None] = dict.fromkeys(names)
        wanted = list(dict.fromkeys(names))
        for start in range(0, len(wanted), DESCRIBE_BATCH):
            batch = wanted[start : start + DESCRIBE_BATCH]
            try:
                found = self._describe_batch(region, batch)
            except BackendError as exc:
                if error_code(exc) != "InvalidInstanceType":
                    raise
                # One unknown name fails the whole call: ask one at a time to find the known ones.
                found = {}
                for name in batch:
                    try:
                        found.update(self._describe_batch(region, [name]))
                    except BackendError as one:
                        if error_code(one) != "InvalidInstanceType":
                            raise
            result.update({name: itype for name, itype in found.items() if name in result})
        return result

    def _describe_batch(self, region: str, names: list[str]) -> dict[str, InstanceType]:
        found: dict[str, InstanceType] = {}
        for page in self._pages(region, "DescribeInstanceTypes", InstanceTypes=names):
            for info in page.get("InstanceTypes", []):
                itype = instance_type_from_api(info)
                found[itype.name] = itype
        return found

    # -- images and instances -----------------------------------------------------------------

    def boot_image(self, instance_type: InstanceType, region: str) -> BootImage:
        if not instance_type.arch:
            raise BackendError(f"aws {region}: {instance_type.unsupported or instance_type.name + ' cannot be booted'}")
        api_arch = API_ARCH[instance_type.arch]
        now = self._clock()
        cached = self._images.get((region, api_arch))
        if cached is not None and now < cached[0]:
            return cached[1]
        owners = list(self.config.image.owners)
        # The name carries Canonical's word (amd64) where the API's filter needs its own (x86_64).
        pattern = self.config.image.name_for(instance_type.arch)
        answer = self._call(
            region,
            "DescribeImages",
            Owners=owners,
            Filters=[
                {"Name": "name", "Values": [pattern]},
                {"Name": "architecture", "Values": [api_arch]},
                {"Name": "state", "Values": ["available"]},
            ],
        )
        images = answer.get("Images", [])
        if not images:
            raise BackendError(
                f"aws {region}: no image matches owners [{', '.join(owners)}] name {pattern} architecture {api_arch}"
            )
        # ISO 8601 timestamps in one format: the string order is the time order.
        newest = max(images, key=lambda i: (str(i.get("CreationDate", "")), str(i["ImageId"])))
        image = BootImage(image=str(newest["ImageId"]), description=str(newest.get("Name", "")))
        if newest.get("RootDeviceName"):
            self._root_devices[(region, image.image)] = str(newest["RootDeviceName"])
        self._images[(region, api_arch)] = (now + self._ttl, image)
        return image

    def _root_device(self, region: str, image_id: str) -> str:
        known = self._root_devices.get((region, image_id))
        if known:
            return known
        images = self._call(region, "DescribeImages", ImageIds=[image_id]).get("Images", [])
        if not images or not images[0].get("RootDeviceName"):
            raise BackendError(f"aws {region}: image {image_id} not found or has no root device")
        device = str(images[0]["RootDeviceName"])
        self._root_devices[(region, image_id)] = device
        return device

    def _subnet(self, region: str, zone: str) -> str:
        """The zone's subnet tagged with config.subnet_tag, else the zone's default subnet."""
        for wanted in (
            {"Name": "tag-key", "Values": [self.config.subnet_tag]},
            {"Name": "default-for-az", "Values": ["true"]},
        ):
            filters = [{"Name": "availability-zone", "Values": [zone]}, wanted]
            subnets = [s for page in self._pages(region, "DescribeSubnets", Filters=filters) for s in page["Subnets"]]
            if subnets:
                best = max(subnets, key=lambda s: (int(s.get("AvailableIpAddressCount", 0)), str(s["SubnetId"])))
                return str(best["SubnetId"])
        raise BackendError(
            f"aws {region}: no subnet in {zone}: "
            f"tag one with {self.config.subnet_tag} or create the zone's default subnet"
        )

    def launch(self, spec: LaunchSpec) -> CloudInstance:
        offering = spec.offering
        region, zone = offering.region, offering.zone
        subnet = self._subnet(region, zone)
        root = self._root_device(region, spec.image.image)
        tags = {**spec.tags, TAG_NAME: spec.name}
        # Makes the SDK's retry of a RunInstances that timed out return the first instance instead
        # of starting a second one. The offering is part of it: a launch that moves on to the next
        # offering after a refusal must not reuse the token with other parameters.
        token = hashlib.sha256(f"{spec.name}|{offering.key}".encode()).hexdigest()  # 64 characters, AWS's most
        params: dict[str, Any] = {
            "ImageId": spec.image.image,
            "InstanceType": offering.instance_type.name,
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": subnet,
            "UserData": spec.user_data,  # boto3 base64-encodes it
            "ClientToken": token,
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": _tag_list(tags)},
                {"ResourceType": "volume", "Tags": _tag_list(tags)},
            ],
            "BlockDeviceMappings": [
                {
                    "DeviceName": root,
                    "Ebs": {"VolumeSize": spec.disk_gb, "VolumeType": "gp3", "DeleteOnTermination": True},
                }
            ],
        }
        if offering.spot:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        answer = self._call(region, "RunInstances", **params)
        instances = answer.get("Instances", [])
        if not instances:
            raise BackendError(f"aws {region}: RunInstances failed: no instance in the answer")
        launched = instances[0]
        if not launched.get("Tags"):  # not every answer echoes the tags it was given
            launched = {**launched, "Tags": _tag_list(tags)}
        return self._instance(region, launched)

    def _instance(self, region: str, info: dict[str, Any]) -> CloudInstance:
        launch_time = info.get("LaunchTime")
        return CloudInstance(
            backend=KIND,
            region=region,
            zone=str((info.get("Placement") or {}).get("AvailabilityZone", "")),
            instance_id=str(info["InstanceId"]),
            instance_type=str(info.get("InstanceType", "")),
            state=str((info.get("State") or {}).get("Name", "")),
            tags=_tags(info.get("Tags")),
            launched_at=launch_time.timestamp() if launch_time is not None else None,
            spot=info.get("InstanceLifecycle") == "spot",
            name=str(info["InstanceId"]),
        )

    def instances(self, controller_tag: str) -> list[CloudInstance]:
        regions = self.regions()
        if not regions:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(regions))) as pool:
            per_region = list(pool.map(lambda region: self._instances_in(region, controller_tag), regions))
        return [instance for found in per_region for instance in found]

    def _instances_in(self, region: str, controller_tag: str) -> list[CloudInstance]:
        filters = [
            {"Name": f"tag:{TAG_CONTROLLER}", "Values": [controller_tag]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
        return [
            self._instance(region, info)
            for page in self._pages(region, "DescribeInstances", Filters=filters)
            for reservation in page.get("Reservations", [])
            for info in reservation.get("Instances", [])
        ]

    def terminate(self, instance: CloudInstance) -> None:
        try:
            self._call(instance.region, "TerminateInstances", InstanceIds=[instance.instance_id])
        except BackendError as exc:
            if error_code(exc) != "InvalidInstanceID.NotFound":
                raise

    # -- volumes ------------------------------------------------------------------------------

    def _volume(self, region: str, info: dict[str, Any]) -> CloudVolume:
        volume_id = str(info["VolumeId"])
        return CloudVolume(
            backend=KIND,
            region=region,
            zone=str(info.get("AvailabilityZone", "")),
            volume_id=volume_id,
            size_bytes=int(info.get("Size", 0)) * 2**30,
            state=str(info.get("State", "")),
            attached_to=tuple(
                str(a["InstanceId"]) for a in info.get("Attachments") or [] if a.get("State") != "detached"
            ),
            device_serial=volume_id.replace("-", "", 1),  # what the NVMe device reports on Nitro
        )

    def create_volume(self, name: str, region: str, zone: str, size_bytes: int, tags: dict[str, str]) -> CloudVolume:
        answer = self._call(
            region,
            "CreateVolume",
            AvailabilityZone=zone,
            Size=max(1, math.ceil(size_bytes / 2**30)),
            VolumeType="gp3",
            TagSpecifications=[{"ResourceType": "volume", "Tags": _tag_list({**tags, TAG_NAME: name})}],
        )
        return self._volume(region, answer)

    def get_volume(self, region: str, volume_id: str) -> CloudVolume | None:
        try:
            volumes = self._call(region, "DescribeVolumes", VolumeIds=[volume_id]).get("Volumes", [])
        except BackendError as exc:
            if error_code(exc) == "InvalidVolume.NotFound":
                return None
            raise
        return self._volume(region, volumes[0]) if volumes else None

    def attach_volume(self, volume: CloudVolume, instance: CloudInstance) -> CloudVolume:
        region = volume.region
        current = self.get_volume(region, volume.volume_id)
        if current is None:
            raise BackendError(f"aws {region}: volume {volume.volume_id} not found")
        if instance.instance_id in current.attached_to:
            return current
        reservations = self._call(region, "DescribeInstances", InstanceIds=[instance.instance_id]).get(
            "Reservations", []
        )
        infos = [info for r in reservations for info in r.get("Instances", [])]
        if not infos:
            raise BackendError(f"aws {region}: instance {instance.instance_id} not found")
        used = {_device_letter(str(m.get("DeviceName", ""))) for m in infos[0].get("BlockDeviceMappings") or []}
        if infos[0].get("RootDeviceName"):
            used.add(_device_letter(str(infos[0]["RootDeviceName"])))
        device = next((d for d in DEVICE_NAMES if _device_letter(d) not in used), None)
        if device is None:
            raise BackendError(
                f"aws {region}: no free device name on {instance.instance_id} "
                f"({DEVICE_NAMES[0]}..{DEVICE_NAMES[-1]} are in use)"
            )
        self._call(region, "AttachVolume", VolumeId=volume.volume_id, InstanceId=instance.instance_id, Device=device)
        return dataclasses.replace(current, state="in-use", attached_to=(*current.attached_to, instance.instance_id))

    def detach_volume(self, volume: CloudVolume, instance: CloudInstance) -> None:
        try:
            self._call(volume.region, "DetachVolume", VolumeId=volume.volume_id, InstanceId=instance.instance_id)
        except BackendError as exc:
            code = error_code(exc)
            # Gone, or not attached there: nothing to detach. The instance gone: its attachments went with it.
            if code in ("InvalidVolume.NotFound", "InvalidAttachment.NotFound", "InvalidInstanceID.NotFound"):
                return
            if code != "IncorrectState":
                raise
            # IncorrectState: the volume is available (attached nowhere), or still attaching.
            current = self.get_volume(volume.region, volume.volume_id)
            if current is not None and instance.instance_id in current.attached_to:
                raise
