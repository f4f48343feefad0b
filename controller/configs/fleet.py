"""`type: fleet`: a named group of hosts, in dstack's spelling.

Hosts join a fleet with an agent (`dstack-agent run --join-token ...`); `resources`,
`regions`, `availability_zones` and `labels` say which hosts belong. The cloud fields
(`backends`, `nodes`, `idle_duration`, `spot_policy`, `max_price`, `burstable`) are for
provisioning instances into the fleet; they are validated here and used by cloud bursting.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from controller.configs.common import (
    Backend,
    ConfigModel,
    OffDuration,
    ResourceName,
    SpotPolicy,
    drop_empty_values,
    reject_bool_price,
)
from controller.configs.resources import Range, ResourcesSpec

# dstack's default for fleets: instances idle this long are terminated (`off` never does).
DEFAULT_FLEET_IDLE_DURATION = 3 * 86400

# Letters, digits and `._-/`, starting and ending with a letter or digit (`gpu`, `acme.io/rack`).
_LABEL_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?")

_EMPTY_MEANS_DEFAULT = {"availability_zones", "regions", "labels", "backends", "resources"}


def _parse_labels(value: Any) -> Any:
    """`{name: value}` with plain values; numbers and booleans become their YAML spelling."""
    if not isinstance(value, dict):
        return value  # pydantic says "input should be a valid dictionary"
    labels: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _LABEL_NAME_RE.fullmatch(key):
            raise ValueError(
                f'"{key}" is not a valid label name (letters, digits, ".", "_", "-" or "/",'
                " starting and ending with a letter or digit)"
            )
        if val is None or isinstance(val, dict | list):
            raise ValueError(f'label "{key}" needs a plain value')
        labels[key] = str(val).lower() if isinstance(val, bool) else str(val)
    return labels


class FleetConfiguration(ConfigModel):
    type: Literal["fleet"] = "fleet"
    name: ResourceName
    availability_zones: list[str] = []
    regions: list[str] = []
    # What a host must have to join the fleet; None: any host may.
    resources: ResourcesSpec | None = None
    labels: dict[str, str] = {}

    # Cloud provisioning (dstack's fields, plus `burstable`).
    backends: list[Backend] = []
    # Instances to keep: `2` (exactly), `0..4`, `{min: 0, max: 4}`; `..4` means `0..4`; None: none provisioned.
    nodes: Range[int] | None = None
    # Seconds an idle instance is kept; None (`off`) keeps it.
    idle_duration: OffDuration = DEFAULT_FLEET_IDLE_DURATION
    # None: dstack's default, on-demand.
    spot_policy: SpotPolicy | None = None
    # Dollars per instance-hour.
    max_price: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    # An extension to dstack: burstable instance types (AWS t-family, Azure B-series) may be offered.
    burstable: bool = False

    @model_validator(mode="before")
    @classmethod
    def _drop_empty_values(cls, value: Any) -> Any:
        return drop_empty_values(value, _EMPTY_MEANS_DEFAULT)

    @field_validator("labels", mode="before")
    @classmethod
    def _parse_labels(cls, value: Any) -> Any:
        return _parse_labels(value)

    @field_validator("backends")
    @classmethod
    def _distinct_backends(cls, value: list[str]) -> list[str]:
        for backend in value:
            if value.count(backend) > 1:
                raise ValueError(f'backend "{backend}" is listed twice')
        return value

    @field_validator("nodes")
    @classmethod
    def _nodes_from_zero(cls, value: Range[int] | None) -> Range[int] | None:
        # dstack always has a minimum; an open lower end means none need be kept.
        if value is not None and value.min is None:
            return Range[int](min=0, max=value.max)
        return value

    @field_validator("max_price", mode="before")
    @classmethod
    def _price_is_a_number(cls, value: Any) -> Any:
        return reject_bool_price(value)
