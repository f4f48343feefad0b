"""Pieces shared by every configuration type: the model base, names and durations."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict


class ConfigModel(BaseModel):
    """Base of every YAML-facing model.

    Unknown keys are errors (dstack does the same), and models are frozen so the
    shared default instances (`CPUSpec()`, ...) can never be changed through one task.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


# dstack's resource-name rule (runs, fleets, volumes), relaxed to allow a one-letter name.
_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,40}")


def validate_resource_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError("a name is 1 to 41 lowercase letters, digits or dashes, starting with a letter")
    return name


ResourceName = Annotated[str, AfterValidator(validate_resource_name)]

_DURATION_RE = re.compile(r"(\d+)\s*([smhdw]?)")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> int:
    """Seconds from dstack's duration forms: `90`, `"90s"`, `"30m"`, `"1h"`, `"2d"`, `"1w"`."""
    # bool is an int subclass; `max_duration: true` must not mean one second.
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION_RE.fullmatch(value.strip().lower())):
        seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError(f'invalid duration "{value}" (expected seconds or a number with s, m, h, d or w)')
    if seconds <= 0:
        raise ValueError(f'duration "{value}" must be positive')
    return seconds


def parse_off_duration(value: Any) -> int | None:
    """Like `parse_duration`, plus dstack's `off` (YAML 1.1 readers turn it into false): no limit."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    return parse_duration(value)


Duration = Annotated[int, BeforeValidator(parse_duration)]
# None means "no limit"; both `off` and leaving the key out produce it.
OffDuration = Annotated[int | None, BeforeValidator(parse_off_duration)]


def validate_absolute_path(path: str) -> str:
    """An absolute POSIX path without `..`, normalized (`/data/` -> `/data`)."""
    posix = PurePosixPath(path)
    if not path or not posix.is_absolute():
        raise ValueError(f'path "{path}" must be absolute')
    if ".." in posix.parts:
        raise ValueError(f'path "{path}" must not contain ".."')
    return str(posix)


# The backends this project provisions on or attaches volumes from; `local` is the hosts that joined.
BackendName = Literal["aws", "azure", "local"]
KNOWN_BACKENDS: tuple[str, ...] = get_args(BackendName)


def validate_backend(value: Any) -> Any:
    """A clear sentence for an unknown backend, listing the known ones (before the Literal check)."""
    if isinstance(value, str) and value not in KNOWN_BACKENDS:
        raise ValueError(f'unknown backend "{value}" (expected one of: {", ".join(KNOWN_BACKENDS)})')
    return value


Backend = Annotated[BackendName, BeforeValidator(validate_backend)]


SpotPolicy = Literal["spot", "on-demand", "auto"]


def reject_bool_price(value: Any) -> Any:
    # pydantic reads true as 1.0; a price of `true` is always a mistake.
    if isinstance(value, bool):
        raise ValueError("a price is a number of dollars per hour, like 1.5")
    return value


def drop_empty_values(value: Any, keys: Collection[str]) -> Any:
    """`regions:` written with no value means the default, for the keys where that reads naturally."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not (v is None and k in keys)}
    return value
