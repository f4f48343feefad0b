"""EBS volumes as cloud volumes: created empty (gp3, in a zone), read, and attached to or detached
from an instance at the first free device name (/dev/sdf..p)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from controller.backends.aws.errors import error_code
from controller.backends.aws.sdk import KIND, AwsClients, tags_to_api
from controller.backends.model import TAG_NAME, BackendError, CloudInstance, CloudVolume

DEVICE_NAMES = tuple(f"/dev/sd{letter}" for letter in "fghijklmnop")  # for attached EBS volumes


class Volumes:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def create_volume(self, name: str, region: str, zone: str, size_bytes: int, tags: dict[str, str]) -> CloudVolume:
        answer = self._clients.call(
            region,
            "CreateVolume",
            AvailabilityZone=zone,
            Size=max(1, math.ceil(size_bytes / 2**30)),
            VolumeType="gp3",
            TagSpecifications=[{"ResourceType": "volume", "Tags": tags_to_api({**tags, TAG_NAME: name})}],
        )
        return cloud_volume(region, answer)

    def get_volume(self, region: str, volume_id: str) -> CloudVolume | None:
        try:
            volumes = self._clients.call(region, "DescribeVolumes", VolumeIds=[volume_id]).get("Volumes", [])
        except BackendError as exc:
            if error_code(exc) == "InvalidVolume.NotFound":
                return None
            raise
        return cloud_volume(region, volumes[0]) if volumes else None

    def attach_volume(self, volume: CloudVolume, instance: CloudInstance) -> CloudVolume:
        region = volume.region
        current = self.get_volume(region, volume.volume_id)
        if current is None:
            raise BackendError(f"aws {region}: volume {volume.volume_id} not found")
        if instance.instance_id in current.attached_to:
            return current
        reservations = self._clients.call(region, "DescribeInstances", InstanceIds=[instance.instance_id]).get(
            "Reservations", []
        )
        infos = [info for r in reservations for info in r.get("Instances", [])]
        if not infos:
            raise BackendError(f"aws {region}: instance {instance.instance_id} not found")
        used = {device_letter(str(m.get("DeviceName", ""))) for m in infos[0].get("BlockDeviceMappings") or []}
        if infos[0].get("RootDeviceName"):
            used.add(device_letter(str(infos[0]["RootDeviceName"])))
        device = next((d for d in DEVICE_NAMES if device_letter(d) not in used), None)
        if device is None:
            raise BackendError(
                f"aws {region}: no free device name on {instance.instance_id} "
                f"({DEVICE_NAMES[0]}..{DEVICE_NAMES[-1]} are in use)"
            )
        self._clients.call(
            region, "AttachVolume", VolumeId=volume.volume_id, InstanceId=instance.instance_id, Device=device
        )
        return dataclasses.replace(current, state="in-use", attached_to=(*current.attached_to, instance.instance_id))

    def detach_volume(self, volume: CloudVolume, instance: CloudInstance) -> None:
        try:
            self._clients.call(
                volume.region, "DetachVolume", VolumeId=volume.volume_id, InstanceId=instance.instance_id
            )
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


def cloud_volume(region: str, info: dict[str, Any]) -> CloudVolume:
    """One DescribeVolumes (or CreateVolume) answer as the CloudVolume the controller reads."""
    volume_id = str(info["VolumeId"])
    return CloudVolume(
        backend=KIND,
        region=region,
        zone=str(info.get("AvailabilityZone", "")),
        volume_id=volume_id,
        size_bytes=int(info.get("Size", 0)) * 2**30,
        state=str(info.get("State", "")),
        attached_to=tuple(str(a["InstanceId"]) for a in info.get("Attachments") or [] if a.get("State") != "detached"),
        device_serial=volume_id.replace("-", "", 1),  # what the NVMe device reports on Nitro
    )


def device_letter(device: str) -> str:
    """/dev/sdf, /dev/xvdf and sdf name the same slot on EC2: its letter."""
    name = device.rsplit("/", 1)[-1]
    for prefix in ("xvd", "sd"):
        if name.startswith(prefix):
            return name[len(prefix) :][:1]
    return name
