"""The boot image (AMI) of an instance type: the newest available image of the configured owners
whose name matches the configured pattern, for the type's architecture by the API's own filter.

No AMI id is listed here: DescribeImages is asked per region and architecture (cached), and the
image's root device name is kept for the launch's root volume."""

from __future__ import annotations

import threading
from collections.abc import Callable

from controller.backends.aws.catalog import ARCHES
from controller.backends.aws.sdk import AwsClients
from controller.backends.cache import TtlCache
from controller.backends.config import AWSImageFilter
from controller.backends.model import BackendError, BootImage, InstanceType

API_ARCH = {ours: api for api, ours in ARCHES.items()}  # our word -> the API's


class BootImages:
    def __init__(self, clients: AwsClients, image: AWSImageFilter, clock: Callable[[], float], ttl: float) -> None:
        self._clients = clients
        self.image = image
        self._images: TtlCache[BootImage] = TtlCache(clock, ttl)
        self._lock = threading.Lock()
        self._root_devices: dict[tuple[str, str], str] = {}  # (region, image id) -> root device name

    def boot_image(self, instance_type: InstanceType, region: str) -> BootImage:
        if not instance_type.arch:
            raise BackendError(f"aws {region}: {instance_type.unsupported or instance_type.name + ' cannot be booted'}")
        api_arch = API_ARCH[instance_type.arch]
        key = f"{region}|{api_arch}"
        cached = self._images.get(key)
        if cached is not None:
            return cached
        now = self._images.clock()
        owners = list(self.image.owners)
        # The name carries Canonical's word (amd64) where the API's filter needs its own (x86_64).
        pattern = self.image.name_for(instance_type.arch)
        answer = self._clients.call(
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
            self._remember_root_device(region, image.image, str(newest["RootDeviceName"]))
        return self._images.put(key, image, since=now)

    def root_device(self, region: str, image_id: str) -> str:
        """The image's root device name (/dev/sda1), from the image choice or DescribeImages."""
        with self._lock:
            known = self._root_devices.get((region, image_id))
        if known:
            return known
        images = self._clients.call(region, "DescribeImages", ImageIds=[image_id]).get("Images", [])
        if not images or not images[0].get("RootDeviceName"):
            raise BackendError(f"aws {region}: image {image_id} not found or has no root device")
        device = str(images[0]["RootDeviceName"])
        self._remember_root_device(region, image_id, device)
        return device

    def _remember_root_device(self, region: str, image_id: str, device: str) -> None:
        with self._lock:
            self._root_devices[(region, image_id)] = device
