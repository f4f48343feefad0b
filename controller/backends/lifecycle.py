"""Whether a size series is current, retiring or retired.

Neither Azure's resource SKUs nor EC2's DescribeInstanceTypes publish retirement dates, so the
Azure part is a table, kept here and nowhere else, each row citing the Microsoft page it comes
from and that page's date. EC2 does say whether a type is of the current generation
(`CurrentGeneration`); a previous-generation type is reported as retiring with no date.

Update the table when Microsoft announces a retirement; a series not in it is `current`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

CURRENT = "current"
RETIRING = "retiring"
RETIRED = "retired"


@dataclass(frozen=True)
class SeriesLifecycle:
    series: tuple[str, ...]  # Azure series names as in the size names: "Dv2", "DSv2" -> matched case-insensitively
    # None: no date announced (previous generation). Where the source names only a year, the
    # year's last day, so the series reads as retiring (not retired) until the source allows.
    retires_on: date | None
    source: str  # the page, and its date, that says so
    replacement: str = ""
    when: str = ""  # the date as the source gives it, when it gives less than a day


_PREVIOUS_GEN_PAGE = (
    "Microsoft Learn, 'Previous generation sizes' (learn.microsoft.com/azure/virtual-machines/sizes/"
    "previous-gen-sizes-list): next generation available, no retirement date announced"
)

AZURE_SERIES: tuple[SeriesLifecycle, ...] = (
    SeriesLifecycle(
        ("D", "DS", "Dv2", "DSv2", "Ls"),
        date(2028, 12, 31),
        "Microsoft Learn, 'D, Ds, Dv2, Dsv2, and Ls-series Migration Guide' (ms.date 2025-03-17): "
        "retirement scheduled for 2028",
        "Dsv5, Dasv5, Dsv6",
        when="in 2028",
    ),
    SeriesLifecycle(
        ("DCsv2",),
        date(2026, 6, 30),
        "Microsoft Learn, 'DCsv2-series retirement' (ms.date 2025-06-30): retired June 30, 2026",
        "DCdsv3",
    ),
    SeriesLifecycle(
        ("NCsv3", "NCs_v3", "NCv3"),
        date(2025, 9, 30),
        "Microsoft Learn, 'NCv3 and NC6s NC12s NC24s Retirement' (ms.date 2024-03-19): retired September 30, 2025",
        "NC A100 v4",
    ),
    SeriesLifecycle(
        ("NV", "NV_Promo"),
        date(2023, 9, 6),
        "Microsoft Learn, 'NV series retirement' (ms.date 2023-02-27): retired September 6, 2023",
        "NVadsA10 v5",
    ),
    SeriesLifecycle(
        ("A", "Basic_A"),
        date(2024, 8, 31),
        "Microsoft Learn, 'Av1-series retirement': Basic and Standard A-series retired August 31, 2024",
        "Av2",
    ),
    # Previous generation: still sold and supported, newer series exist, no date announced yet.
    SeriesLifecycle(("Dv3", "Dsv3", "Ev3", "Esv3"), None, _PREVIOUS_GEN_PAGE, "Dsv6 / Esv6"),
    SeriesLifecycle(
        ("Dv4", "Dsv4", "Ddsv4", "Ev4", "Esv4", "Edsv4", "Eav4", "Easv4"), None, _PREVIOUS_GEN_PAGE, "Dsv6 / Esv6"
    ),
)

# Standard_D2s_v3 -> letters "D", suffix "s", version "3" -> series "Dsv3"; Standard_A4_v2 -> "Av2";
# Standard_D2 -> "D"; Standard_NC6s_v3 -> "NCsv3".
# Constrained-vCPU sizes (Standard_E4-2s_v4) belong to their parent's series.
_SIZE_RE = re.compile(r"^(?:Standard_|Basic_)?([A-Z]+)(\d+)(?:-\d+)?([a-z]*)(?:_(?!v\d+$)([A-Za-z0-9]+))?(?:_v(\d+))?$")


def azure_series(size: str) -> str:
    """The series a size belongs to, spelled as Microsoft's pages do (Dsv3, Av2, Dpsv6); "" if unrecognised."""
    match = _SIZE_RE.match(size)
    if not match:
        return ""
    letters, _, suffix, _, version = match.groups()
    return f"{letters}{suffix}v{version}" if version else f"{letters}{suffix}"


@dataclass(frozen=True)
class Lifecycle:
    status: str  # current | retiring | retired
    note: str = ""  # the date, replacement and source, for `instance-types check`


def azure_lifecycle(size: str, today: date) -> Lifecycle:
    series = azure_series(size).lower()
    if not series:
        return Lifecycle(CURRENT)
    for row in AZURE_SERIES:
        if series in (s.lower() for s in row.series):
            if row.retires_on is None:
                note = f"previous generation, no date announced; use {row.replacement} ({row.source})"
                return Lifecycle(RETIRING, note)
            status = RETIRED if row.retires_on <= today else RETIRING
            verb = "retired" if status == RETIRED else "retires"
            when = row.when or row.retires_on.isoformat()
            return Lifecycle(status, f"{verb} {when}; use {row.replacement} ({row.source})")
    return Lifecycle(CURRENT)


def aws_lifecycle(previous_generation: bool) -> Lifecycle:
    if previous_generation:
        return Lifecycle(
            RETIRING,
            "previous generation (DescribeInstanceTypes CurrentGeneration=false); AWS announces no date per type",
        )
    return Lifecycle(CURRENT)
