"""Rules about room on the host: CPU and memory left after what its tasks hold, disk size, NVMe."""

from __future__ import annotations

from controller.placement.model import HostView, Requirements
from controller.placement.text import format_bytes, num

# CPU counts are floats (0.5 CPUs); a sum of fractions may miss an exact fit by a rounding hair.
CPU_TOLERANCE = 1e-9


def cpu_fits(need: float, free: float) -> bool:
    return need <= free + CPU_TOLERANCE


def cpu(req: Requirements, host: HostView) -> str:
    if cpu_fits(req.cpu, host.cpu_free):
        return ""
    noun = "CPU" if req.cpu == 1 else "CPUs"
    return f"needs {num(req.cpu)} {noun}, {num(max(host.cpu_free, 0.0))} of {num(host.cpu_total)} free"


def memory(req: Requirements, host: HostView) -> str:
    if req.memory_bytes <= host.memory_free_bytes:
        return ""
    return (
        f"needs {format_bytes(req.memory_bytes)} memory, "
        f"{format_bytes(max(host.memory_free_bytes, 0))} of {format_bytes(host.memory_total_bytes)} free"
    )


def disk(req: Requirements, host: HostView) -> str:
    if req.disk_bytes is None or req.disk_bytes <= host.disk_bytes:
        return ""
    return f"needs {format_bytes(req.disk_bytes)} disk, has {format_bytes(host.disk_bytes)}"


def nvme(req: Requirements, host: HostView) -> str:
    if not req.nvme or host.local_nvme:
        return ""
    return "needs a local NVMe device, has none"
