"""The part of the backend interface every cloud answers the same way: a facade composed of parts
(Karpenter's providers), where booting images, running instances and keeping volumes are each one
delegation to the part that does the job. aws/backend.py and azure/backend.py build the parts;
what differs between clouds (regions, sizes, prices) stays in their own facades."""

from __future__ import annotations

from typing import Protocol

from controller.backends.model import BootImage, CloudInstance, CloudVolume, InstanceType, LaunchSpec


class ImagesPart(Protocol):
    def boot_image(self, instance_type: InstanceType, region: str) -> BootImage: ...


class ComputePart(Protocol):
    def launch(self, spec: LaunchSpec) -> CloudInstance: ...

    def instances(self, controller_tag: str) -> list[CloudInstance]: ...

    def terminate(self, instance: CloudInstance) -> None: ...


class VolumesPart(Protocol):
    def create_volume(
        self, name: str, region: str, zone: str, size_bytes: int, tags: dict[str, str]
    ) -> CloudVolume: ...

    def get_volume(self, region: str, volume_id: str) -> CloudVolume | None: ...

    def attach_volume(self, volume: CloudVolume, instance: CloudInstance) -> CloudVolume: ...

    def detach_volume(self, volume: CloudVolume, instance: CloudInstance) -> None: ...


class ComposedBackend:
    """Images, instances and volumes of a backend, delegated to the parts its __init__ sets."""

    images: ImagesPart
    compute: ComputePart
    volumes: VolumesPart

    def boot_image(self, instance_type: InstanceType, region: str) -> BootImage:
        return self.images.boot_image(instance_type, region)

    def launch(self, spec: LaunchSpec) -> CloudInstance:
        return self.compute.launch(spec)

    def instances(self, controller_tag: str) -> list[CloudInstance]:
        return self.compute.instances(controller_tag)

    def terminate(self, instance: CloudInstance) -> None:
        self.compute.terminate(instance)

    def create_volume(self, name: str, region: str, zone: str, size_bytes: int, tags: dict[str, str]) -> CloudVolume:
        return self.volumes.create_volume(name, region, zone, size_bytes, tags)

    def get_volume(self, region: str, volume_id: str) -> CloudVolume | None:
        return self.volumes.get_volume(region, volume_id)

    def attach_volume(self, volume: CloudVolume, instance: CloudInstance) -> CloudVolume:
        return self.volumes.attach_volume(volume, instance)

    def detach_volume(self, volume: CloudVolume, instance: CloudInstance) -> None:
        self.volumes.detach_volume(volume, instance)
