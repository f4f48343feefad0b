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
from controller.backends.composed import ComposedBackend
from controller.backends.config import AzureBackendConfig
from controller.backends.model import InstanceType, Offering


class AzureBackend(ComposedBackend):
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
        self.volumes = Disks(compute, self.compute.get_vm, config.resource_group, config.subscription_id)

    def close(self) -> None:
        """Closes the clients' connections (the backend is unusable after)."""
        self._clients.close()

    def regions(self) -> list[str]:
        return self.catalog.regions()

    def offerings(self, region: str) -> list[Offering]:
        return offerings(self.catalog.sizes(region), self.pricing.region_prices(region), region)

    def describe(self, names: list[str], region: str | None = None) -> dict[str, InstanceType | None]:
        return self.catalog.describe(names, self.catalog.first_region() if region is None else region)
