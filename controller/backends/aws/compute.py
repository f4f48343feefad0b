"""The instances: launch (in the zone's subnet, booting the image with the cloud-init user data,
on-demand or spot), the tagged instances of a controller in every region, and termination."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from controller.backends.aws.errors import error_code
from controller.backends.aws.sdk import KIND, AwsClients, tags_from_api, tags_to_api
from controller.backends.model import TAG_CONTROLLER, TAG_NAME, BackendError, CloudInstance, LaunchSpec

LIVE_STATES = ("pending", "running", "stopping", "stopped")


class Compute:
    def __init__(
        self,
        clients: AwsClients,
        regions: Callable[[], list[str]],  # the regions to look for instances in
        root_device: Callable[[str, str], str],  # (region, image id) -> the image's root device name
        subnet_tag: str,
    ) -> None:
        self._clients = clients
        self._regions = regions
        self._root_device = root_device
        self.subnet_tag = subnet_tag

    def subnet(self, region: str, zone: str) -> str:
        """The zone's subnet tagged with subnet_tag, else the zone's default subnet."""
        for wanted in (
            {"Name": "tag-key", "Values": [self.subnet_tag]},
            {"Name": "default-for-az", "Values": ["true"]},
        ):
            filters = [{"Name": "availability-zone", "Values": [zone]}, wanted]
            pages = self._clients.pages(region, "DescribeSubnets", Filters=filters)
            subnets = [s for page in pages for s in page["Subnets"]]
            if subnets:
                best = max(subnets, key=lambda s: (int(s.get("AvailableIpAddressCount", 0)), str(s["SubnetId"])))
                return str(best["SubnetId"])
        raise BackendError(
            f"aws {region}: no subnet in {zone}: tag one with {self.subnet_tag} or create the zone's default subnet"
        )

    def launch(self, spec: LaunchSpec) -> CloudInstance:
        offering = spec.offering
        region, zone = offering.region, offering.zone
        subnet = self.subnet(region, zone)
        root = self._root_device(region, spec.image.image)
        tags = {**spec.tags, TAG_NAME: spec.name}
        # Makes the SDK's retry of a RunInstances that timed out return the first instance instead
        # of starting a second one. The offering is part of it: a launch that moves on to the next
        # offering after a refusal must not reuse the token with other parameters.
        token = hashlib.sha256(f"{spec.name}|{offering.key}".encode()).hexdigest()  # 64 characters, AWS's most
        params: dict[str, Any] = {
            "ImageId": spec.image.image,
            "InstanceType": offering.instance_type.name,
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": subnet,
            "UserData": spec.user_data,  # boto3 base64-encodes it
            "ClientToken": token,
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags_to_api(tags)},
                {"ResourceType": "volume", "Tags": tags_to_api(tags)},
            ],
            "BlockDeviceMappings": [
                {
                    "DeviceName": root,
                    "Ebs": {"VolumeSize": spec.disk_gb, "VolumeType": "gp3", "DeleteOnTermination": True},
                }
            ],
        }
        if offering.spot:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        answer = self._clients.call(region, "RunInstances", **params)
        instances = answer.get("Instances", [])
        if not instances:
            raise BackendError(f"aws {region}: RunInstances failed: no instance in the answer")
        launched = instances[0]
        if not launched.get("Tags"):  # not every answer echoes the tags it was given
            launched = {**launched, "Tags": tags_to_api(tags)}
        return cloud_instance(region, launched)

    def instances(self, controller_tag: str) -> list[CloudInstance]:
        """The live instances tagged with the controller's tag, in every region, asked in parallel."""
        regions = self._regions()
        if not regions:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(regions))) as pool:
            per_region = list(pool.map(lambda region: self._instances_in(region, controller_tag), regions))
        return [instance for found in per_region for instance in found]

    def _instances_in(self, region: str, controller_tag: str) -> list[CloudInstance]:
        filters = [
            {"Name": f"tag:{TAG_CONTROLLER}", "Values": [controller_tag]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
        return [
            cloud_instance(region, info)
            for page in self._clients.pages(region, "DescribeInstances", Filters=filters)
            for reservation in page.get("Reservations", [])
            for info in reservation.get("Instances", [])
        ]

    def terminate(self, instance: CloudInstance) -> None:
        """Terminates the instance; one already gone is fine."""
        try:
            self._clients.call(instance.region, "TerminateInstances", InstanceIds=[instance.instance_id])
        except BackendError as exc:
            if error_code(exc) != "InvalidInstanceID.NotFound":
                raise


def cloud_instance(region: str, info: dict[str, Any]) -> CloudInstance:
    """One DescribeInstances (or RunInstances) entry as the CloudInstance the controller reads."""
    launch_time = info.get("LaunchTime")
    return CloudInstance(
        backend=KIND,
        region=region,
        zone=str((info.get("Placement") or {}).get("AvailabilityZone", "")),
        instance_id=str(info["InstanceId"]),
        instance_type=str(info.get("InstanceType", "")),
        state=str((info.get("State") or {}).get("Name", "")),
        tags=tags_from_api(info.get("Tags")),
        launched_at=launch_time.timestamp() if launch_time is not None else None,
        spot=info.get("InstanceLifecycle") == "spot",
        name=str(info["InstanceId"]),
    )
