"""Checks on the plain-text values metadata services return, so that an HTML error page or a
captive portal is reported as a failed service instead of becoming a region name."""

from __future__ import annotations

import re

from agent.facts.cloud.metadata import MetadataError

# Region, zone, instance type and id spellings of all three clouds fit this (eu-west-1a,
# c6id.large, i-0abc..., Standard_D2s_v6, n2-standard-4); spaces, tags and newlines do not.
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def word(url: str, value: str | None) -> str:
    if value is None or not _WORD.fullmatch(value):
        raise MetadataError(url, f"unexpected answer {_preview(value)}")
    return value


def _preview(value: str | None) -> str:
    if value is None:
        return "(missing)"
    return repr(value[:40] + ("..." if len(value) > 40 else ""))
