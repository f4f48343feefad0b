"""Names for arm64 CPUs: /proc/cpuinfo on arm64 has no "model name", only the MIDR_EL1 fields
"CPU implementer" and "CPU part", so the agent maps them to names here.

Source: the Linux kernel's arch/arm64/include/asm/cputype.h (ARM_CPU_IMP_* and *_CPU_PART_*),
whose values come from the MIDR_EL1 descriptions in Arm's Technical Reference Manuals; names
spelled as util-linux's lscpu (sys-utils/lscpu-arm.c) prints them, so `lscpu` on the host agrees.
Only ids both agree on are listed; an unknown one yields no name rather than a guess.
"""

from __future__ import annotations

IMPLEMENTERS: dict[int, str] = {
    0x41: "ARM",
    0x42: "Broadcom",
    0x43: "Cavium",
    0x46: "FUJITSU",
    0x48: "HiSilicon",
    0x4E: "NVIDIA",
    0x50: "APM",
    0x51: "Qualcomm",
    0x61: "Apple",
    0x6D: "Microsoft",
    0xC0: "Ampere",
}

# (implementer, part) -> name. Cloud CPUs built on Arm's cores report implementer 0x41 and
# the core's part: Graviton2 and Ampere Altra are Neoverse-N1, Graviton3 Neoverse-V1,
# Graviton4 and NVIDIA Grace Neoverse-V2.
PARTS: dict[tuple[int, int], str] = {
    (0x41, 0xD03): "Cortex-A53",
    (0x41, 0xD04): "Cortex-A35",
    (0x41, 0xD05): "Cortex-A55",
    (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD09): "Cortex-A73",
    (0x41, 0xD0A): "Cortex-A75",
    (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD0D): "Cortex-A77",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD41): "Cortex-A78",
    (0x41, 0xD42): "Cortex-A78AE",
    (0x41, 0xD44): "Cortex-X1",
    (0x41, 0xD46): "Cortex-A510",
    (0x41, 0xD47): "Cortex-A710",
    (0x41, 0xD48): "Cortex-X2",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4A): "Neoverse-E1",
    (0x41, 0xD4B): "Cortex-A78C",
    (0x41, 0xD4C): "Cortex-X1C",
    (0x41, 0xD4D): "Cortex-A715",
    (0x41, 0xD4E): "Cortex-X3",
    (0x41, 0xD4F): "Neoverse-V2",
    (0x41, 0xD84): "Neoverse-V3",
    (0x41, 0xD8E): "Neoverse-N3",
    (0x42, 0x100): "Brahma-B53",
    (0x42, 0x516): "Vulcan",
    (0x43, 0x0A1): "ThunderX",
    (0x43, 0x0A2): "ThunderX-81XX",
    (0x43, 0x0A3): "ThunderX-83XX",
    (0x43, 0x0AF): "ThunderX2",
    (0x46, 0x001): "A64FX",
    (0x48, 0xD01): "Kunpeng-920",  # the kernel's HISI_CPU_PART_TSV110
    (0x4E, 0x003): "Denver-2",
    (0x4E, 0x004): "Carmel",
    (0x50, 0x000): "X-Gene",
    (0x51, 0x803): "Kryo-3XX-Silver",
    (0x51, 0x804): "Kryo-4XX-Gold",
    (0x51, 0x805): "Kryo-4XX-Silver",
    (0x51, 0xC00): "Falkor",
    (0x61, 0x022): "Icestorm-M1",
    (0x61, 0x023): "Firestorm-M1",
    (0x61, 0x032): "Blizzard-M2",
    (0x61, 0x033): "Avalanche-M2",
    (0x6D, 0xD49): "Azure-Cobalt-100",  # Microsoft's own implementer id on a Neoverse-N2 core
    (0xC0, 0xAC3): "AmpereOne",  # the kernel's AMPERE1
    (0xC0, 0xAC4): "Ampere-1A",  # the kernel's AMPERE1A; no marketing name is settled enough to use
}


def _hex(value: str | None) -> int | None:
    """cpuinfo prints both fields as hex ("0x41", "0xd40"); anything else is no id."""
    if not value:
        return None
    try:
        return int(value.strip(), 16)
    except ValueError:
        return None


def lookup(implementer: str | None, part: str | None) -> tuple[str | None, str | None]:
    """(vendor, model) names for cpuinfo's "CPU implementer" and "CPU part"; None where unknown."""
    impl = _hex(implementer)
    if impl is None:
        return None, None
    part_id = _hex(part)
    return IMPLEMENTERS.get(impl), PARTS.get((impl, part_id)) if part_id is not None else None
