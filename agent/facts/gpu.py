"""GPUs from the vendors' own tools: nvidia-smi for NVIDIA, rocm-smi (else amd-smi) for AMD.

A tool that is not installed means no GPU of that vendor, silently. A tool that is installed
but fails (a driver that is not loaded, a hang, output we cannot read) also means no GPU,
with one warning naming the tool and why, so an operator can tell "no GPU" from "broken GPU".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.facts.sources import FactSources

log = logging.getLogger("dstack.agent.facts")

TIMEOUT_S = 5.0  # per tool run; a wedged driver can hang nvidia-smi for minutes
MIB = 1024 * 1024

NVIDIA_QUERY = ["--query-gpu=name,memory.total,uuid,pci.bus_id", "--format=csv,noheader,nounits"]
ROCM_SMI_QUERY = ["--showproductname", "--showmeminfo", "vram", "--json"]
AMD_SMI_QUERY = ["static", "--asic", "--vram", "--json"]


@dataclass(frozen=True)
class GpuFacts:
    vendor: str  # nvidia | amd
    name: str
    memory_bytes: int
    # Not in the facts JSON: what a runtime needs to hand this very GPU to a container.
    uuid: str = ""
    pci_bus_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"vendor": self.vendor, "name": self.name, "memory_bytes": self.memory_bytes}


class _Garbage(ValueError):
    """The tool ran and exited 0, but its output is not what we asked for."""


def detect(sources: FactSources) -> list[GpuFacts]:
    gpus = _detect_with("nvidia-smi", NVIDIA_QUERY, _parse_nvidia, sources)
    if shutil.which("rocm-smi", path=sources.path):
        gpus += _detect_with("rocm-smi", ROCM_SMI_QUERY, _parse_rocm_smi, sources)
    else:  # amd-smi replaces rocm-smi in newer ROCm; ask it only where rocm-smi is gone
        gpus += _detect_with("amd-smi", AMD_SMI_QUERY, _parse_amd_smi, sources)
    return gpus


def _detect_with(
    tool: str, args: list[str], parse: Callable[[str], list[GpuFacts]], sources: FactSources
) -> list[GpuFacts]:
    exe = shutil.which(tool, path=sources.path)
    if exe is None:
        return []
    output = _run(tool, [exe, *args])
    if output is None:
        return []
    try:
        return parse(output)
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # _Garbage is a ValueError
        log.warning("%s printed output that is not a GPU list (%s); reporting no GPUs from it", tool, e)
        return []


def _run(tool: str, argv: list[str]) -> str | None:
    """stdout of the tool, or None after one warning. Its own session, so a timeout kills the
    tool and anything it started (a wrapper script's children would keep the pipe open)."""
    try:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True
        )
    except OSError as e:
        log.warning("%s could not be started (%s); reporting no GPUs from it", tool, e)
        return None
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        log.warning("%s did not answer within %gs; reporting no GPUs from it", tool, TIMEOUT_S)
        return None
    if proc.returncode != 0:
        log.warning("%s exited %d: %s; reporting no GPUs from it", tool, proc.returncode, _first_line(err, out))
        return None
    return out


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    # Reap it; a child that left the group may still hold the pipe, so do not wait long.
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=1)


def _first_line(*texts: str) -> str:
    # nvidia-smi prints its failure on stdout, most tools on stderr: the first line that says anything.
    for text in texts:
        for line in text.splitlines():
            if line.strip():
                return line.strip()[:200]
    return "no message"


def _parse_nvidia(output: str) -> list[GpuFacts]:
    gpus = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4 or not fields[0]:
            raise _Garbage(f"expected name, memory.total, uuid, pci.bus_id in {line[:80]!r}")
        name, memory, uuid, bus_id = fields
        # "[N/A]"/"[Not Supported]": the GPU is there, its memory unknown.
        mib = 0 if memory.startswith("[") else int(memory)
        gpus.append(GpuFacts("nvidia", name, mib * MIB, uuid, bus_id))
    return gpus


def _json_after_preamble(output: str) -> Any:
    """The AMD tools may print warnings before the JSON document; parse from its first brace."""
    starts = [i for i in (output.find("{"), output.find("[")) if i >= 0]
    if not starts:
        raise _Garbage("no JSON document")
    try:
        value, _ = json.JSONDecoder().raw_decode(output[min(starts) :])
    except json.JSONDecodeError as e:
        raise _Garbage(f"invalid JSON: {e.msg}") from e
    return value


def _get(d: dict[str, Any], *keys: str) -> Any:
    """First present, non-empty value among keys, compared case-insensitively (rocm-smi
    releases spell "Card series" and "Card Series")."""
    lowered = {str(k).lower(): v for k, v in d.items()}
    for key in keys:
        value = lowered.get(key.lower())
        if value not in (None, "", "N/A"):
            return value
    return None


def _parse_rocm_smi(output: str) -> list[GpuFacts]:
    data = _json_after_preamble(output)
    if not isinstance(data, dict):
        raise _Garbage("expected an object keyed by card")
    cards = sorted((k for k in data if k.startswith("card") and k[4:].isdigit()), key=lambda k: int(k[4:]))
    gpus = []
    for key in cards:
        card = data[key]
        if not isinstance(card, dict):
            continue
        model = _get(card, "Card model")
        if isinstance(model, str) and model.lower().startswith("0x"):
            model = None  # some releases put the PCI device id here, not a name
        name = _get(card, "Card series") or model or _get(card, "Card SKU") or ""
        memory = _get(card, "VRAM Total Memory (B)")
        gpus.append(GpuFacts("amd", str(name), int(memory) if memory is not None else 0))
    return gpus


def _parse_amd_smi(output: str) -> list[GpuFacts]:
    data = _json_after_preamble(output)
    if isinstance(data, dict):
        data = data.get("gpu_data", [data])  # newer releases wrap the list
    if not isinstance(data, list):
        raise _Garbage("expected a list of GPUs")
    gpus = []
    for item in data:
        if not isinstance(item, dict):
            continue
        asic = item.get("asic") or {}
        vram = item.get("vram") or {}
        name = _get(asic, "market_name") or ""
        gpus.append(GpuFacts("amd", str(name), _amd_smi_bytes(vram.get("size"))))
    return gpus


_UNITS = {"B": 1, "KB": 1024, "MB": MIB, "GB": 1024 * MIB}  # amd-smi's "MB" are MiB


def _amd_smi_bytes(size: Any) -> int:
    """amd-smi has printed the VRAM size as {"value": 65536, "unit": "MB"}, "65536 MB" and 65536."""
    if size is None or size == "N/A":
        return 0
    value: Any
    if isinstance(size, dict):
        value, unit = size.get("value"), str(size.get("unit") or "MB")
    elif isinstance(size, str):
        value, _, unit = size.strip().partition(" ")
        unit = unit or "MB"
    else:
        value, unit = size, "MB"
    if unit.upper() not in _UNITS:
        raise _Garbage(f"unknown VRAM unit {unit!r}")
    return int(value) * _UNITS[unit.upper()]
