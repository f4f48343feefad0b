"""The `backends:` section of the controller's config file, and the bursting settings.

    backends:
      - type: aws
        regions: [eu-west-1, us-east-1]      # optional: narrows the discovered regions
        endpoint_url: http://127.0.0.1:5000  # optional: tests, private clouds
        creds: {type: access_key, access_key: AKIA..., secret_key: ...}   # optional: default chain
      - type: azure
        subscription_id: 00000000-0000-0000-0000-000000000000
        tenant_id: 00000000-0000-0000-0000-000000000000
        resource_group: dstack
        regions: [westeurope]
        creds: {type: client, client_id: ..., client_secret: ...}          # optional: default chain
    burst:
      controller_address: 203.0.113.5:7443   # what a new VM dials (default: the listen address)
      package_url: https://example.com/dstack-agent_0.1.0-1_{arch}.deb
      register_timeout: 10m

Field names follow dstack's server config (`~/.dstack/server/config.yml`) where it has one.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from controller.configs.common import ConfigModel, Duration


def _distinct(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if not value.strip():
            raise ValueError(f"a {what} must not be empty")
        if value.lower() in seen:
            raise ValueError(f'{what} "{value}" is listed twice')
        seen.add(value.lower())
    return values


class DefaultCreds(ConfigModel):
    """The SDK's own chain: environment, shared config/profile, instance role, managed identity."""

    type: Literal["default"] = "default"


class AWSAccessKeyCreds(ConfigModel):
    type: Literal["access_key"]
    access_key: str
    secret_key: str


# The words a name pattern may carry, and what each becomes for an instance type's architecture.
IMAGE_NAME_WORDS = {
    # Debian's word, which Canonical puts in its AMI names (ubuntu-noble-24.04-amd64-server-...).
    "arch": {"amd64": "amd64", "arm64": "arm64"},
    # The EC2 API's `architecture` word, which others (Amazon Linux: al2023-ami-...-x86_64) put there.
    "api_arch": {"amd64": "x86_64", "arm64": "arm64"},
}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class AWSImageFilter(ConfigModel):
    """How the AMI is looked up per region and architecture: DescribeImages with these owners, this
    name pattern and the instance type's architecture (the API's `architecture` filter, always
    applied: a name says nothing binding about what an image boots). In the pattern `{arch}`
    becomes amd64 or arm64, as Canonical names its images, and `{api_arch}` becomes x86_64 or
    arm64, the API's word. The newest match wins, so any region with the image works and nothing
    holds AMI ids."""

    owners: list[str] = ["099720109477"]  # Canonical
    name: str = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"

    @field_validator("owners")
    @classmethod
    def _owners(cls, value: list[str]) -> list[str]:
        # Without an owner DescribeImages searches every public image: anyone can publish one
        # under any name, so the newest match could be a stranger's.
        if not value:
            raise ValueError("owners must name at least one account (099720109477 is Canonical's)")
        return _distinct(value, "owner")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the image name pattern must not be empty")
        for word in _PLACEHOLDER.findall(value):
            if word not in IMAGE_NAME_WORDS:
                known = " or ".join("{" + w + "}" for w in IMAGE_NAME_WORDS)
                raise ValueError(f"the image name pattern has {{{word}}}: it may carry {known} only")
        return value

    def name_for(self, arch: str) -> str:
        """The pattern for an instance type of this architecture (amd64 or arm64)."""
        return _PLACEHOLDER.sub(lambda m: IMAGE_NAME_WORDS[m.group(1)][arch], self.name)


class AWSBackendConfig(ConfigModel):
    type: Literal["aws"]
    regions: list[str] = []
    endpoint_url: str | None = None
    creds: AWSAccessKeyCreds | DefaultCreds = Field(default_factory=DefaultCreds, discriminator="type")
    image: AWSImageFilter = AWSImageFilter()
    # Instances go into the subnet of their zone: the one tagged with this key, else the default one.
    subnet_tag: str = "dstack-hybrid"
    # Where on-demand prices come from (the Price List API lives in us-east-1 only).
    pricing_region: str = "us-east-1"

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        return _distinct(value, "region")


class AzureClientCreds(ConfigModel):
    type: Literal["client"]
    client_id: str
    client_secret: str
    # Microsoft Entra's login host; another for sovereign clouds or a test's loopback server.
    authority_host: str | None = None


class AzureImages(ConfigModel):
    """Marketplace image URNs (publisher:offer:sku:version) by generation and architecture:
    Canonical's Ubuntu 24.04 as Canonical publishes it (offer ubuntu-24_04-lts, SKUs server,
    server-gen1, server-arm64), whose Gen2 images also boot with the NVMe disk controller. Before a
    launch the Virtual Machine Images API is asked whether the URN exists in the region and boots
    the size's generation, architecture and disk controller."""

    gen1_amd64: str = "Canonical:ubuntu-24_04-lts:server-gen1:latest"
    gen2_amd64: str = "Canonical:ubuntu-24_04-lts:server:latest"
    gen2_arm64: str = "Canonical:ubuntu-24_04-lts:server-arm64:latest"

    @field_validator("gen1_amd64", "gen2_amd64", "gen2_arm64")
    @classmethod
    def _urn(cls, value: str) -> str:
        parts = value.split(":")
        if len(parts) != 4 or not all(part.strip() for part in parts):
            raise ValueError(f'"{value}" is not a URN publisher:offer:sku:version (a version or latest)')
        return value


class AzureBackendConfig(ConfigModel):
    type: Literal["azure"]
    subscription_id: str
    tenant_id: str
    resource_group: str
    regions: list[str] = []
    creds: AzureClientCreds | DefaultCreds = Field(default_factory=DefaultCreds, discriminator="type")
    base_url: str | None = None  # Resource Manager endpoint; default https://management.azure.com
    prices_url: str | None = None  # Retail Prices API; default https://prices.azure.com/api/retail/prices
    images: AzureImages = AzureImages()
    # The VMs' virtual network: one per region, created when missing, in resource_group.
    vnet_prefix: str = "dstack-hybrid"
    admin_username: str = "dstack"
    # Azure needs a key when password login is off; without one a throwaway key (whose private
    # half is never kept) is installed, so nobody can log in.
    ssh_public_key: str | None = None
    # A PEM file of the CAs to trust for base_url, the creds' authority_host and prices_url instead
    # of the system's (a private cloud's own CA, a test's loopback server); None: the system's.
    ca_bundle: str | None = None

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        return _distinct(value, "region")


BackendConfig = Annotated[AWSBackendConfig | AzureBackendConfig, Field(discriminator="type")]


class BurstSettings(ConfigModel):
    controller_address: str | None = None  # HOST:PORT a new VM dials; default: the listen address
    # The agent package a VM installs; `{arch}` becomes amd64 or arm64. Empty: the image has it.
    package_url: str = ""
    register_timeout: Duration = 600  # launched, no agent registered by then: terminate, block the offer
    blocked_for: Duration = 900  # how long an offering stays blocked after a capacity error or timeout
    region_cache_ttl: Duration = 3600  # discovered regions and offerings are refreshed this often
    disk_gb: int = Field(default=100, ge=8)


class ControllerFileConfig(ConfigModel):
    """The whole controller config file. The serve settings are the flags' values, below the
    flags and the environment (a flag wins over DSTACK_* which wins over this file)."""

    backends: list[BackendConfig] = []
    burst: BurstSettings = BurstSettings()
    listen: str | None = None
    agent_listen: str | None = None
    tls_san: list[str] = []
    host_cert_validity: str | None = None
    host_grace: str | None = None
    host_lost_after: str | None = None
    heartbeat_interval: str | None = None
    stop_grace: str | None = None
    log_cap: str | None = None
    log_retention: str | None = None
    image_lookup: Literal["on", "off"] | None = None
    registry_mirror: str | None = None
    # What one API token may ask: calls (`20/s`, `600/m`, `off`) with a burst, and pending tasks.
    client_rate: str | None = None
    client_burst: int | None = None
    max_pending_per_token: str | None = None  # a count or off

    @field_validator("image_lookup", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        # YAML 1.1 readers turn a bare on/off into a boolean.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("client_rate", "max_pending_per_token", mode="before")
    @classmethod
    def _off_or_number(cls, value: object) -> object:
        # YAML 1.1 readers turn a bare off into False; a bare rate (`client_rate: 20`) is a number.
        if value is False:
            return "off"
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("backends")
    @classmethod
    def _one_per_type(cls, value: list[BackendConfig]) -> list[BackendConfig]:
        types = [b.type for b in value]
        for t in types:
            if types.count(t) > 1:
                raise ValueError(f"backend {t} is configured twice (one entry per cloud; list its regions)")
        return value
