"""CPU vendor, model, physical cores and logical CPUs from /proc/cpuinfo and sysfs topology."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.facts.sources import FactSources, read_text


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
    vendor = first.get("vendor_id") or (
        f"implementer {first['CPU implementer']}" if "CPU implementer" in first else None
    )
    model = first.get("model name") or first.get("Model name") or None
    threads = len(procs) or None
    flags = (first.get("flags") or first.get("Features") or "").split()
    return CpuFacts(vendor, model, _physical_cores(sources, procs) or threads, threads, flags)


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
