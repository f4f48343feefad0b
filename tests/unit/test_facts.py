"""Host fact detection on fixture procfs/sysfs trees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.facts import arch, collect, cpu, emulation, memory
from agent.facts.sources import FactSources

XEON = "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"


def x86_cpuinfo(sockets: int = 2, cores: int = 2, threads: int = 2) -> str:
    """Linux's layout: one block per logical CPU, siblings share (physical id, core id)."""
    blocks = []
    n = 0
    for _sibling in range(threads):  # the kernel lists every core's first thread, then the second
        for socket in range(sockets):
            for core in range(cores):
                blocks.append(
                    "\n".join(
                        [
                            f"processor\t: {n}",
                            "vendor_id\t: GenuineIntel",
                            "cpu family\t: 6",
                            "model\t\t: 85",
                            f"model name\t: {XEON}",
                            f"physical id\t: {socket}",
                            f"siblings\t: {cores * threads}",
                            f"core id\t\t: {core}",
                            f"cpu cores\t: {cores}",
                            "flags\t\t: fpu vme sse2 avx2 avx512f",
                        ]
                    )
                )
                n += 1
    return "\n\n".join(blocks) + "\n\n"


ARM_CPUINFO = (
    "\n\n".join(
        f"processor\t: {n}\n"
        "BogoMIPS\t: 243.75\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics\n"
        "CPU implementer\t: 0x41\n"
        "CPU architecture: 8\n"
        "CPU variant\t: 0x3\n"
        "CPU part\t: 0xd0c\n"
        "CPU revision\t: 1"
        for n in range(4)
    )
    + "\n"
)

MEMINFO = "MemTotal:       16318480 kB\nMemFree:         1234567 kB\nMemAvailable:   12345678 kB\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def x86_tree(tmp_path: Path) -> FactSources:
    procfs, sysfs = tmp_path / "proc", tmp_path / "sys"
    write(procfs / "cpuinfo", x86_cpuinfo())
    write(procfs / "meminfo", MEMINFO)
    binfmt = procfs / "sys/fs/binfmt_misc"
    write(binfmt / "qemu-aarch64", "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\n")
    write(binfmt / "qemu-riscv64", "disabled\ninterpreter /usr/bin/qemu-riscv64-static\nflags: F\n")
    write(binfmt / "register", "")
    write(binfmt / "status", "enabled\n")
    sysfs.mkdir()
    return FactSources(sysfs=sysfs, procfs=procfs, machine="x86_64", path="")  # no GPU tools of this machine


@pytest.fixture
def arm_tree(tmp_path: Path) -> FactSources:
    procfs, sysfs = tmp_path / "proc", tmp_path / "sys"
    write(procfs / "cpuinfo", ARM_CPUINFO)
    write(procfs / "meminfo", "MemTotal:        4096000 kB\n")
    sysfs.mkdir()
    return FactSources(sysfs=sysfs, procfs=procfs, machine="aarch64", path="")


# ---------------------------------------------------------------- cpu


def test_x86_cpu_counts_sockets_cores_threads(x86_tree: FactSources) -> None:
    facts = cpu.detect(x86_tree)
    assert facts.vendor == "GenuineIntel"
    assert facts.model == XEON
    assert facts.threads == 8
    assert facts.cores == 4  # 2 sockets x 2 cores
    assert facts.flags == ["fpu", "vme", "sse2", "avx2", "avx512f"]


def test_core_ids_repeat_across_sockets(tmp_path: Path) -> None:
    # Core id 0 exists on both sockets: they are different cores.
    write(tmp_path / "proc/cpuinfo", x86_cpuinfo(sockets=2, cores=1, threads=1))
    facts = cpu.detect(FactSources(sysfs=tmp_path / "sys", procfs=tmp_path / "proc"))
    assert (facts.cores, facts.threads) == (2, 2)


def test_arm64_cpu_is_named_from_implementer_and_part(arm_tree: FactSources) -> None:
    facts = cpu.detect(arm_tree)
    assert facts.vendor == "ARM"
    assert facts.model == "Neoverse-N1"
    assert facts.threads == 4
    assert facts.cores == 4  # no core ids and no topology: one core per logical CPU
    assert "asimd" in facts.flags and "atomics" in facts.flags


def test_sysfs_topology_wins_over_cpuinfo(arm_tree: FactSources) -> None:
    # Two cores with two threads each, as sysfs says.
    for n in range(4):
        topo = arm_tree.sysfs / f"devices/system/cpu/cpu{n}/topology"
        write(topo / "core_id", f"{n // 2}\n")
        write(topo / "physical_package_id", "0\n")
    facts = cpu.detect(arm_tree)
    assert (facts.cores, facts.threads) == (2, 4)


def test_missing_cpuinfo_gives_unknowns(tmp_path: Path) -> None:
    facts = cpu.detect(FactSources(sysfs=tmp_path / "nosys", procfs=tmp_path / "noproc"))
    assert (facts.vendor, facts.model, facts.cores, facts.threads, facts.flags) == (None, None, None, None, [])


def test_cpuinfo_trailing_non_processor_block_is_ignored(tmp_path: Path) -> None:
    text = ARM_CPUINFO + "\nHardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4\n"
    write(tmp_path / "proc/cpuinfo", text)
    facts = cpu.detect(FactSources(sysfs=tmp_path / "sys", procfs=tmp_path / "proc"))
    assert facts.threads == 4


# ---------------------------------------------------------------- memory


def test_memory_from_meminfo(x86_tree: FactSources) -> None:
    assert memory.detect(x86_tree) == 16318480 * 1024


@pytest.mark.parametrize("text", ["", "MemFree: 12 kB\n", "MemTotal: lots kB\n", "MemTotal:\n"])
def test_memory_unknown(tmp_path: Path, text: str) -> None:
    write(tmp_path / "meminfo", text)
    assert memory.detect(FactSources(procfs=tmp_path)) is None


def test_memory_missing_file(tmp_path: Path) -> None:
    assert memory.detect(FactSources(procfs=tmp_path / "absent")) is None


# ---------------------------------------------------------------- emulation


def test_emulation_reports_enabled_foreign_qemu_handlers_only(x86_tree: FactSources) -> None:
    assert emulation.detect(x86_tree, "amd64") == ["arm64"]


def test_emulation_skips_the_native_arch(x86_tree: FactSources) -> None:
    assert emulation.detect(x86_tree, "arm64") == []


def test_emulation_names_unknown_handlers_and_dedupes(tmp_path: Path) -> None:
    binfmt = tmp_path / "sys/fs/binfmt_misc"
    write(binfmt / "qemu-x86_64", "enabled\n")
    write(binfmt / "qemu-s390x", "enabled\n")
    write(binfmt / "qemu-mips64el", "enabled\n")
    write(binfmt / "qemu-i386", "disabled\n")
    write(binfmt / "qemu-empty", "")
    write(binfmt / "qemu-aarch64", "enabled\n")
    write(binfmt / "qemu-arm64", "enabled\n")  # a second handler for arm64: reported once
    write(binfmt / "python3.11", "enabled\n")  # not qemu: ignored
    # In handler-name order; unknown handlers are named by their suffix.
    assert emulation.detect(FactSources(procfs=tmp_path), "ppc64le") == ["arm64", "mips64el", "s390x", "amd64"]
    assert emulation.detect(FactSources(procfs=tmp_path), "arm64") == ["mips64el", "s390x", "amd64"]


def test_emulation_without_binfmt_misc(tmp_path: Path) -> None:
    assert emulation.detect(FactSources(procfs=tmp_path), "amd64") == []


# ---------------------------------------------------------------- arch


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("x86_64", "amd64"),
        ("amd64", "amd64"),
        ("aarch64", "arm64"),
        ("arm64", "arm64"),
        ("AARCH64", "arm64"),
        (" x86_64\n", "amd64"),
        ("riscv64", "riscv64"),
        ("armv7l", "armv7l"),
    ],
)
def test_arch_normalise(raw: str, norm: str) -> None:
    assert arch.normalise(raw) == norm


def test_arch_detect_from_sources(tmp_path: Path) -> None:
    facts = arch.detect(FactSources(sysfs=tmp_path, procfs=tmp_path, machine="aarch64"))
    assert (facts.arch, facts.arch_raw, facts.supported) == ("arm64", "aarch64", True)
    odd = arch.detect(FactSources(machine="riscv64"))
    assert (odd.arch, odd.arch_raw, odd.supported) == ("riscv64", "riscv64", False)


def test_arch_detect_falls_back_to_uname() -> None:
    facts = arch.detect(FactSources())
    assert facts.arch_raw == os.uname().machine
    assert facts.arch == arch.normalise(os.uname().machine)


def test_fact_sources_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DSTACK_AGENT_SYSFS", str(tmp_path / "s"))
    monkeypatch.setenv("DSTACK_AGENT_PROCFS", str(tmp_path / "p"))
    monkeypatch.setenv("DSTACK_AGENT_UNAME_M", "aarch64")
    assert FactSources.from_env() == FactSources(tmp_path / "s", tmp_path / "p", "aarch64")
    for name in ("DSTACK_AGENT_SYSFS", "DSTACK_AGENT_PROCFS", "DSTACK_AGENT_UNAME_M"):
        monkeypatch.delenv(name)
    assert FactSources.from_env() == FactSources(Path("/sys"), Path("/proc"), "")


# ---------------------------------------------------------------- collect / JSON shape

CLOUD_KEYS = {"provider", "region", "zone", "zone_id", "instance_type", "instance_id", "spot", "hyperv_generation"}
TOP_KEYS = {
    "arch",
    "arch_raw",
    "cpu",
    "memory_bytes",
    "disks",
    "nvme",
    "gpus",
    "emulators",
    "cloud",
    "region",
    "zone",
    "labels",
}


def test_collect_json_has_every_documented_key(x86_tree: FactSources, tmp_path: Path) -> None:
    facts = collect.collect(x86_tree, [str(tmp_path), str(tmp_path / "does-not-exist")])
    out = facts.to_json_dict()
    assert TOP_KEYS - set(out) == set()
    assert set(out["cpu"]) == {"vendor", "model", "cores", "threads"}
    assert set(out["cloud"]) == CLOUD_KEYS
    json.loads(json.dumps(out))  # serialisable as is

    assert (out["arch"], out["arch_raw"]) == ("amd64", "x86_64")
    assert out["cpu"] == {"vendor": "GenuineIntel", "model": XEON, "cores": 4, "threads": 8}
    assert out["memory_bytes"] == 16318480 * 1024
    assert out["emulators"] == ["arm64"]
    assert out["nvme"] == [] and out["gpus"] == [] and out["labels"] == {}
    assert all(v is None for v in out["cloud"].values())
    assert out["region"] is None and out["zone"] is None
    # "/" always, then the extra paths that exist; missing ones are skipped.
    assert [d["path"] for d in out["disks"]] == ["/", str(tmp_path)]
    assert all(isinstance(d["size_bytes"], int) and d["size_bytes"] > 0 for d in out["disks"])


def test_collect_on_arm64_tree(arm_tree: FactSources) -> None:
    out = collect.collect(arm_tree, ["/"]).to_json_dict()
    assert (out["arch"], out["arch_raw"]) == ("arm64", "aarch64")
    assert out["cpu"] == {"vendor": "ARM", "model": "Neoverse-N1", "cores": 4, "threads": 4}
    assert out["memory_bytes"] == 4096000 * 1024
    assert out["emulators"] == []
    assert [d["path"] for d in out["disks"]] == ["/"]  # repeats dropped


def test_collect_to_proto_maps_unknowns_to_zero_values(tmp_path: Path) -> None:
    sources = FactSources(sysfs=tmp_path / "s", procfs=tmp_path / "p", machine="aarch64", path="")
    facts = collect.collect(sources)
    facts.region, facts.labels = "eu", {"rack": "4"}
    msg = facts.to_proto("1.2.3")
    assert (msg.arch, msg.arch_raw, msg.memory_bytes, msg.agent_version) == ("arm64", "aarch64", 0, "1.2.3")
    assert (msg.cpu.vendor, msg.cpu.model, msg.cpu.cores, msg.cpu.threads) == ("", "", 0, 0)
    assert (msg.region, msg.zone, dict(msg.labels)) == ("eu", "", {"rack": "4"})
