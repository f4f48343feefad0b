"""Which cloud this host is on, from local DMI data only, as cloud-init's ds-identify decides
it before asking any datasource: an on-prem host must not send a single packet to learn that it
is not in a cloud."""

from __future__ import annotations

from pathlib import Path

from agent.facts.sources import read_text

# Azure stamps every VM's chassis with this tag; plain Hyper-V hosts (same "Microsoft
# Corporation" vendor) do not have it, so the vendor alone would misfile on-prem Hyper-V VMs.
AZURE_CHASSIS_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"

FIELDS = ("sys_vendor", "bios_vendor", "product_version", "product_name", "chassis_asset_tag", "board_vendor")


def read(sysfs: Path) -> dict[str, str]:
    """The DMI fields this module looks at; a missing or unreadable file reads as ""."""
    base = sysfs / "class" / "dmi" / "id"
    return {name: (read_text(base / name) or "").strip() for name in FIELDS}


def identify(sysfs: Path) -> str | None:
    """Return "aws", "azure", "gcp", or None when DMI names no cloud (or there is no DMI at all)."""
    return identify_fields(read(sysfs))


def identify_fields(dmi: dict[str, str]) -> str | None:
    if dmi.get("chassis_asset_tag") == AZURE_CHASSIS_ASSET_TAG:
        return "azure"
    # Nitro instances say "Amazon EC2" in sys/bios/board vendor; Xen-era instances only carry
    # "amazon" in product_version (e.g. "4.11.amazon"), hence the substring match.
    if any("amazon" in dmi.get(name, "").lower() for name in ("sys_vendor", "bios_vendor", "product_version")):
        return "aws"
    if dmi.get("board_vendor") == "Amazon EC2":
        return "aws"
    if dmi.get("product_name") == "Google Compute Engine":
        return "gcp"
    if "Google" in (dmi.get("sys_vendor"), dmi.get("board_vendor")):
        return "gcp"
    return None
