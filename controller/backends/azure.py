"""The Azure backend: VMs from Azure Resource Manager, sizes from its resource SKUs, prices from
the Retail Prices API.

Everything comes from the APIs: regions from the subscription's locations, sizes and their zones,
architecture, Hyper-V generations and disk controllers from Microsoft.Compute/skus. The VMs live in
one resource group, in a per-region virtual network `{vnet_prefix}-{region}` (subnet `default`)
that is created when missing; each VM gets a NIC without a public IP, deleted with the VM.

Only this module imports the Azure SDK (azure-identity, azure-mgmt-compute >= 38 for its typed
request bodies and models, azure-mgmt-network). The subscription's locations are read with a
plain ARM GET through the compute client's pipeline (same credential, retries, endpoint): the
SubscriptionClient left azure-mgmt-resource in 25.0 for a package of its own.
"""

from __future__ import annotations

import base64
import json
import math
import re
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cmodels
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as nmodels
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.backends.azure_images import PublishedImage, find_published, parse_urn
from controller.backends.config import AzureBackendConfig, AzureClientCreds
from controller.backends.model import (
    TAG_CONTROLLER,
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

DEFAULT_PRICES_URL = "https://prices.azure.com/api/retail/prices"
LOCATIONS_API_VERSION = "2022-12-01"
GIB = 1024**3
MIB = 1024**2

# ARM error codes that mean "no capacity or no quota for this offering now": block it, try the next.
CAPACITY_CODES = frozenset(
    {
        "SkuNotAvailable",
        "ZonalAllocationFailed",
        "AllocationFailed",
        "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest",
        "OperationNotAllowed",  # what ARM answers when the cores quota would be exceeded
        "QuotaExceeded",
    }
)
# ARM error codes an operator fixes in the configuration or the subscription.
CONFIG_CODES = frozenset(
    {
        "AuthenticationFailed",
        "AuthorizationFailed",
        "LinkedAuthorizationFailed",
        "InvalidAuthenticationToken",
        "InvalidAuthenticationTokenTenant",
        "ExpiredAuthenticationToken",
        "SubscriptionNotFound",
        "InvalidSubscriptionId",
        "ResourceGroupNotFound",
        "MissingSubscriptionRegistration",
    }
)
# provisioningState -> CloudInstance.state
VM_STATES = {
    "creating": "pending",
    "updating": "running",
    "migrating": "running",
    "succeeded": "running",
    "deleting": "deleting",
    "failed": "failed",
    "canceled": "failed",
}
DISK_STATES = {
    "unattached": "available",
    "attached": "in-use",
    "reserved": "in-use",
    "frozen": "in-use",
    "activesas": "in-use",
    "activesasfrozen": "in-use",
    "readytoupload": "creating",
    "activeupload": "creating",
}
ARCHES = {"x64": "amd64", "arm64": "arm64"}
CUSTOM_DATA_MAX = 65535  # bytes before base64, as the VM API documents for osProfile.customData
PRICE_PAGES_MAX = 500  # the Retail Prices API answers 100 items a page; a region's VMs fit well within
VNET_PREFIX = "10.0.0.0/16"
LAUNCH_WAIT_S = 1800.0


@dataclass(frozen=True)
class _Size:
    """One VM size as the region's SKU listing describes it."""

    itype: InstanceType
    zones: tuple[str, ...]  # usable zones (restricted ones removed); () for a region without zones
    capabilities: dict[str, str]


@dataclass
class _Cached:
    expires: float  # clock time
    value: Any


def _text(value: object) -> str:
    """A model field as its wire string: the SDK's enums print as Class.MEMBER, their value is the word."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _capability_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _number(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def _parse_urn(urn: str) -> tuple[str, str, str, str]:
    parts = parse_urn(urn)
    if parts is None:
        raise BackendConfigError(f'azure: image "{urn}" is not a URN publisher:offer:sku:version')
    return parts


def _computer_name(name: str) -> str:
    """A Linux computer name: letters, digits, '-' and '.', at most 64 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9.-]", "-", name)[:64].strip("-.")
    return cleaned or "dstack"


def _last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def _error_code(err: HttpResponseError) -> str:
    if err.error is not None and err.error.code:
        return str(err.error.code)
    response = err.response
    if response is not None:
        try:
            body = json.loads(response.text())
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and error.get("code"):
                return str(error["code"])
        except (ValueError, AttributeError):
            pass
    return str(err.status_code or "") or type(err).__name__


def _error_message(err: AzureError) -> str:
    if isinstance(err, HttpResponseError) and err.error is not None and err.error.message:
        return _one_line(str(err.error.message))
    return _one_line(str(err.message if getattr(err, "message", None) else err))


class AzureBackend:
    """One `type: azure` entry of the config: a subscription, a resource group, its regions."""

    kind = "azure"

    def __init__(
        self,
        config: AzureBackendConfig,
        clock: Callable[[], float] = time.time,
        cache_ttl: float = 3600.0,
    ) -> None:
        self.config = config
        self._clock = clock
        self._ttl = cache_ttl
        self._lock = threading.Lock()
        self._regions: _Cached | None = None
        self._skus: dict[str, _Cached] = {}
        self._prices: dict[str, _Cached] = {}
        self._images: dict[str, _Cached] = {}  # "region|urn" -> PublishedImage
        self._subnets: dict[str, str] = {}  # region -> subnet id, ensured in this process
        self._ssh_key: str | None = config.ssh_public_key
        transport: dict[str, Any] = {}
        if config.ca_bundle:
            transport["connection_verify"] = config.ca_bundle
        try:
            self._credential = self._make_credential(config, transport)
        except ValueError as err:  # a malformed authority_host
            raise BackendConfigError(f"azure: credentials: {_one_line(str(err))}") from None
        clients: dict[str, Any] = dict(transport)
        if config.base_url:
            base = config.base_url.rstrip("/")
            clients["base_url"] = base
            clients["credential_scopes"] = [base + "/.default"]
        self._compute = ComputeManagementClient(self._credential, config.subscription_id, **clients)
        self._network = NetworkManagementClient(self._credential, config.subscription_id, **clients)

    @staticmethod
    def _make_credential(config: AzureBackendConfig, transport: dict[str, Any]) -> TokenCredential:
        creds = config.creds
        if isinstance(creds, AzureClientCreds):
            kwargs: dict[str, Any] = dict(transport)
            if creds.authority_host:
                # A sovereign cloud or a loopback server: no instance discovery at Microsoft's host.
                kwargs["authority"] = creds.authority_host
                kwargs["disable_instance_discovery"] = True
            return ClientSecretCredential(config.tenant_id, creds.client_id, creds.client_secret, **kwargs)
        return DefaultAzureCredential(**transport)

    def close(self) -> None:
        """Closes the clients' connections (the backend is unusable after)."""
        self._compute.close()
        self._network.close()
        close = getattr(self._credential, "close", None)
        if callable(close):
            close()

    # ---- errors

    @staticmethod
    def _where(region: str | None) -> str:
        return f"azure {region}" if region else "azure"

    @contextmanager
    def _guard(self, region: str | None, what: str) -> Iterator[None]:
        """Turns whatever the SDK raises into one BackendError sentence."""
        try:
            yield
        except BackendError:
            raise
        except ClientAuthenticationError as err:  # Entra refused the credentials, or ARM the token
            code = str(err.error.code) if err.error is not None and err.error.code else "authentication"
            raise BackendConfigError(f"{self._where(region)}: {what} failed: {code}: {_error_message(err)}") from err
        except HttpResponseError as err:
            code = _error_code(err)
            sentence = f"{self._where(region)}: {what} failed: {code}: {_error_message(err)}"
            if code in CAPACITY_CODES:
                raise CapacityError(sentence) from err
            if code in CONFIG_CODES:
                raise BackendConfigError(sentence) from err
            raise BackendError(sentence) from err
        except AzureError as err:
            raise BackendError(f"{self._where(region)}: {what} failed: {_error_message(err)}") from err
        except ValueError as err:  # msal's answer to an authority it cannot discover
            raise BackendConfigError(f"{self._where(region)}: {what} failed: {_one_line(str(err))}") from err

    # ---- regions

    def regions(self) -> list[str]:
        with self._lock:
            cached = self._regions
        if cached is None or self._clock() >= cached.expires:
            discovered = self._list_locations()
            cached = _Cached(self._clock() + self._ttl, discovered)
            with self._lock:
                self._regions = cached
        known: list[str] = cached.value
        return narrow_regions(
            self.config.regions,
            known,
            lambda unknown: (
                f"azure: region {', '.join(unknown)} is not a region of subscription "
                f"{self.config.subscription_id}; it has: {', '.join(sorted(known))}"
            ),
        )

    def _list_locations(self) -> list[str]:
        path = f"/subscriptions/{urllib.parse.quote(self.config.subscription_id)}/locations"
        request: HttpRequest | None = HttpRequest("GET", path, params={"api-version": LOCATIONS_API_VERSION})
        names: list[str] = []
        pages = 0
        with self._guard(None, "listing the subscription's locations"):
            while request is not None and pages < 100:
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

    # ---- sizes and offerings

    def _sizes(self, region: str) -> dict[str, _Size]:
        """The region's VM sizes by lower-case name (cached with the TTL)."""
        key = region.lower()
        with self._lock:
            cached = self._skus.get(key)
        if cached is not None and self._clock() < cached.expires:
            sizes: dict[str, _Size] = cached.value
            return sizes
        sizes = {}
        with self._guard(region, "listing VM sizes"):
            for sku in self._compute.resource_skus.list(filter=f"location eq '{region}'"):
                if _text(sku.resource_type).lower() != "virtualmachines" or not sku.name:
                    continue
                size = self._size(sku, region)
                if size is not None:
                    sizes[sku.name.lower()] = size
        with self._lock:
            self._skus[key] = _Cached(self._clock() + self._ttl, sizes)
        return sizes

    def _size(self, sku: cmodels.ResourceSku, region: str) -> _Size | None:
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
            where = restriction.restriction_info
            restricted = (where.locations if where else None) or restriction.values_property or []
            if restricted and region_l not in [loc.lower() for loc in restricted]:
                continue
            kind = _text(restriction.type).lower()
            if kind == "location":
                return None  # NotAvailableForSubscription (or QuotaId): not deployable here at all
            if kind == "zone":
                zones.difference_update((where.zones if where else None) or [])
                if not zones:
                    return None
        caps = {c.name: c.value or "" for c in sku.capabilities or [] if c.name}
        return _Size(self._instance_type(name, sku.family or "", caps), tuple(sorted(zones)), caps)

    @staticmethod
    def _instance_type(name: str, family: str, caps: dict[str, str]) -> InstanceType:
        raw_arch = caps.get("CpuArchitectureType", "")
        arch = ARCHES.get(raw_arch.lower(), "")
        generations = _capability_list(caps.get("HyperVGenerations", "")) or ("V1",)
        generations = tuple(g.upper() for g in generations)
        controllers = _capability_list(caps["DiskControllerTypes"]) if "DiskControllerTypes" in caps else ("SCSI",)
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
            spot=_truthy(caps.get("LowPriorityCapable")),
            hyperv_generations=generations,
            disk_controllers=controllers,
            family=family,
            unsupported=unsupported,
        )

    def offerings(self, region: str) -> list[Offering]:
        sizes = self._sizes(region)
        prices = self._region_prices(region)
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

    def describe(self, names: list[str], region: str | None = None) -> dict[str, InstanceType | None]:
        if region is None:
            regions = self.regions()
            if not regions:
                raise BackendConfigError(f"azure: subscription {self.config.subscription_id} has no regions")
            region = regions[0]
        where = region
        sizes = self._sizes(where)
        found: dict[str, InstanceType | None] = {}
        for name in names:
            size = sizes.get(name.lower())
            found[name] = size.itype if size is not None else None
        return found

    # ---- prices

    def _region_prices(self, region: str) -> dict[str, tuple[float | None, float | None]]:
        key = region.lower()
        with self._lock:
            cached = self._prices.get(key)
        now = self._clock()
        if cached is not None and now < cached.expires:
            prices: dict[str, tuple[float | None, float | None]] = cached.value
            return prices
        try:
            prices = self._fetch_prices(region)
            expires = now + self._ttl
        except Exception:  # prices are a ranking hint: never an offerings() failure
            prices = {}
            expires = now + min(self._ttl, 300.0)
        with self._lock:
            self._prices[key] = _Cached(expires, prices)
        return prices

    def _fetch_prices(self, region: str) -> dict[str, tuple[float | None, float | None]]:
        base = self.config.prices_url or DEFAULT_PRICES_URL
        query = f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and priceType eq 'Consumption'"
        url: str | None = base + ("&" if "?" in base else "?") + "$filter=" + urllib.parse.quote(query, safe="")
        origin = self._origin(base)
        context = ssl.create_default_context(cafile=self.config.ca_bundle) if self.config.ca_bundle else None
        best: dict[str, dict[bool, tuple[tuple[bool, str], float]]] = {}
        pages = 0
        while url and pages < PRICE_PAGES_MAX:
            pages += 1
            with urllib.request.urlopen(url, timeout=30, context=context) as response:
                body = json.loads(response.read())
            for item in body.get("Items") or []:
                self._take_price(item, best)
            next_link = body.get("NextPageLink")
            # Only ever follow pages on the host that was configured.
            url = next_link if next_link and self._origin(next_link) == origin else None
        return {
            sku: (markets[False][1] if False in markets else None, markets[True][1] if True in markets else None)
            for sku, markets in best.items()
        }

    @staticmethod
    def _origin(url: str) -> tuple[str, str, int]:
        parsed = urllib.parse.urlsplit(url)
        scheme = parsed.scheme.lower()
        return scheme, (parsed.hostname or "").lower(), parsed.port or (443 if scheme == "https" else 80)

    @staticmethod
    def _take_price(item: dict[str, Any], best: dict[str, dict[bool, tuple[tuple[bool, str], float]]]) -> None:
        sku = str(item.get("armSkuName") or "").lower()
        product = str(item.get("productName") or "")
        meter = f"{item.get('meterName') or ''} {item.get('skuName') or ''}"
        if not sku or "windows" in product.lower() or "low priority" in meter.lower():
            return
        if str(item.get("unitOfMeasure") or "1 Hour").strip().lower() != "1 hour":
            return
        if item.get("type") not in (None, "Consumption"):
            return
        try:
            price = float(str(item.get("retailPrice", item.get("unitPrice"))))
        except ValueError:
            return
        spot = "spot" in meter.lower()
        rank = (bool(item.get("isPrimaryMeterRegion", True)), str(item.get("effectiveStartDate") or ""))
        markets = best.setdefault(sku, {})
        if spot not in markets or rank > markets[spot][0]:
            markets[spot] = (rank, price)

    # ---- images

    def boot_image(self, instance_type: InstanceType, region: str) -> BootImage:
        images = self.config.images
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
        urn = str(getattr(images, key))
        # The Gen2 images boot with either controller; sizes without SCSI (Dsv6, Esv6) need NVMe.
        controller = "NVMe" if "NVMe" in controllers and "SCSI" not in controllers else "SCSI"
        if controller == "NVMe" and generation != "V2":
            raise BackendError(f"azure {region}: {instance_type.name} cannot boot: NVMe needs a Gen2 image")
        published = self._published(region, urn)
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

    def _published(self, region: str, urn: str) -> PublishedImage | None:
        """The image as the Virtual Machine Images API describes it, cached for the TTL when found."""
        key = f"{region.lower()}|{urn.lower()}"
        with self._lock:
            cached = self._images.get(key)
        if cached is not None and self._clock() < cached.expires:
            found: PublishedImage = cached.value
            return found
        with self._guard(region, f"looking up image {urn}"):
            published = find_published(self._compute.virtual_machine_images, region, urn)
        if published is not None:
            with self._lock:
                self._images[key] = _Cached(self._clock() + self._ttl, published)
        return published

    # ---- launch

    def _public_key(self) -> str:
        """The configured key, else a throwaway one: Azure wants a key when passwords are off."""
        with self._lock:
            if self._ssh_key is None:
                key = Ed25519PrivateKey.generate().public_key()
                self._ssh_key = key.public_bytes(
                    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
                ).decode()
            return self._ssh_key

    def _subnet_id(self, region: str) -> str:
        """The region's subnet, with its virtual network created when missing (once a process)."""
        with self._lock:
            known = self._subnets.get(region.lower())
        if known:
            return known
        rg = self.config.resource_group
        vnet_name = f"{self.config.vnet_prefix}-{region}"
        subnet_id = ""
        with self._guard(region, f"ensuring virtual network {vnet_name}"):
            try:
                vnet = self._network.virtual_networks.get(rg, vnet_name)
            except ResourceNotFoundError:
                body: dict[str, Any] = {
                    "location": region,
                    "properties": {
                        "addressSpace": {"addressPrefixes": [VNET_PREFIX]},
                        "subnets": [
                            {
                                "name": "default",
                                # No public IPs: the VMs dial out (controller, packages) through
                                # default outbound access, which new subnets no longer get unasked.
                                "properties": {"addressPrefix": VNET_PREFIX, "defaultOutboundAccess": True},
                            }
                        ],
                    },
                }
                vnet = self._network.virtual_networks.begin_create_or_update(
                    rg, vnet_name, nmodels.VirtualNetwork(body)
                ).result()
            subnets = vnet.properties.subnets if vnet.properties else None
            for subnet in subnets or []:
                if (subnet.name or "").lower() == "default" and subnet.id:
                    subnet_id = subnet.id
        if not subnet_id:
            raise BackendConfigError(
                f"azure {region}: virtual network {vnet_name} in resource group {rg} has no subnet named default"
            )
        with self._lock:
            self._subnets[region.lower()] = subnet_id
        return subnet_id

    def launch(self, spec: LaunchSpec) -> CloudInstance:
        offering = spec.offering
        region = offering.region
        itype = offering.instance_type
        rg = self.config.resource_group
        data = spec.user_data.encode()
        if len(data) > CUSTOM_DATA_MAX:
            raise BackendError(
                f"azure {region}: creating VM {spec.name} failed: user data is {len(data)} bytes, "
                f"Azure takes at most {CUSTOM_DATA_MAX}"
            )
        publisher, offer, sku, version = _parse_urn(spec.image.image)
        caps = self._capabilities(region, itype.name)
        subnet_id = self._subnet_id(region)
        nic_name = f"{spec.name}-nic"
        nic_body: dict[str, Any] = {
            "location": region,
            "tags": dict(spec.tags),
            "properties": {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "properties": {
                            "subnet": {"id": subnet_id},
                            "privateIPAllocationMethod": "Dynamic",
                            "primary": True,
                        },
                    }
                ],
                "enableAcceleratedNetworking": _truthy(caps.get("AcceleratedNetworkingEnabled")),
            },
        }
        with self._guard(region, f"creating NIC {nic_name}"):
            nic = self._network.network_interfaces.begin_create_or_update(
                rg, nic_name, nmodels.NetworkInterface(nic_body)
            ).result()
            nic_id = nic.id or ""

        admin = self.config.admin_username
        # Premium SSD where the size takes it; the API refuses Premium_LRS on sizes without PremiumIO.
        storage_type = "StandardSSD_LRS" if caps.get("PremiumIO", "True").lower() == "false" else "Premium_LRS"
        storage: dict[str, Any] = {
            "imageReference": {"publisher": publisher, "offer": offer, "sku": sku, "version": version},
            "osDisk": {
                "createOption": "FromImage",
                "deleteOption": "Delete",
                "diskSizeGB": spec.disk_gb,
                "managedDisk": {"storageAccountType": storage_type},
            },
        }
        if spec.image.disk_controller == "NVMe":
            storage["diskControllerType"] = "NVMe"
        key_path = f"/home/{admin}/.ssh/authorized_keys"
        properties: dict[str, Any] = {
            "hardwareProfile": {"vmSize": itype.name},
            "storageProfile": storage,
            "osProfile": {
                "computerName": _computer_name(spec.name),
                "adminUsername": admin,
                "customData": base64.b64encode(data).decode(),
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "ssh": {"publicKeys": [{"path": key_path, "keyData": self._public_key()}]},
                },
            },
            "networkProfile": {
                "networkInterfaces": [{"id": nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}]
            },
        }
        if offering.spot:
            properties["priority"] = "Spot"
            properties["evictionPolicy"] = "Delete"
            properties["billingProfile"] = {"maxPrice": -1}
        body: dict[str, Any] = {"location": region, "tags": dict(spec.tags), "properties": properties}
        if offering.zone:
            body["zones"] = [offering.zone]

        accepted = False
        try:
            with self._guard(region, f"creating VM {spec.name}"):
                poller = self._compute.virtual_machines.begin_create_or_update(
                    rg, spec.name, cmodels.VirtualMachine(body)
                )
                accepted = True
                poller.wait(LAUNCH_WAIT_S)
                if not poller.done():
                    raise BackendError(
                        f"azure {region}: creating VM {spec.name} failed: still provisioning after "
                        f"{int(LAUNCH_WAIT_S)} s"
                    )
                vm = poller.result()
        except BackendError:
            self._clean_up_launch(region, spec.name, nic_name, vm_exists=accepted)
            raise
        return self._instance(vm, fallback_name=spec.name)

    def _capabilities(self, region: str, size: str) -> dict[str, str]:
        found = self._sizes(region).get(size.lower())
        return found.capabilities if found is not None else {}

    def _clean_up_launch(self, region: str, vm_name: str, nic_name: str, vm_exists: bool) -> None:
        """After a failed launch: the failed VM (its NIC and disk go with it), then the NIC."""
        rg = self.config.resource_group
        if vm_exists:  # accepted, then failed (allocation): a Failed VM holds the NIC
            try:
                with self._guard(region, f"deleting failed VM {vm_name}"):
                    self._compute.virtual_machines.begin_delete(rg, vm_name, polling=False)
            except BackendError:
                pass  # tagged: instances() finds it and the reconciler deletes it
        try:
            with self._guard(region, f"deleting NIC {nic_name}"):
                self._network.network_interfaces.begin_delete(rg, nic_name).result()
        except BackendError:
            pass  # still held by the VM being deleted, which takes it along (deleteOption Delete)

    # ---- instances

    def _instance(self, vm: cmodels.VirtualMachine, fallback_name: str = "") -> CloudInstance:
        props = vm.properties
        state = _text(props.provisioning_state if props else None)
        created = props.time_created if props else None
        priority = _text(props.priority if props else None)
        size = _text(props.hardware_profile.vm_size if props and props.hardware_profile else None)
        return CloudInstance(
            backend="azure",
            region=vm.location or "",
            zone=(vm.zones or [""])[0],
            instance_id=(props.vm_id if props else None) or "",
            instance_type=size,
            state=VM_STATES.get(state.lower(), state.lower() or "pending"),
            tags=dict(vm.tags or {}),
            launched_at=created.timestamp() if created is not None else None,
            spot=priority.lower() in ("spot", "low"),
            name=vm.name or fallback_name,
        )

    def instances(self, controller_tag: str) -> list[CloudInstance]:
        found: list[CloudInstance] = []
        with self._guard(None, f"listing VMs in resource group {self.config.resource_group}"):
            for vm in self._compute.virtual_machines.list(self.config.resource_group):
                tags = vm.tags or {}
                value = tags.get(TAG_CONTROLLER)
                if value is None:  # tag names are case-insensitive in Azure
                    value = next((v for k, v in tags.items() if k.lower() == TAG_CONTROLLER.lower()), None)
                if value == controller_tag:
                    found.append(self._instance(vm))
        return found

    def _vm_name(self, instance: CloudInstance) -> str:
        if instance.name:
            return instance.name
        with self._guard(instance.region, f"finding VM {instance.instance_id}"):
            for vm in self._compute.virtual_machines.list(self.config.resource_group):
                if vm.properties and vm.properties.vm_id == instance.instance_id and vm.name:
                    return vm.name
        return ""

    def terminate(self, instance: CloudInstance) -> None:
        name = self._vm_name(instance)
        if not name:
            return  # no VM with that vmId: already gone
        try:
            with self._guard(instance.region, f"deleting VM {name}"):
                # Accepted is enough: the VM reads Deleting until it is gone, its NIC and OS disk too.
                self._compute.virtual_machines.begin_delete(self.config.resource_group, name, polling=False)
        except BackendError as err:
            if isinstance(err.__cause__, ResourceNotFoundError):
                return
            raise

    # ---- volumes

    def _disk_ref(self, volume_id: str) -> tuple[str, str, str]:
        """(resource group, disk name, resource id) of a disk resource id or a bare disk name."""
        if volume_id.lower().startswith("/subscriptions/"):
            match = re.search(r"/resourceGroups/([^/]+)/providers/Microsoft\.Compute/disks/([^/]+)$", volume_id, re.I)
            if not match:
                raise BackendError(f'azure: "{volume_id}" is not a managed disk resource id')
            return match.group(1), match.group(2), volume_id
        rg = self.config.resource_group
        return (
            rg,
            volume_id,
            (
                f"/subscriptions/{self.config.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{volume_id}"
            ),
        )

    def _volume(self, disk: cmodels.Disk, region: str) -> CloudVolume:
        props = disk.properties
        size_gb = (props.disk_size_gb if props else None) or 0
        size_bytes = (props.disk_size_bytes if props else None) or size_gb * GIB
        provisioning = _text(props.provisioning_state if props else None).lower()
        disk_state = _text(props.disk_state if props else None).lower()
        state = "creating" if provisioning in ("creating", "updating") else DISK_STATES.get(disk_state, disk_state)
        attached = (_last_segment(disk.managed_by),) if disk.managed_by else ()
        return CloudVolume(
            backend="azure",
            region=disk.location or region,
            zone=(disk.zones or [""])[0],
            volume_id=disk.id or "",
            size_bytes=int(size_bytes),
            state=state or "available",
            attached_to=attached,
        )

    def create_volume(self, name: str, region: str, zone: str, size_bytes: int, tags: dict[str, str]) -> CloudVolume:
        body: dict[str, Any] = {
            "location": region,
            "tags": dict(tags),
            "sku": {"name": "Premium_LRS"},
            "properties": {
                "creationData": {"createOption": "Empty"},
                "diskSizeGB": max(1, math.ceil(size_bytes / GIB)),
            },
        }
        if zone:
            body["zones"] = [zone]
        with self._guard(region, f"creating disk {name}"):
            poller = self._compute.disks.begin_create_or_update(self.config.resource_group, name, cmodels.Disk(body))
            disk = poller.result()
        return self._volume(disk, region)

    def get_volume(self, region: str, volume_id: str) -> CloudVolume | None:
        rg, name, _ = self._disk_ref(volume_id)
        try:
            with self._guard(region, f"reading disk {name}"):
                disk = self._compute.disks.get(rg, name)
        except BackendError as err:
            if isinstance(err.__cause__, ResourceNotFoundError):
                return None
            raise
        return self._volume(disk, region)

    def _get_vm(self, instance: CloudInstance, what: str) -> tuple[str, cmodels.VirtualMachine]:
        name = self._vm_name(instance)
        if not name:
            raise BackendError(f"azure {instance.region}: {what} failed: VM {instance.instance_id} not found")
        with self._guard(instance.region, what):
            return name, self._compute.virtual_machines.get(self.config.resource_group, name)

    def attach_volume(self, volume: CloudVolume, instance: CloudInstance) -> CloudVolume:
        _, disk_name, disk_id = self._disk_ref(volume.volume_id)
        what = f"attaching disk {disk_name} to VM {instance.name or instance.instance_id}"
        name, vm = self._get_vm(instance, what)
        storage = vm.properties.storage_profile if vm.properties else None
        if vm.properties is None or storage is None:
            raise BackendError(f"azure {instance.region}: {what} failed: the VM has no storage profile")
        disks = list(storage.data_disks or [])
        for existing in disks:
            if existing.managed_disk is not None and (existing.managed_disk.id or "").lower() == disk_id.lower():
                return replace(volume, state="in-use", attached_to=(name,), lun=existing.lun, device_serial="")
        used = {d.lun for d in disks}
        lun = next(n for n in range(len(disks) + 1) if n not in used)
        disks.append(
            cmodels.DataDisk(lun=lun, create_option="Attach", managed_disk=cmodels.ManagedDiskParameters(id=disk_id))
        )
        storage.data_disks = disks
        with self._guard(instance.region, what):
            self._compute.virtual_machines.begin_create_or_update(self.config.resource_group, name, vm).result()
        return replace(volume, state="in-use", attached_to=(name,), lun=lun, device_serial="")

    def detach_volume(self, volume: CloudVolume, instance: CloudInstance) -> None:
        _, disk_name, disk_id = self._disk_ref(volume.volume_id)
        what = f"detaching disk {disk_name} from VM {instance.name or instance.instance_id}"
        name, vm = self._get_vm(instance, what)
        storage = vm.properties.storage_profile if vm.properties else None
        if storage is None:
            return
        disks = list(storage.data_disks or [])
        kept = [d for d in disks if d.managed_disk is None or (d.managed_disk.id or "").lower() != disk_id.lower()]
        if len(kept) == len(disks):
            return  # not attached: nothing to do
        storage.data_disks = kept
        with self._guard(instance.region, what):
            self._compute.virtual_machines.begin_create_or_update(self.config.resource_group, name, vm).result()
