"""The GPU rule: enough free GPUs of the requested vendor, name and memory. GPUs are whole and never
shared, so a host's free count is its matching GPUs minus all it has allocated (which ones are in use is
not tracked, so the count assumes the worst: that they were matching ones)."""

from __future__ import annotations

from collections.abc import Iterable

from controller.placement.model import GpuInfo, GpuReq, HostView, Requirements
from controller.placement.text import format_bytes

# nvidia-smi reports 81559MiB for an "80GB" H100 and 24564MiB for a "24GB" card: a GPU meets a minimum
# when it has 95% of it.
MEMORY_SLACK_PERCENT = 95


def kind_matches(req: GpuReq, gpu: GpuInfo) -> bool:
    if req.vendor is not None and req.vendor.lower() != gpu.vendor.lower():
        return False
    name = gpu.name.lower()
    return not req.names or any(n.lower() in name for n in req.names)


def memory_matches(req: GpuReq, gpu: GpuInfo) -> bool:
    if req.memory_min is not None and gpu.memory_bytes * 100 < req.memory_min * MEMORY_SLACK_PERCENT:
        return False
    return req.memory_max is None or gpu.memory_bytes <= req.memory_max


def matching(req: GpuReq, gpus: Iterable[GpuInfo]) -> int:
    return sum(1 for g in gpus if kind_matches(req, g) and memory_matches(req, g))


def to_allocate(req: Requirements) -> int:
    """The bottom of the count range: a task gets what it asked for at least, leaving the rest for others."""
    return max(req.gpu.count_min, 0) if req.gpu is not None else 0


def could_fit(req: Requirements, gpus: Iterable[GpuInfo]) -> bool:
    """Whether a host with these GPUs, none of them in use, would pass the rule."""
    return req.gpu is None or req.gpu.count_min <= 0 or matching(req.gpu, gpus) >= req.gpu.count_min


def gpu(req: Requirements, host: HostView) -> str:
    want = req.gpu
    if want is None or want.count_min <= 0:
        return ""
    kinds = [g for g in host.gpus if kind_matches(want, g)]
    if not kinds:
        return f"needs {_kind_text(want)} GPU, has none"
    fitting = sum(1 for g in kinds if memory_matches(want, g))
    if not fitting:
        has = ", ".join(format_bytes(m) for m in sorted({g.memory_bytes for g in kinds}))
        return f"needs {_memory_text(want)} GPU memory, has {has}"
    free = max(fitting - max(host.gpus_used, 0), 0)
    if free < want.count_min:
        return f"needs {want.count_min} GPU, {free} free"
    return ""


def _kind_text(req: GpuReq) -> str:
    # Model names read best in upper case (A100, L40S, MI300X) whatever case the task used.
    parts = [req.vendor] if req.vendor else []
    if req.names:
        parts.append(" or ".join(n.upper() for n in req.names))
    return " ".join(parts) if parts else str(req.count_min)


def _memory_text(req: GpuReq) -> str:
    if req.memory_min is not None and req.memory_max is not None:
        return f"{format_bytes(req.memory_min)}..{format_bytes(req.memory_max)}"
    if req.memory_max is not None:
        return f"at most {format_bytes(req.memory_max)}"
    return format_bytes(req.memory_min or 0)
