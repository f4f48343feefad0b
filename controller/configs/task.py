"""`type: task`: one container run, in dstack's spelling."""

from __future__ import annotations

import re
from typing import Any, Literal

from dstack_hybrid.shared.image_reference import reference_problem
from pydantic import Field, field_validator, model_validator

from controller.configs.common import (
    ConfigModel,
    OffDuration,
    ResourceName,
    SpotPolicy,
    drop_empty_values,
    reject_bool_price,
    validate_absolute_path,
)
from controller.configs.resources import ResourcesSpec
from controller.configs.retry import RetryPolicy, parse_retry

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MountPoint(ConfigModel):
    """One `volumes:` entry: a named volume or a host directory, mounted at `path`.

    Written as `vol:/data`, `/host/dir:/data`, `{name: vol, path: /data}`,
    `{name: [vol-eu, vol-us], path: /data}` or `{instance_path: /host/dir, path: /data}`.
    Exactly one of `name` and `instance_path` is set.
    """

    # Candidate volumes in order of preference; the first one usable where the task lands wins.
    name: list[ResourceName] | None = None
    instance_path: str | None = None
    path: str

    @model_validator(mode="before")
    @classmethod
    def _parse_short_form(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            return {**value, "name": [value["name"]]}
        if not isinstance(value, str):
            return value
        parts = value.split(":")
        if len(parts) != 2:
            raise ValueError(f'invalid mount "{value}" (expected VOLUME:PATH or /HOST/PATH:PATH)')
        source, path = parts
        # dstack's rule: a source with a slash is a host path, anything else a volume name.
        if "/" in source:
            return {"instance_path": source, "path": path}
        return {"name": [source], "path": path}

    @field_validator("path", "instance_path")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        return None if value is None else validate_absolute_path(value)

    @field_validator("name")
    @classmethod
    def _check_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("the volume name list is empty")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> MountPoint:
        if (self.name is None) == (self.instance_path is None):
            raise ValueError("a mount needs exactly one of name (a volume) or instance_path (a host path)")
        return self

    def __str__(self) -> str:
        source = ",".join(self.name) if self.name else self.instance_path
        return f"{source}:{self.path}"


def _parse_env(value: Any) -> Any:
    """`{KEY: value}` or `["KEY=value", ...]` (both dstack forms) -> `{KEY: "value"}`."""
    if isinstance(value, list):
        pairs: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f'env item "{item}" must be KEY=VALUE')
            key, _, val = item.partition("=")
            if key in pairs:
                raise ValueError(f'env key "{key}" is given twice')
            pairs[key] = val
        value = pairs
    if not isinstance(value, dict):
        raise ValueError("env must be a mapping or a list of KEY=VALUE strings")
    env: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _ENV_NAME_RE.fullmatch(key):
            raise ValueError(f'"{key}" is not a valid environment variable name')
        if val is None or isinstance(val, dict | list):
            raise ValueError(f'env "{key}" needs a plain value')
        # YAML reads `DEBUG: true` as a bool; a shell expects the lowercase word.
        env[key] = str(val).lower() if isinstance(val, bool) else str(val)
    return env


# Keys that may be written with an empty value (`regions:`) to mean "the default".
_EMPTY_MEANS_DEFAULT = {"commands", "env", "resources", "regions", "availability_zones", "fleets"}
_EMPTY_MEANS_DEFAULT |= {"backends", "volumes"}


class TaskConfiguration(ConfigModel):
    type: Literal["task"] = "task"
    name: ResourceName | None = None
    image: str
    # Empty: run the image's own command.
    commands: list[str] = []
    env: dict[str, str] = {}
    resources: ResourcesSpec = ResourcesSpec()
    regions: list[str] = []
    availability_zones: list[str] = []
    fleets: list[str] = []
    backends: list[str] = []
    volumes: list[MountPoint] = []
    # Seconds; None is no limit (`off` or not given).
    max_duration: OffDuration = None
    nodes: int = Field(default=1, ge=1)
    privileged: bool = False
    working_dir: str | None = None
    # Cloud bursting (dstack's fields, plus `burstable`); None: the fleet's setting, else the default.
    spot_policy: SpotPolicy | None = None
    max_price: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    burstable: bool | None = None
    # dstack's retry policy (controller/configs/retry.py); None: a failed attempt ends the task.
    retry: RetryPolicy | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_empty_values(cls, value: Any) -> Any:
        return drop_empty_values(value, _EMPTY_MEANS_DEFAULT)

    @field_validator("max_price", mode="before")
    @classmethod
    def _price_is_a_number(cls, value: Any) -> Any:
        return reject_bool_price(value)

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("image must not be empty")
        # Refused here, at submit, rather than by the engine on whichever host it lands.
        problem = reference_problem(value.strip())
        if problem is not None:
            raise ValueError(f"not an image reference: {problem}")
        return value.strip()

    @field_validator("retry", mode="before")
    @classmethod
    def _parse_retry(cls, value: Any) -> Any:
        return parse_retry(value)

    @field_validator("env", mode="before")
    @classmethod
    def _parse_env(cls, value: Any) -> Any:
        return _parse_env(value)

    @field_validator("working_dir")
    @classmethod
    def _check_working_dir(cls, value: str | None) -> str | None:
        return None if value is None else validate_absolute_path(value)

    @field_validator("volumes")
    @classmethod
    def _distinct_mount_paths(cls, value: list[MountPoint]) -> list[MountPoint]:
        seen: set[str] = set()
        for mount in value:
            if mount.path in seen:
                raise ValueError(f'two volumes are mounted at "{mount.path}"')
            seen.add(mount.path)
        return value
