"""Facts travel to the controller and show in `dstackctl hosts`; SIGHUP re-detects them."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.support.cluster import AgentProcess, wait_for

pytestmark = pytest.mark.docker

HOSTS = Path(__file__).resolve().parents[1] / "fixtures/hosts"


def gpu_box_agent(cluster: Cluster, tmp_path: Path, name: str, with_driver: bool) -> tuple[AgentProcess, Path]:
    """An agent that sees the on-prem GPU box's sysfs/procfs; its GPU tool dir starts empty or not."""
    tree = tmp_path / "onprem-2gpu"
    shutil.copytree(HOSTS / "onprem-2gpu", tree)
    tools = tmp_path / "tools"
    tools.mkdir()
    if with_driver:
        shutil.copy2(tree / "bin/nvidia-smi", tools / "nvidia-smi")
    agent = AgentProcess(cluster.controller, tmp_path / "gpu-agent", cluster.controller.token(), name)
    agent.env.update(
        DSTACK_AGENT_SYSFS=str(tree / "sys"),
        DSTACK_AGENT_PROCFS=str(tree / "proc"),
        PATH=f"{tools}:{agent.env['PATH']}",
    )
    return agent, tools


def host(cluster: Cluster, name: str) -> dict:  # type: ignore[type-arg]
    return next(h for h in cluster.controller.ctl_json("hosts") if h["name"] == name)


def test_hosts_show_the_facts_the_agent_detected(cluster: Cluster, tmp_path: Path) -> None:
    agent, _ = gpu_box_agent(cluster, tmp_path, "gpu-box", with_driver=True)
    agent.start_and_wait_online()
    try:
        h = host(cluster, "gpu-box")
        assert (h["arch"], h["cpu_total"], h["memory_total_bytes"]) == ("amd64", 64, 528168340 * 1024)
        assert [g["name"] for g in h["gpus"]] == ["NVIDIA A100-SXM4-80GB"] * 2
        assert h["facts"]["cpu"]["model"] == "AMD EPYC 7543 32-Core Processor"
        table = cluster.controller.ctl("hosts")
        assert table.returncode == 0
        header, *rows = table.stdout.splitlines()
        assert header.split() == ["NAME", "ARCH", "CPU", "MEMORY", "GPU", "ZONE", "STATUS", "TASKS"]
        row = next(r for r in rows if r.startswith("gpu-box"))
        assert "2xNVIDIA A100-SXM4-80GB (80GB)" in row and "0/64" in row
        verbose = cluster.controller.ctl("hosts", "-v").stdout
        assert "AMD EPYC 7543 32-Core Processor" in verbose and "CLOUD" in verbose and "INSTANCE TYPE" in verbose
    finally:
        agent.stop()


def test_sighup_redetects_a_driver_installed_after_registration(cluster: Cluster, tmp_path: Path) -> None:
    agent, tools = gpu_box_agent(cluster, tmp_path, "late-driver", with_driver=False)
    agent.start_and_wait_online()
    try:
        assert host(cluster, "late-driver")["gpus"] == []
        shutil.copy2(HOSTS / "onprem-2gpu/bin/nvidia-smi", tools / "nvidia-smi")  # the driver arrives
        agent.send_signal(signal.SIGHUP)
        wait_for("the GPUs to show", lambda: len(host(cluster, "late-driver")["gpus"]) == 2, timeout=30)
        assert agent.running  # SIGHUP re-detects; it does not stop the agent
    finally:
        agent.stop()
