"""What every cloud backend speaks: instance types, offerings, instances, volumes, errors.

Plain data, no SDK: the burst reconciler (controller/provisioning/), `offers` and `instance-types check`
read these, and only the package of a configured backend imports boto3 or the Azure SDK
(controller/backends/aws/, controller/backends/azure/), when that backend is first used."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from controller.placement.model import GpuInfo

# Tags (AWS) / tags (Azure) the controller puts on what it launches: the cloud's inventory, not the
# database, is the source of truth about which instances exist (a restart mid-launch finds them).
TAG_CONTROLLER = "dstack-hybrid-controller"  # the controller's id: its CA fingerprint, first 16 hex
TAG_FLEET = "dstack-hybrid-fleet"
TAG_LAUNCH = "dstack-hybrid-launch"  # one id per launch attempt, also on the join token
TAG_TASK = "dstack-hybrid-task"  # the task the instance was launched for
TAG_NAME = "Name"  # AWS console's name column; Azure VMs have a name of their own

class BackendError(Exception):
    """A cloud call failed: one sentence that names the backend, region and what failed."""


class CapacityError(BackendError):
    """No capacity or no quota for this offering now: block it for a while and try the next."""


class BackendConfigError(BackendError):
    """The backend's configuration is wrong (an unknown region, bad credentials): an operator's fix."""


@dataclass(frozen=True)
class InstanceType:
    """One size, as the provider's API describes it (never from a table of ours)."""

    backend: str  # aws | azure
    name: str  # m7g.large, Standard_D2s_v6
    arch: str  # amd64 | arm64 | "" when neither (then `unsupported` says why)
    raw_arch: str  # the API's word: x86_64, arm64, x64, Arm64, i386
    vcpus: int
    memory_bytes: int
    gpus: tuple[GpuInfo, ...] = ()  # one per GPU
    local_nvme_bytes: int = 0  # instance storage on NVMe (AWS instance store, Azure local NVMe)
    burstable: bool = False  # AWS t-family, Azure B-series: sustained CPU is a fraction of vCPUs
    spot: bool = True  # the size can be bought as spot
    hyperv_generations: tuple[str, ...] = ()  # Azure: ("V1", "V2"); empty elsewhere
    disk_controllers: tuple[str, ...] = ()  # Azure: ("SCSI",), ("SCSI", "NVMe"), ("NVMe",)
    family: str = ""  # the series or family: m7g, standardDSv6Family
    unsupported: str = ""  # why this project cannot boot it; "" when it can
    previous_generation: bool = False  # AWS: CurrentGeneration is false (Azure: see lifecycle.py)


@dataclass(frozen=True)
class Offering:
    """An instance type purchasable in one zone ("" for regions without zones), spot or on-demand."""

    instance_type: InstanceType
    region: str
    zone: str
    spot: bool
    price: float | None = None  # dollars per hour; None: unknown (ranked by size)

    @property
    def key(self) -> str:
        """Names the offering for blocking after a capacity error: backend/region/zone/type/market."""
        market = "spot" if self.spot else "on-demand"
        return f"{self.instance_type.backend}/{self.region}/{self.zone}/{self.instance_type.name}/{market}"


@dataclass(frozen=True)
class BootImage:
    """The image this project boots on a size, and how (Azure's generation and disk controller)."""

    image: str  # AMI id, or an Azure image URN publisher:offer:sku:version
    description: str  # the AMI name, or the URN again
    generation: str = ""  # Azure: V1 | V2
    disk_controller: str = ""  # Azure: SCSI | NVMe


@dataclass(frozen=True)
class LaunchSpec:
    name: str  # instance name: dstack-<fleet>-<launch id>
    offering: Offering
    image: BootImage
    user_data: str  # the #cloud-config document, not yet base64-encoded
    tags: dict[str, str]
    disk_gb: int = 100  # the OS disk


@dataclass(frozen=True)
class CloudInstance:
    backend: str
    region: str
    zone: str
    instance_id: str  # what the VM's metadata service reports: AWS instance-id, Azure vmId
    instance_type: str
    state: str  # pending | running | stopping | stopped | terminating | terminated
    tags: dict[str, str] = field(default_factory=dict)
    launched_at: float | None = None
    spot: bool = False
    name: str = ""  # Azure's VM name (its resource handle); AWS: the instance id again

    @property
    def gone(self) -> bool:
        return self.state in ("terminating", "terminated", "shutting-down", "deleting")


@dataclass(frozen=True)
class CloudVolume:
    backend: str
    region: str
    zone: str  # "" when the disk has no zone
    volume_id: str  # vol-0abc..., or the managed disk's resource id
    size_bytes: int
    state: str  # creating | available | in-use | ...
    attached_to: tuple[str, ...] = ()  # instance ids (AWS) or VM names (Azure)
    # How the agent finds the block device: the NVMe serial the cloud gives it (AWS: the volume
    # id without its dash, vol0abc...), or "" when only the LUN says (Azure: the attach's lun).
    device_serial: str = ""
    lun: int | None = None


def narrow_regions(configured: list[str], discovered: list[str], unknown: Callable[[list[str]], str]) -> list[str]:
    """The configured regions (in the API's spelling, the configured order), or all discovered ones
    when none are configured; BackendConfigError(unknown(names)) for configured ones the API lacks."""
    if not configured:
        return list(discovered)
    by_lower = {r.lower(): r for r in discovered}
    missing = [r for r in configured if r.lower() not in by_lower]
    if missing:
        raise BackendConfigError(unknown(missing))
    return [by_lower[r.lower()] for r in configured]


class CloudBackend(Protocol):
    """One configured backend (one `backends:` entry). Every method is blocking I/O: the burst
    reconciler runs them in a thread. Errors are BackendError (or its subclasses), never an SDK's."""

    kind: str  # aws | azure

    def regions(self) -> list[str]:
        """The regions to use: discovered from the API, narrowed by the config's `regions`.
        A configured region the API does not know raises BackendConfigError listing the known ones."""
        ...

    def offerings(self, region: str) -> list[Offering]:
        """Every (type, zone, spot|on-demand) purchasable in the region, with prices where known."""
        ...

    def describe(self, names: list[str], region: str | None = None) -> dict[str, InstanceType | None]:
        """The named types as the API describes them in `region` (default: the first region); None: unknown."""
        ...

    def boot_image(self, instance_type: InstanceType, region: str) -> BootImage:
        """The image to boot on this type in this region; BackendError when there is none."""
        ...

    def launch(self, spec: LaunchSpec) -> CloudInstance:
        """Starts one instance. CapacityError for capacity and quota refusals."""
        ...

    def instances(self, controller_tag: str) -> list[CloudInstance]:
        """Every instance in every used region tagged with TAG_CONTROLLER == controller_tag, not yet gone."""
        ...

    def terminate(self, instance: CloudInstance) -> None:
        """Terminates (AWS) or deletes (Azure, with its NIC and OS disk); already gone is fine."""
        ...

    def create_volume(self, name: str, region: str, zone: str, size_bytes: int, tags: dict[str, str]) -> CloudVolume:
        ...

    def get_volume(self, region: str, volume_id: str) -> CloudVolume | None:
        ...

    def attach_volume(self, volume: CloudVolume, instance: CloudInstance) -> CloudVolume:
        """Attaches (idempotent: already attached to that instance is fine); returns where it is."""
        ...

    def detach_volume(self, volume: CloudVolume, instance: CloudInstance) -> None:
        ...
