"""The VMs' network: one virtual network per region, `{vnet_prefix}-{region}` with a subnet
`default`, created when missing, and one NIC per VM without a public IP (deleted with the VM)."""

from __future__ import annotations

import threading
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as nmodels

from controller.backends.azure.errors import guard
from controller.backends.model import BackendConfigError, BackendError

VNET_PREFIX = "10.0.0.0/16"


class Network:
    def __init__(self, network: NetworkManagementClient, resource_group: str, vnet_prefix: str) -> None:
        self._network = network
        self.resource_group = resource_group
        self.vnet_prefix = vnet_prefix
        self._lock = threading.Lock()
        self._subnets: dict[str, str] = {}  # region -> subnet id, ensured in this process

    def subnet_id(self, region: str) -> str:
        """The region's subnet, with its virtual network created when missing (once a process)."""
        with self._lock:
            known = self._subnets.get(region.lower())
        if known:
            return known
        rg = self.resource_group
        vnet_name = f"{self.vnet_prefix}-{region}"
        subnet_id = ""
        with guard(region, f"ensuring virtual network {vnet_name}"):
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

    def create_nic(self, region: str, name: str, tags: dict[str, str], accelerated: bool) -> str:
        """A NIC in the region's subnet (the network ensured first); its resource id."""
        subnet_id = self.subnet_id(region)
        body: dict[str, Any] = {
            "location": region,
            "tags": dict(tags),
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
                "enableAcceleratedNetworking": accelerated,
            },
        }
        with guard(region, f"creating NIC {name}"):
            nic = self._network.network_interfaces.begin_create_or_update(
                self.resource_group, name, nmodels.NetworkInterface(body)
            ).result()
            return nic.id or ""

    def delete_nic(self, region: str, name: str) -> None:
        """Deletes a NIC a failed launch left; one still held by a VM being deleted goes with it."""
        try:
            with guard(region, f"deleting NIC {name}"):
                self._network.network_interfaces.begin_delete(self.resource_group, name).result()
        except BackendError:
            pass  # still held by the VM being deleted, which takes it along (deleteOption Delete)
