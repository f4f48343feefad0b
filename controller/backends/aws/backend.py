"""The AWS backend: EC2 (and the Price List API for on-demand prices) through boto3.

Everything the controller knows about AWS comes from the APIs: the regions from DescribeRegions,
the sizes from DescribeInstanceTypes, where they are sold from DescribeInstanceTypeOfferings, the
image from DescribeImages. Nothing here lists regions, sizes or AMI ids.

A facade over small parts, composed as Karpenter composes its providers: the catalog (regions,
sizes, zones), pricing, boot images, compute (subnets, instances) and volumes (EBS). It makes the
clients once and hands each part what it needs; every method of the backend interface is one
delegation, those every cloud shares in ComposedBackend."""

from __future__ import annotations

import time
from collections.abc import Callable

from controller.backends.aws.catalog import Catalog, offerings
from controller.backends.aws.compute import Compute
from controller.backends.aws.images import BootImages
from controller.backends.aws.pricing import Pricing
from controller.backends.aws.sdk import KIND, AwsClients
from controller.backends.aws.volumes import Volumes
from controller.backends.composed import ComposedBackend
from controller.backends.config import AWSBackendConfig
from controller.backends.model import InstanceType, Offering


class AWSBackend(ComposedBackend):
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
        spot = self.pricing.spot(region)
        return offerings(sold, spot, self.pricing.on_demand(region), region)

    def describe(self, names: list[str], region: str | None = None) -> dict[str, InstanceType | None]:
        return self.catalog.describe(names, region or self.regions()[0])
