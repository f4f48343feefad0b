"""`type: volume`: a named volume that tasks mount (`volumes: [{name: data, path: /data}]`).

dstack's fields, plus `path` for `backend: local`: a directory that exists on every host
of the volume's region (and zone, when given), such as an NFS mount. A cloud volume
(`aws`, `azure`) is created with `size`, or an existing one is registered with `volume_id`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from controller.configs.common import Backend, ConfigModel, ResourceName, validate_absolute_path
from controller.configs.resources import ByteSize


def _not_blank(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    return value.strip()


class VolumeConfiguration(ConfigModel):
    # Field order matters: the cross-field checks below read the fields declared before them.
    type: Literal["volume"] = "volume"
    name: ResourceName
    backend: Backend
    region: str
    availability_zone: str | None = None
    # An existing cloud volume to register instead of creating one.
    volume_id: str | None = Field(default=None, validate_default=True)
    # Bytes; written as dstack does ("100GB", a bare number is GB). Needed to create a cloud volume.
    size: ByteSize | None = Field(default=None, validate_default=True)
    # backend: local only: the directory on each host of the region (zone) that is the volume.
    path: str | None = Field(default=None, validate_default=True)

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        return _not_blank(value, "region")

    @field_validator("availability_zone")
    @classmethod
    def _check_zone(cls, value: str | None) -> str | None:
        return None if value is None else _not_blank(value, "availability_zone")

    @field_validator("volume_id")
    @classmethod
    def _check_volume_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("backend") == "local":
            raise ValueError("volume_id is only for aws and azure volumes (a local volume is its path)")
        return _not_blank(value, "volume_id")

    @field_validator("size")
    @classmethod
    def _check_size(cls, value: int | None, info: ValidationInfo) -> int | None:
        backend = info.data.get("backend")
        if value is None:
            if backend in ("aws", "azure") and info.data.get("volume_id") is None:
                raise ValueError(
                    f"an {backend} volume needs size (like 100GB) to create it, or volume_id to use an existing one"
                )
            return None
        if value <= 0:
            raise ValueError("size must be positive")
        return value

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        backend = info.data.get("backend")
        if value is None:
            if backend == "local":
                raise ValueError(
                    "a local volume needs the absolute path of a directory that exists on every host"
                    " of its region or zone (such as an NFS mount)"
                )
            return None
        if backend is not None and backend != "local":
            raise ValueError(f"path is only for local volumes (an {backend} volume is attached by the cloud)")
        return validate_absolute_path(value)
