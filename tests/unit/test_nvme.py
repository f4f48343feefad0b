"""NVMe detection on sysfs trees shaped like the clouds' (tests/fixtures/hosts/*/sys/class/nvme)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.facts import nvme
from agent.facts.nvme import NvmeFacts
from agent.facts.sources import FactSources

HOSTS = Path(__file__).resolve().parents[1] / "fixtures/hosts"
GiB = 1024**3
KEYS = {"name", "model", "serial", "transport", "size_bytes", "kind"}


def host(name: str) -> FactSources:
    return FactSources(sysfs=HOSTS / name / "sys", procfs=HOSTS / name / "proc")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def controller(sysfs: Path, name: str, model: str = "", namespaces: dict[str, str] | None = None) -> Path:
    d = sysfs / "class/nvme" / name
    d.mkdir(parents=True)
    if model:
        write(d / "model", model.ljust(40) + "\n")
    for ns, size in (namespaces or {}).items():
        write(d / ns / "size", size)
    return d


def test_azure_d2s_v6_remote_disks_are_namespaces_of_one_controller() -> None:
    # OS disk (nsid 1, 30 GiB) and a data disk (nsid 2, 128 GiB): one controller, sizes summed.
    assert nvme.detect(host("azure-d2s-v6")) == [
        NvmeFacts("nvme0", "MSFT NVMe Accelerator v1.0", "SN: 000001", "pcie", 158 * GiB, "azure-remote")
    ]


def test_azure_d2ads_v6_has_a_local_direct_disk() -> None:
    found = nvme.detect(host("azure-d2ads-v6"))
    assert [(n.name, n.kind, n.size_bytes) for n in found] == [
        ("nvme0", "azure-remote", 30 * GiB),
        ("nvme1", "azure-local", 110 * GiB),
    ]
    assert found[1].model == "Microsoft NVMe Direct Disk v2"


def test_aws_c6id_ebs_root_and_instance_store() -> None:
    found = nvme.detect(host("aws-c6id"))
    assert found == [
        NvmeFacts("nvme0", "Amazon Elastic Block Store", "vol0a1b2c3d4e5f67890", "pcie", 8 * GiB, "ebs"),
        NvmeFacts(
            "nvme1", "Amazon EC2 NVMe Instance Storage", "AWS1A2B3C4D5E6F70812", "pcie", 118 * 10**9, "instance-store"
        ),
    ]


def test_to_dict_has_exactly_the_interface_keys() -> None:
    out = [n.to_dict() for n in nvme.detect(host("aws-c6id"))]
    assert all(set(d) == KEYS for d in out)
    assert out[0] == {
        "name": "nvme0",
        "model": "Amazon Elastic Block Store",
        "serial": "vol0a1b2c3d4e5f67890",
        "transport": "pcie",
        "size_bytes": 8 * GiB,
        "kind": "ebs",
    }


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        ("Amazon Elastic Block Store", "ebs"),
        ("Amazon EC2 NVMe Instance Storage", "instance-store"),
        ("MSFT NVMe Accelerator v1.0", "azure-remote"),
        ("Microsoft NVMe Direct Disk", "azure-local"),
        ("Microsoft NVMe Direct Disk v2", "azure-local"),
        ("nvme_card", "other"),  # GCP local SSD
        ("Samsung SSD 990 PRO 2TB", "other"),
        ("", "other"),
    ],
)
def test_kind_from_model(tmp_path: Path, model: str, kind: str) -> None:
    controller(tmp_path, "nvme0", model)
    [found] = nvme.detect(FactSources(sysfs=tmp_path))
    assert (found.model, found.kind) == (model, kind)


def test_sorted_by_controller_number(tmp_path: Path) -> None:
    for name in ("nvme10", "nvme2", "nvme0", "nvme1"):
        controller(tmp_path, name, "x")
    assert [n.name for n in nvme.detect(FactSources(sysfs=tmp_path))] == ["nvme0", "nvme1", "nvme2", "nvme10"]


def test_missing_class_dir_is_no_devices(tmp_path: Path) -> None:
    assert nvme.detect(FactSources(sysfs=tmp_path)) == []
    assert nvme.detect(FactSources(sysfs=tmp_path / "absent")) == []


def test_half_populated_controller_gives_empty_fields(tmp_path: Path) -> None:
    d = controller(tmp_path, "nvme3", namespaces={"nvme3n1": "garbage\n", "nvme3n2": "", "nvme3n3": "2048\n"})
    (d / "serial").mkdir()  # unreadable as a file
    (d / "nvme3n4").mkdir()  # a namespace whose size is not there (yet)
    assert nvme.detect(FactSources(sysfs=tmp_path)) == [NvmeFacts("nvme3", "", "", "", 2048 * 512, "other")]


def test_multipath_paths_and_other_entries(tmp_path: Path) -> None:
    # Native multipath names the controller's path to a namespace nvme0c0n1; other entries
    # (power/, device links, nvme-subsystem names) are neither controllers nor namespaces.
    d = controller(tmp_path, "nvme0", "x", {"nvme0c0n1": "8\n", "nvme0c0n2": "8\n", "power/size": "99\n"})
    write(d / "ng0n1/size", "99\n")  # the generic char device, not a disk
    (tmp_path / "class/nvme/nvme-subsys0").mkdir()
    (tmp_path / "class/nvme/README").write_text("")
    [found] = nvme.detect(FactSources(sysfs=tmp_path))
    assert (found.name, found.size_bytes) == ("nvme0", 16 * 512)


def test_class_entries_may_be_symlinks_into_devices(tmp_path: Path) -> None:
    # Real sysfs: /sys/class/nvme/nvme0 -> ../../devices/pci0000:00/0000:00:04.0/nvme/nvme0
    real = tmp_path / "devices/pci0000:00/0000:00:04.0/nvme/nvme0"
    write(real / "model", "Amazon Elastic Block Store              \n")
    write(real / "transport", "pcie\n")
    write(real / "nvme0n1/size", "16777216\n")
    (tmp_path / "class/nvme").mkdir(parents=True)
    (tmp_path / "class/nvme/nvme0").symlink_to("../../devices/pci0000:00/0000:00:04.0/nvme/nvme0")
    [found] = nvme.detect(FactSources(sysfs=tmp_path))
    assert (found.kind, found.transport, found.size_bytes) == ("ebs", "pcie", 8 * GiB)


@pytest.mark.parametrize("transport", ["tcp", "rdma", "fc", "loop"])
def test_fabrics_transport(tmp_path: Path, transport: str) -> None:
    d = controller(tmp_path, "nvme5", "Linux")
    write(d / "transport", transport + "\n")
    assert nvme.detect(FactSources(sysfs=tmp_path))[0].transport == transport
