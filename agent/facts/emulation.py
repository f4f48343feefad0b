"""Foreign architectures this host's binfmt_misc could emulate (qemu-user handlers).

Reported so an operator sees the host *could* run them; the agent still refuses to."""

from __future__ import annotations

from agent.facts.sources import FactSources, read_text

QEMU_ARCHES = {
    "qemu-aarch64": "arm64",
    "qemu-x86_64": "amd64",
    "qemu-arm": "arm",
    "qemu-riscv64": "riscv64",
    "qemu-ppc64le": "ppc64le",
    "qemu-s390x": "s390x",
    "qemu-i386": "386",
}


def detect(sources: FactSources, native_arch: str) -> list[str]:
    root = sources.procfs / "sys/fs/binfmt_misc"
    found: list[str] = []
    try:
        entries = sorted(p for p in root.iterdir() if p.name.startswith("qemu-"))
    except OSError:
        return found
    for entry in entries:
        text = read_text(entry) or ""
        if text.splitlines()[:1] != ["enabled"]:
            continue
        arch = QEMU_ARCHES.get(entry.name, entry.name.removeprefix("qemu-"))
        if arch != native_arch and arch not in found:
            found.append(arch)
    return found
