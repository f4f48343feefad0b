"""GPU detection through fake vendor tools put on sources.path."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from agent.facts import gpu
from agent.facts.gpu import GpuFacts
from agent.facts.sources import FactSources

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TWO_GPUS = FIXTURES / "hosts/onprem-2gpu/bin"
BROKEN = FIXTURES / "gpu-tools/broken"
MIB = 1024 * 1024
LOGGER = "dstack.agent.facts"


def on_path(*dirs: Path) -> FactSources:
    return FactSources(path=":".join(str(d) for d in dirs))


def tool(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return directory


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


@pytest.fixture(autouse=True)
def _capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)


# ---------------------------------------------------------------- nvidia


def test_two_nvidia_gpus(caplog: pytest.LogCaptureFixture) -> None:
    found = gpu.detect(on_path(TWO_GPUS))
    assert [g.to_dict() for g in found] == [
        {"vendor": "nvidia", "name": "NVIDIA A100-SXM4-80GB", "memory_bytes": 81920 * MIB}
    ] * 2
    assert [g.uuid for g in found] == [
        "GPU-8d1f3e2a-5b7c-4e9d-a6f0-3c2b1d4e5f60",
        "GPU-2c4e6a8b-0d1f-4a3c-9e5b-7f9d1b3a5c7e",
    ]
    assert [g.pci_bus_id for g in found] == ["00000000:07:00.0", "00000000:0F:00.0"]
    assert warnings(caplog) == []


def test_missing_tools_mean_no_gpu_and_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert gpu.detect(on_path(tmp_path)) == []
    assert gpu.detect(FactSources(path="")) == []
    assert warnings(caplog) == []


def test_failing_driver_gives_no_gpu_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert gpu.detect(on_path(BROKEN)) == []
    [message] = warnings(caplog)
    assert "nvidia-smi" in message and "exited 9" in message
    assert "couldn't communicate with the NVIDIA driver" in message


def test_fake_tool_refuses_other_queries() -> None:
    # The fixture answers only gpu.py's query: if that query changed, this would catch it.
    assert gpu.NVIDIA_QUERY == ["--query-gpu=name,memory.total,uuid,pci.bus_id", "--format=csv,noheader,nounits"]


@pytest.mark.parametrize(
    "output",
    [
        "hello world",
        "NVIDIA A100-SXM4-80GB, lots, GPU-1, 00000000:07:00.0",
        "NVIDIA A100-SXM4-80GB, 81920",
        "<html>proxy error</html>",
        ", 81920, GPU-1, 00000000:07:00.0",
    ],
)
def test_garbage_output_gives_no_gpu_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, output: str
) -> None:
    path = tool(tmp_path, "nvidia-smi", f"cat <<'END'\n{output}\nEND\n")
    assert gpu.detect(on_path(path)) == []
    [message] = warnings(caplog)
    assert message.startswith("nvidia-smi printed output")


def test_memory_not_available_is_zero(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tool(tmp_path, "nvidia-smi", "echo 'NVIDIA GH200 480GB, [N/A], GPU-1, 00000009:01:00.0'\n")
    assert gpu.detect(on_path(path)) == [GpuFacts("nvidia", "NVIDIA GH200 480GB", 0, "GPU-1", "00000009:01:00.0")]
    assert warnings(caplog) == []


def test_no_output_is_no_gpu_without_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert gpu.detect(on_path(tool(tmp_path, "nvidia-smi", "exit 0\n"))) == []
    assert warnings(caplog) == []


@pytest.mark.parametrize("body", ["exec sleep 30\n", "sleep 30 &\nsleep 30\n"])
def test_hanging_tool_times_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    # The second body leaves a child holding stdout: the whole process group must go.
    monkeypatch.setattr(gpu, "TIMEOUT_S", 0.3)
    start = time.monotonic()
    assert gpu.detect(on_path(tool(tmp_path, "nvidia-smi", body))) == []
    assert time.monotonic() - start < 3
    [message] = warnings(caplog)
    assert "nvidia-smi did not answer within 0.3s" in message


def test_tool_that_cannot_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tool(tmp_path, "nvidia-smi", "")
    (path / "nvidia-smi").write_text("#!/nonexistent/interpreter\n")
    assert gpu.detect(on_path(path)) == []
    [message] = warnings(caplog)
    assert message.startswith("nvidia-smi could not be started")


# ---------------------------------------------------------------- amd

ROCM_SMI_JSON = {
    "card0": {
        "VRAM Total Memory (B)": "68702699520",
        "VRAM Total Used Memory (B)": "10960896",
        "Card Series": "AMD Instinct MI210",
        "Card Model": "0x740f",
        "Card Vendor": "Advanced Micro Devices, Inc. [AMD/ATI]",
        "Card SKU": "D67301",
    },
    "card1": {
        # Older rocm-smi: lower-case keys, and a series name missing.
        "VRAM Total Memory (B)": "68702699520",
        "Card series": "",
        "Card model": "0x740f",
        "Card SKU": "D67301",
    },
    "system": {"Driver version": "6.7.0"},
}


def test_rocm_smi(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # rocm-smi may print warnings before its JSON.
    preamble = "WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status"
    body = f"echo '{preamble}'\ncat <<'END'\n{json.dumps(ROCM_SMI_JSON)}\nEND\n"
    path = tool(tmp_path, "rocm-smi", body)
    assert gpu.detect(on_path(path)) == [
        GpuFacts("amd", "AMD Instinct MI210", 68702699520),
        GpuFacts("amd", "D67301", 68702699520),
    ]
    assert warnings(caplog) == []


def test_rocm_smi_garbage_and_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert gpu.detect(on_path(tool(tmp_path / "a", "rocm-smi", "echo '{\"card0\": {'\n"))) == []
    failing = "echo 'ERROR: GPU[0] amdgpu not loaded' >&2\nexit 1\n"
    assert gpu.detect(on_path(tool(tmp_path / "b", "rocm-smi", failing))) == []
    assert gpu.detect(on_path(tool(tmp_path / "c", "rocm-smi", "echo '[1, 2]'\n"))) == []
    messages = warnings(caplog)
    assert len(messages) == 3 and all(m.startswith("rocm-smi ") for m in messages)
    assert "exited 1: ERROR: GPU[0] amdgpu not loaded" in messages[1]


def mi300x(size: object) -> dict[str, object]:
    return {"gpu": 0, "asic": {"market_name": "AMD Instinct MI300X"}, "vram": {"type": "HBM", "size": size}}


@pytest.mark.parametrize(
    ("document", "size"),
    [
        ([mi300x({"value": 196592, "unit": "MB"})], 196592 * MIB),
        ({"gpu_data": [mi300x("196592 MB")]}, 196592 * MIB),  # newer releases wrap the list
        ([mi300x(196592)], 196592 * MIB),
        ([mi300x("N/A")], 0),
    ],
)
def test_amd_smi_when_rocm_smi_is_absent(tmp_path: Path, document: object, size: int) -> None:
    path = tool(tmp_path, "amd-smi", f"cat <<'END'\n{json.dumps(document)}\nEND\n")
    assert gpu.detect(on_path(path)) == [GpuFacts("amd", "AMD Instinct MI300X", size)]


def test_amd_smi_is_not_asked_when_rocm_smi_is_there(tmp_path: Path) -> None:
    path = tool(tmp_path, "rocm-smi", "echo '{}'\n")
    tool(tmp_path, "amd-smi", "echo called >&2\nexit 1\n")
    assert gpu.detect(on_path(path)) == []


def test_amd_smi_unknown_unit_is_garbage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    doc = [{"asic": {"market_name": "X"}, "vram": {"size": {"value": 1, "unit": "parsecs"}}}]
    assert gpu.detect(on_path(tool(tmp_path, "amd-smi", f"echo '{json.dumps(doc)}'\n"))) == []
    [message] = warnings(caplog)
    assert "amd-smi" in message and "parsecs" in message


def test_nvidia_and_amd_together(tmp_path: Path) -> None:
    amd = tool(tmp_path, "rocm-smi", f"echo '{json.dumps({'card0': ROCM_SMI_JSON['card0']})}'\n")
    found = gpu.detect(on_path(TWO_GPUS, amd))
    assert [g.vendor for g in found] == ["nvidia", "nvidia", "amd"]
