"""arm64 CPU names from /proc/cpuinfo's implementer and part ids (agent/facts/cpu_parts.py)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from agent.facts import cpu, cpu_parts
from agent.facts.sources import FactSources

GRAVITON3 = Path(__file__).resolve().parents[1] / "fixtures/hosts/graviton3"


def arm_cpuinfo(
    implementer: str, part: str, count: int = 2, variant: str = "0x1", bogomips: str = "2100.00", first: int = 0
) -> str:
    """The layout of the kernel's arm64 show_cpuinfo(): one block per CPU, each ended by a blank line."""
    return "".join(
        f"processor\t: {n}\n"
        f"BogoMIPS\t: {bogomips}\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm\n"
        f"CPU implementer\t: {implementer}\n"
        "CPU architecture: 8\n"
        f"CPU variant\t: {variant}\n"
        f"CPU part\t: {part}\n"
        "CPU revision\t: 1\n\n"
        for n in range(first, first + count)
    )


def tree(tmp_path: Path, cpuinfo: str) -> FactSources:
    (tmp_path / "proc").mkdir(parents=True, exist_ok=True)
    (tmp_path / "proc/cpuinfo").write_text(cpuinfo)
    return FactSources(sysfs=tmp_path / "sys", procfs=tmp_path / "proc", machine="aarch64")


def test_graviton3() -> None:
    facts = cpu.detect(FactSources(sysfs=GRAVITON3 / "sys", procfs=GRAVITON3 / "proc", machine="aarch64"))
    assert (facts.vendor, facts.model, facts.cores, facts.threads) == ("ARM", "Neoverse-V1", 2, 2)
    assert {"sve", "bf16", "i8mm"} <= set(facts.flags)


@pytest.mark.parametrize(
    ("implementer", "part", "vendor", "model"),
    [
        ("0x41", "0xd0c", "ARM", "Neoverse-N1"),  # Graviton2, Ampere Altra
        ("0x41", "0xd4f", "ARM", "Neoverse-V2"),  # Graviton4, NVIDIA Grace
        ("0x41", "0xd49", "ARM", "Neoverse-N2"),
        ("0x41", "0xd84", "ARM", "Neoverse-V3"),
        ("0x41", "0xd8e", "ARM", "Neoverse-N3"),
        ("0x41", "0xd08", "ARM", "Cortex-A72"),  # Raspberry Pi 4
        ("0xc0", "0xac3", "Ampere", "AmpereOne"),
        ("0x48", "0xd01", "HiSilicon", "Kunpeng-920"),
        ("0x6d", "0xd49", "Microsoft", "Azure-Cobalt-100"),
        ("0x43", "0x0af", "Cavium", "ThunderX2"),
        ("0x50", "0x000", "APM", "X-Gene"),  # part 0 is a real id
    ],
)
def test_known_parts(tmp_path: Path, implementer: str, part: str, vendor: str, model: str) -> None:
    facts = cpu.detect(tree(tmp_path, arm_cpuinfo(implementer, part)))
    assert (facts.vendor, facts.model, facts.threads) == (vendor, model, 2)


def test_graviton2_and_grace_lines(tmp_path: Path) -> None:
    graviton2 = cpu.detect(tree(tmp_path / "g2", arm_cpuinfo("0x41", "0xd0c", variant="0x3", bogomips="243.75")))
    grace = cpu.detect(
        tree(tmp_path / "grace", arm_cpuinfo("0x41", "0xd4f", count=72, variant="0x0", bogomips="2000.00"))
    )
    assert (graviton2.vendor, graviton2.model) == ("ARM", "Neoverse-N1")
    assert (grace.vendor, grace.model, grace.cores, grace.threads) == ("ARM", "Neoverse-V2", 72, 72)


@pytest.mark.parametrize(
    ("implementer", "part", "vendor"),
    [
        ("0x41", "0xfff", "ARM"),  # a newer Arm core than the table
        ("0x99", "0xd40", "implementer 0x99"),  # an implementer the table does not know
        ("banana", "0xd40", "implementer banana"),
        ("0x41", "", "ARM"),
        ("0x41", "not-hex", "ARM"),
    ],
)
def test_unknown_ids_give_no_model_and_never_fail(tmp_path: Path, implementer: str, part: str, vendor: str) -> None:
    facts = cpu.detect(tree(tmp_path, arm_cpuinfo(implementer, part)))
    assert (facts.vendor, facts.model, facts.threads) == (vendor, None, 2)


def test_big_little_lists_each_core_type_once(tmp_path: Path) -> None:
    # RK3588: four Cortex-A55 then four Cortex-A76.
    text = arm_cpuinfo("0x41", "0xd05", count=4) + arm_cpuinfo("0x41", "0xd0b", count=4, first=4)
    facts = cpu.detect(tree(tmp_path, text))
    assert (facts.vendor, facts.model, facts.threads) == ("ARM", "Cortex-A55 + Cortex-A76", 8)


def test_lookup() -> None:
    assert cpu_parts.lookup("0x41", "0xd40") == ("ARM", "Neoverse-V1")
    assert cpu_parts.lookup("0X41", "0XD40") == ("ARM", "Neoverse-V1")
    assert cpu_parts.lookup("0x41", None) == ("ARM", None)
    assert cpu_parts.lookup(None, "0xd40") == (None, None)
    assert cpu_parts.lookup("", "") == (None, None)


def test_every_part_belongs_to_a_named_implementer() -> None:
    assert {impl for impl, _ in cpu_parts.PARTS} <= set(cpu_parts.IMPLEMENTERS)


# ---------------------------------------------------------------- py-cpuinfo fallback


class FakePyCpuinfo:
    """Stands in for the py-cpuinfo module; counts calls so a test can tell it was not asked."""

    def __init__(self, brand: Any = "Some Future CPU") -> None:
        self.calls = 0
        self.brand = brand
        self.module = types.ModuleType("cpuinfo")
        self.module.get_cpu_info = self.get_cpu_info  # type: ignore[attr-defined]

    def get_cpu_info(self) -> dict[str, Any]:
        self.calls += 1
        return {"brand_raw": self.brand}


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A procfs that detection treats as the running machine's (only there is py-cpuinfo asked)."""
    monkeypatch.setattr(cpu, "LIVE_PROCFS", tmp_path / "proc")
    return tmp_path


def test_fallback_names_an_unknown_part(live: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePyCpuinfo()
    monkeypatch.setitem(sys.modules, "cpuinfo", fake.module)
    facts = cpu.detect(tree(live, arm_cpuinfo("0x41", "0xfff")))
    assert (facts.vendor, facts.model, fake.calls) == ("ARM", "Some Future CPU", 1)


def test_fallback_is_not_asked_when_the_part_is_known(live: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePyCpuinfo()
    monkeypatch.setitem(sys.modules, "cpuinfo", fake.module)
    assert cpu.detect(tree(live, arm_cpuinfo("0x41", "0xd40"))).model == "Neoverse-V1"
    x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\n\n"
    assert cpu.detect(tree(live, x86)).model == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    assert fake.calls == 0


def test_fallback_is_not_asked_for_a_fixture_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # py-cpuinfo would describe the machine running the tests, not the tree.
    fake = FakePyCpuinfo()
    monkeypatch.setitem(sys.modules, "cpuinfo", fake.module)
    assert cpu.detect(tree(tmp_path, arm_cpuinfo("0x41", "0xfff"))).model is None
    assert fake.calls == 0


@pytest.mark.parametrize("brand", ["", "   ", None, 42])
def test_fallback_without_an_answer(live: Path, monkeypatch: pytest.MonkeyPatch, brand: Any) -> None:
    monkeypatch.setitem(sys.modules, "cpuinfo", FakePyCpuinfo(brand).module)
    assert cpu.detect(tree(live, arm_cpuinfo("0x41", "0xfff"))).model is None


def test_fallback_not_installed(live: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cpuinfo", None)  # makes `import cpuinfo` raise ImportError
    assert cpu.detect(tree(live, arm_cpuinfo("0x41", "0xfff"))).model is None


def test_fallback_that_raises(live: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("cpuinfo")

    def boom() -> dict[str, Any]:
        raise RuntimeError("cpuid failed")

    module.get_cpu_info = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cpuinfo", module)
    assert cpu.detect(tree(live, arm_cpuinfo("0x41", "0xfff"))).model is None
