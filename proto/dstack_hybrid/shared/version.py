"""The installed version of dstack-hybrid, as every program reports it (`--version`, host facts).

Read from the installed distribution's metadata, so it is pyproject.toml's version and nothing
else can drift from it."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "dstack-hybrid"


def installed_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


VERSION = installed_version()
