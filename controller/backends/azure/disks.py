"""Managed disks as cloud volumes: created empty (Premium SSD, in the VM's zone), read, and attached
to or detached from a VM by rewriting its data disks (the LUN tells the agent which device it is)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cmodels

from controller.backends.azure.errors import guard, not_found
from controller.backends.azure.sdk import word
from controller.backends.model import BackendError, CloudInstance, CloudVolume

GIB = 1024**3
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
# (instance, what) -> (VM name, VM model); BackendError naming `what` when the VM is gone
GetVm = Callable[[CloudInstance, str], tuple[str, cmodels.VirtualMachine]]


class Disks:
    def __init__(
        self, compute: ComputeManagementClient, get_vm: GetVm, resource_group: str, subscription_id: str
    ) -> None:
        self._compute = compute
        self._get_vm = get_vm
        self.resource_group = resource_group
        self.subscription_id = subscription_id

    def disk_ref(self, volume_id: str) -> tuple[str, str, str]:
        """(resource group, disk name, resource id) of a disk resource id or a bare disk name."""
        if volume_id.lower().startswith("/subscriptions/"):
            match = re.search(r"/resourceGroups/([^/]+)/providers/Microsoft\.Compute/disks/([^/]+)$", volume_id, re.I)
            if not match:
                raise BackendError(f'azure: "{volume_id}" is not a managed disk resource id')
            return match.group(1), match.group(2), volume_id
        rg = self.resource_group
        return (
            rg,
            volume_id,
            f"/subscriptions/{self.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{volume_id}",
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
        with guard(region, f"creating disk {name}"):
            poller = self._compute.disks.begin_create_or_update(self.resource_group, name, cmodels.Disk(body))
            disk = poller.result()
        return cloud_volume(disk, region)

    def get_volume(self, region: str, volume_id: str) -> CloudVolume | None:
        rg, name, _ = self.disk_ref(volume_id)
        try:
            with guard(region, f"reading disk {name}"):
                disk = self._compute.disks.get(rg, name)
        except BackendError as err:
            if not_found(err):
                return None
            raise
        return cloud_volume(disk, region)

    def attach_volume(self, volume: CloudVolume, instance: CloudInstance) -> CloudVolume:
        _, disk_name, disk_id = self.disk_ref(volume.volume_id)
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
        self._update_vm(instance.region, name, vm, what)
        return replace(volume, state="in-use", attached_to=(name,), lun=lun, device_serial="")

    def detach_volume(self, volume: CloudVolume, instance: CloudInstance) -> None:
        _, disk_name, disk_id = self.disk_ref(volume.volume_id)
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
        self._update_vm(instance.region, name, vm, what)

    def _update_vm(self, region: str, name: str, vm: cmodels.VirtualMachine, what: str) -> None:
        """Writes the VM back with its changed data disks and waits for ARM to finish."""
        with guard(region, what):
            self._compute.virtual_machines.begin_create_or_update(self.resource_group, name, vm).result()


def cloud_volume(disk: cmodels.Disk, region: str) -> CloudVolume:
    """A managed disk as the CloudVolume the controller reads; attached_to holds VM names."""
    props = disk.properties
    size_gb = (props.disk_size_gb if props else None) or 0
    size_bytes = (props.disk_size_bytes if props else None) or size_gb * GIB
    provisioning = word(props.provisioning_state if props else None).lower()
    disk_state = word(props.disk_state if props else None).lower()
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


def _last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]
