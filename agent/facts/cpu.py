"""CPU vendor, model, physical cores and logical CPUs from /proc/cpuinfo and sysfs topology."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from agent.facts import cpu_parts
from agent.facts.sources import FactSources, read_text

# py-cpuinfo inspects the machine it runs on, not a fixture tree, so it is asked only when
# the sources point at the live procfs (tests point this at their tree to exercise it).
LIVE_PROCFS = Path("/proc")


@dataclass(frozen=True)
class CpuFacts:
    vendor: str | None
    model: str | None
    cores: int | None
    threads: int | None
    flags: list[str] = field(default_factory=list)


def _blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def detect(sources: FactSources) -> CpuFacts:
    text = read_text(sources.procfs / "cpuinfo") or ""
    procs = [b for b in _blocks(text) if "processor" in b]
    first = procs[0] if procs else {}
    if "CPU implementer" in first:
        vendor, model = _arm_identity(procs)
    else:
        vendor, model = first.get("vendor_id") or None, first.get("model name") or first.get("Model name") or None
    if model is None and procs and sources.procfs == LIVE_PROCFS:
        model = _py_cpuinfo_brand()
    threads = len(procs) or None
    flags = (first.get("flags") or first.get("Features") or "").split()
    return CpuFacts(vendor, model, _physical_cores(sources, procs) or threads, threads, flags)


def _arm_identity(procs: list[dict[str, str]]) -> tuple[str | None, str | None]:
    """arm64 cpuinfo names no model: map implementer/part ids (cpu_parts). Big.LITTLE SoCs list
    several parts; their distinct names are joined in the order the kernel lists the CPUs."""
    first = procs[0]
    implementer = first["CPU implementer"]
    vendor, _ = cpu_parts.lookup(implementer, None)
    names: list[str] = []
    for proc in procs:
        _, name = cpu_parts.lookup(proc.get("CPU implementer"), proc.get("CPU part"))
        if name and name not in names:
            names.append(name)
    # 32-bit Arm kernels do print a "model name" (e.g. "ARMv7 Processor rev 3 (v7l)"): less
    # precise than the part's name, still better than none.
    model = " + ".join(names) or first.get("model name") or None
    return vendor or f"implementer {implementer}", model


def _py_cpuinfo_brand() -> str | None:
    """Last resort for a CPU the tables do not know. Imported here, not at the top: py-cpuinfo
    takes over a second (it runs CPUID in a child process), and it is an optional dependency."""
    try:
        module = importlib.import_module("cpuinfo")
        brand = module.get_cpu_info().get("brand_raw")
    except Exception:  # not installed, or failed on this machine: the model stays unknown
        return None
    return (brand.strip() or None) if isinstance(brand, str) else None


def _physical_cores(sources: FactSources, procs: list[dict[str, str]]) -> int | None:
    """Distinct (package, core) pairs: from sysfs topology, else from cpuinfo's ids."""
    pairs: set[tuple[str, str]] = set()
    cpu_dir = sources.sysfs / "devices/system/cpu"
    for proc in procs:
        n = proc.get("processor", "")
        core = read_text(cpu_dir / f"cpu{n}/topology/core_id")
        package = read_text(cpu_dir / f"cpu{n}/topology/physical_package_id")
        if core is not None and package is not None:
            pairs.add((package.strip(), core.strip()))
        elif "core id" in proc:
            pairs.add((proc.get("physical id", "0"), proc["core id"]))
    return len(pairs) or None
