"""The VMs: launch (NIC, then the VM that boots the image with the cloud-init user data), the
tagged VMs of a controller, termination, and the clean-up after a launch that failed.

The VMs live in one resource group; a VM's NIC and OS disk are deleted with it (deleteOption)."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable
from typing import Any

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cmodels
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.backends.azure.catalog import truthy
from controller.backends.azure.errors import guard, not_found
from controller.backends.azure.images import urn_parts
from controller.backends.azure.network import Network
from controller.backends.azure.sdk import word
from controller.backends.model import TAG_CONTROLLER, BackendError, CloudInstance, LaunchSpec

CUSTOM_DATA_MAX = 65535  # bytes before base64, as the VM API documents for osProfile.customData
LAUNCH_WAIT_S = 1800.0
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


class Compute:
    def __init__(
        self,
        compute: ComputeManagementClient,
        network: Network,
        capabilities: Callable[[str, str], dict[str, str]],  # (region, size) -> the size's SKU capabilities
        resource_group: str,
        admin_username: str,
        ssh_public_key: str | None,
    ) -> None:
        self._compute = compute
        self._network = network
        self._capabilities = capabilities
        self.resource_group = resource_group
        self.admin_username = admin_username
        self._lock = threading.Lock()
        self._ssh_key = ssh_public_key

    def public_key(self) -> str:
        """The configured key, else a throwaway one: Azure wants a key when passwords are off."""
        with self._lock:
            if self._ssh_key is None:
                key = Ed25519PrivateKey.generate().public_key()
                self._ssh_key = key.public_bytes(
                    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
                ).decode()
            return self._ssh_key

    def launch(self, spec: LaunchSpec) -> CloudInstance:
        offering = spec.offering
        region = offering.region
        data = spec.user_data.encode()
        if len(data) > CUSTOM_DATA_MAX:
            raise BackendError(
                f"azure {region}: creating VM {spec.name} failed: user data is {len(data)} bytes, "
                f"Azure takes at most {CUSTOM_DATA_MAX}"
            )
        image = urn_parts(spec.image.image)
        caps = self._capabilities(region, offering.instance_type.name)
        nic_name = f"{spec.name}-nic"
        nic_id = self._network.create_nic(
            region, nic_name, spec.tags, accelerated=truthy(caps.get("AcceleratedNetworkingEnabled"))
        )
        body = self.vm_body(spec, image, caps, data, nic_id)
        accepted = False
        try:
            with guard(region, f"creating VM {spec.name}"):
                poller = self._compute.virtual_machines.begin_create_or_update(
                    self.resource_group, spec.name, cmodels.VirtualMachine(body)
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
        return cloud_instance(vm, fallback_name=spec.name)

    def vm_body(
        self, spec: LaunchSpec, image: tuple[str, str, str, str], caps: dict[str, str], data: bytes, nic_id: str
    ) -> dict[str, Any]:
        """The VM's create request: the size, the image and its disk controller, cloud-init, the NIC."""
        offering = spec.offering
        publisher, offer, sku, version = image
        admin = self.admin_username
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
            "hardwareProfile": {"vmSize": offering.instance_type.name},
            "storageProfile": storage,
            "osProfile": {
                "computerName": computer_name(spec.name),
                "adminUsername": admin,
                "customData": base64.b64encode(data).decode(),
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "ssh": {"publicKeys": [{"path": key_path, "keyData": self.public_key()}]},
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
        body: dict[str, Any] = {"location": offering.region, "tags": dict(spec.tags), "properties": properties}
        if offering.zone:
            body["zones"] = [offering.zone]
        return body

    def _clean_up_launch(self, region: str, vm_name: str, nic_name: str, vm_exists: bool) -> None:
        """After a failed launch: the failed VM (its NIC and disk go with it), then the NIC."""
        if vm_exists:  # accepted, then failed (allocation): a Failed VM holds the NIC
            try:
                with guard(region, f"deleting failed VM {vm_name}"):
                    self._compute.virtual_machines.begin_delete(self.resource_group, vm_name, polling=False)
            except BackendError:
                pass  # tagged: instances() finds it and the reconciler deletes it
        self._network.delete_nic(region, nic_name)

    def instances(self, controller_tag: str) -> list[CloudInstance]:
        found: list[CloudInstance] = []
        with guard(None, f"listing VMs in resource group {self.resource_group}"):
            for vm in self._compute.virtual_machines.list(self.resource_group):
                tags = vm.tags or {}
                value = tags.get(TAG_CONTROLLER)
                if value is None:  # tag names are case-insensitive in Azure
                    value = next((v for k, v in tags.items() if k.lower() == TAG_CONTROLLER.lower()), None)
                if value == controller_tag:
                    found.append(cloud_instance(vm))
        return found

    def vm_name(self, instance: CloudInstance) -> str:
        """The VM's name (its handle in ARM); found by vmId when the instance lacks it; "" when gone."""
        if instance.name:
            return instance.name
        with guard(instance.region, f"finding VM {instance.instance_id}"):
            for vm in self._compute.virtual_machines.list(self.resource_group):
                if vm.properties and vm.properties.vm_id == instance.instance_id and vm.name:
                    return vm.name
        return ""

    def get_vm(self, instance: CloudInstance, what: str) -> tuple[str, cmodels.VirtualMachine]:
        """(name, model) of the instance's VM, for a change described by `what`."""
        name = self.vm_name(instance)
        if not name:
            raise BackendError(f"azure {instance.region}: {what} failed: VM {instance.instance_id} not found")
        with guard(instance.region, what):
            return name, self._compute.virtual_machines.get(self.resource_group, name)

    def terminate(self, instance: CloudInstance) -> None:
        name = self.vm_name(instance)
        if not name:
            return  # no VM with that vmId: already gone
        try:
            with guard(instance.region, f"deleting VM {name}"):
                # Accepted is enough: the VM reads Deleting until it is gone, its NIC and OS disk too.
                self._compute.virtual_machines.begin_delete(self.resource_group, name, polling=False)
        except BackendError as err:
            if not_found(err):
                return
            raise


def cloud_instance(vm: cmodels.VirtualMachine, fallback_name: str = "") -> CloudInstance:
    """A VM as the CloudInstance the reconciler reads."""
    props = vm.properties
    state = word(props.provisioning_state if props else None)
    created = props.time_created if props else None
    priority = word(props.priority if props else None)
    size = word(props.hardware_profile.vm_size if props and props.hardware_profile else None)
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


def computer_name(name: str) -> str:
    """A Linux computer name: letters, digits, '-' and '.', at most 64 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9.-]", "-", name)[:64].strip("-.")
    return cleaned or "dstack"
