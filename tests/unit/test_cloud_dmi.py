"""Cloud identification from DMI alone (no network), and the shape of CloudFacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.facts.cloud import dmi
from agent.facts.cloud.model import CloudFacts

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"

# The `cloud` keys of `dstack-agent facts --json` (INTERFACES.md).
CLOUD_KEYS = ["provider", "region", "zone", "zone_id", "instance_type", "instance_id", "spot", "hyperv_generation"]


def dmi_tree(tmp_path: Path, **fields: str) -> Path:
    base = tmp_path / "sys" / "class" / "dmi" / "id"
    base.mkdir(parents=True)
    for name, value in fields.items():
        (base / name).write_text(value + "\n")  # sysfs ends every value with a newline
    return tmp_path / "sys"


@pytest.mark.parametrize(
    ("machine", "provider"),
    [
        ("aws-c6id", "aws"),
        ("graviton3", "aws"),
        ("azure-d2s-v6", "azure"),
        ("onprem-2gpu", None),
        ("qemu-binfmt", None),
    ],
)
def test_fixture_machines(machine: str, provider: str | None) -> None:
    assert dmi.identify(HOSTS / machine / "sys") == provider


@pytest.mark.parametrize(
    ("fields", "provider"),
    [
        # Xen-era EC2 (m4, c4, t2): only product_version says Amazon.
        ({"sys_vendor": "Xen", "product_name": "HVM domU", "product_version": "4.11.amazon"}, "aws"),
        ({"sys_vendor": "Amazon EC2", "product_name": "m7i.xlarge"}, "aws"),
        ({"bios_vendor": "Amazon EC2"}, "aws"),
        ({"board_vendor": "Amazon EC2"}, "aws"),
        ({"product_name": "Google Compute Engine", "sys_vendor": "Google", "bios_vendor": "Google"}, "gcp"),
        ({"sys_vendor": "Google"}, "gcp"),
        ({"board_vendor": "Google"}, "gcp"),
        ({"sys_vendor": "Microsoft Corporation", "chassis_asset_tag": dmi.AZURE_CHASSIS_ASSET_TAG}, "azure"),
        # Hyper-V on-prem: same vendor and product as Azure, but no Azure asset tag.
        ({"sys_vendor": "Microsoft Corporation", "product_name": "Virtual Machine", "chassis_asset_tag": ""}, None),
        ({"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)"}, None),
        ({"sys_vendor": "Supermicro", "chassis_asset_tag": "To be filled by O.E.M."}, None),
    ],
)
def test_identify_from_fields(tmp_path: Path, fields: dict[str, str], provider: str | None) -> None:
    assert dmi.identify(dmi_tree(tmp_path, **fields)) == provider


def test_no_dmi_at_all_is_no_cloud(tmp_path: Path) -> None:
    # Containers and some Arm boards have no /sys/class/dmi.
    assert dmi.identify(tmp_path / "missing-sys") is None


def test_values_are_stripped(tmp_path: Path) -> None:
    assert dmi.read(dmi_tree(tmp_path, sys_vendor="  Amazon EC2  "))["sys_vendor"] == "Amazon EC2"


def test_cloud_facts_dict_has_exactly_the_interface_keys() -> None:
    facts = CloudFacts(provider="aws", region="eu-west-1", spot=False)
    assert list(facts.to_dict()) == CLOUD_KEYS
    assert facts.to_dict()["zone"] is None
    assert facts.to_dict()["spot"] is False
