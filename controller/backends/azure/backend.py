"""The Azure backend: VMs from Azure Resource Manager, sizes from its resource SKUs, prices from
the Retail Prices API.

A facade over small parts, composed as Karpenter composes its providers: the catalog (locations,
sizes), pricing, boot images, compute (VMs, with their network) and disks. It connects the SDK once
and hands each part the client it needs; every method of the backend interface is one delegation."""

from __future__ import annotations

import time
from collections.abc import Callable

from controller.backends.azure.catalog import Catalog, offerings
from controller.backends.azure.compute import Compute
from controller.backends.azure.disks import Disks
from controller.backends.azure.images import BootImages
from controller.backends.azure.network import Network
from controller.backends.azure.pricing import Pricing
from controller.backends.azure.sdk import connect
from controller.backends.config import AzureBackendConfig
from controller.backends.model import (
    BootImage,
    CloudInstance,
    CloudVolume,
    InstanceType,
    LaunchSpec,
    Offering,
)


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
        self._clients = connect(config)
        compute = self._clients.compute
        self.catalog = Catalog(compute, config.subscription_id, config.regions, clock, cache_ttl)
        self.pricing = Pricing(config.prices_url, config.ca_bundle, clock, cache_ttl)
        self.images = BootImages(compute.virtual_machine_images, config.images, clock, cache_ttl)
        self.compute = Compute(
            compute,
            Network(self._clients.network, config.resource_group, config.vnet_prefix),
            self.catalog.capabilities,
            config.resource_group,
            config.admin_username,
            config.ssh_public_key,
        )
        self.disks = Disks(compute, self.compute.get_vm, config.resource_group, config.subscription_id)

    def close(self) -> None:
        """Closes the clients' connections (the backend is unusable after)."""
        self._clients.close()

    def regions(self) -> list[str]:
        return self.catalog.regions()

    def offerings(self, region: str) -> list[Offering]:
        return offerings(self.catalog.sizes(region), self.pricing.region_prices(region), region)

    def describe(self, names: list[str], region: str | None = None) -> dict[str, InstanceType | None]:
        return self.catalog.describe(names, self.catalog.first_region() if region is None else region)

    def boot_image(self, instance_type: InstanceType, region: str) -> BootImage:
        return self.images.boot_image(instance_type, region)

    def launch(self, spec: LaunchSpec) -> CloudInstance:
        return self.compute.launch(spec)

    def instances(self, controller_tag: str) -> list[CloudInstance]:
        return self.compute.instances(controller_tag)

    def terminate(self, instance: CloudInstance) -> None:
        self.compute.terminate(instance)

    def create_volume(self, name: str, region: str, zone: str, size_bytes: int, tags: dict[str, str]) -> CloudVolume:
        return self.disks.create_volume(name, region, zone, size_bytes, tags)

    def get_volume(self, region: str, volume_id: str) -> CloudVolume | None:
        return self.disks.get_volume(region, volume_id)

    def attach_volume(self, volume: CloudVolume, instance: CloudInstance) -> CloudVolume:
        return self.disks.attach_volume(volume, instance)

    def detach_volume(self, volume: CloudVolume, instance: CloudInstance) -> None:
        self.disks.detach_volume(volume, instance)
