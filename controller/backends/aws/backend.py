"""The AWS backend: EC2 (and the Price List API for on-demand prices) through boto3.

Everything the controller knows about AWS comes from the APIs: the regions from DescribeRegions,
the sizes from DescribeInstanceTypes, where they are sold from DescribeInstanceTypeOfferings, the
image from DescribeImages. Nothing here lists regions, sizes or AMI ids.

A facade over small parts, composed as Karpenter composes its providers: the catalog (regions,
sizes, zones), pricing, boot images, compute (subnets, instances) and volumes (EBS). It makes the
clients once and hands each part what it needs; every method of the backend interface is one
delegation."""

from __future__ import annotations

import time
from collections.abc import Callable

from controller.backends.aws.catalog import Catalog, offerings
from controller.backends.aws.compute import Compute
from controller.backends.aws.images import BootImages
from controller.backends.aws.pricing import Pricing
from controller.backends.aws.sdk import KIND, AwsClients
from controller.backends.aws.volumes import Volumes
from controller.backends.config import AWSBackendConfig
from controller.backends.model import BootImage, CloudInstance, CloudVolume, InstanceType, LaunchSpec, Offering


class AWSBackend:
    """One `type: aws` entry of the config: an account (credentials, endpoint), its regions."""

    kind = KIND

    def __init__(
        self, config: AWSBackendConfig, clock: Callable[[], float] = time.time, cache_ttl: float = 3600.0
    ) -> None:
        self.config = config
        self._clients = AwsClients(config)
        # The SDK session, for request hooks registered before the first call (tests, benchmarks).
        self.session = self._clients.session
        self.catalog = Catalog(self._clients, config.regions, config.pricing_region, clock, cache_ttl)
        self.pricing = Pricing(self._clients, config.pricing_region, clock, cache_ttl)
        self.images = BootImages(self._clients, config.image, clock, cache_ttl)
        self.compute = Compute(self._clients, self.catalog.regions, self.images.root_device, config.subnet_tag)
        self.volumes = Volumes(self._clients)

    def regions(self) -> list[str]:
        return self.catalog.regions()

    def offerings(self, region: str) -> list[Offering]:
        sold = self.catalog.sold(region)
        return offerings(sold, self.pricing.on_demand(region), self.pricing.spot(region), region)

    def describe(self, names: list[str], region: str | None = None) -> dict[str, InstanceType | None]:
        return self.catalog.describe(names, region or self.regions()[0])

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
