"""`dstack-agent simulate`: many hosts from one process through the real protocol (CA discovery,
CSR, mutual-TLS streams), and tasks that "run" without Docker. Needs no Docker engine."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.sim.facts import host_facts, region_for_zone, template_from_json
from tests.support.cluster import BIN, ControllerProcess, Process, wait_for, write_task

FACTS = Path(__file__).parents[1] / "fixtures" / "sim" / "host.json"


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerProcess]:
    c = ControllerProcess(tmp_path / "controller")
    c.start()
    yield c
    c.stop()


def simulator(controller: ControllerProcess, tmp_path: Path, token: str, count: int, *extra: str) -> Process:
    args = [str(BIN / "dstack-agent"), "simulate", "--count", str(count), "--facts", str(FACTS)]
    args += ["--controller", controller.address, "--join-token", token, *extra]
    # Never read this machine's /etc/dstack/agent.yaml.
    (tmp_path / "no-agent.yaml").write_text("cloud: off\n")
    args += ["--config", str(tmp_path / "no-agent.yaml")]
    return Process(args, tmp_path / "sim.log", dict(os.environ, DSTACK_AGENT_RECONNECT_MAX_S="2"))


def online_hosts(controller: ControllerProcess, sim: Process, count: int) -> list[dict[str, Any]] | None:
    if not sim.running:
        raise AssertionError(f"the simulator exited:\n{sim.log()}")
    hosts = [h for h in controller.ctl_json("hosts") if h["status"] == "online"]
    return hosts if len(hosts) == count else None


def test_simulated_hosts_register_connect_and_run_tasks(controller: ControllerProcess, tmp_path: Path) -> None:
    sim = simulator(
        controller, tmp_path, controller.token("--uses", "20"), 20, "--zones", "z-a,z-b", "--arches", "amd64,arm64"
    )
    sim.start()
    try:
        hosts = wait_for("20 simulated hosts online", lambda: online_hosts(controller, sim, 20), timeout=20)
        by_name = {h["name"]: h for h in hosts}
        assert sorted(by_name) == [f"sim-{i:05d}" for i in range(20)]
        for i in range(20):
            h = by_name[f"sim-{i:05d}"]
            assert (h["arch"], h["zone"]) == (("amd64", "z-a") if i % 2 == 0 else ("arm64", "z-b"))
            assert h["facts"]["arch_raw"] == ("x86_64" if i % 2 == 0 else "aarch64")
            assert h["facts"]["hostname"] == h["name"]
            assert h["cpu_total"] == 8
        assert "registered 20/20 hosts" in sim.log() and "connected 20/20 hosts" in sim.log()

        # Placement sees them as any other hosts: an arm task lands on an arm64 one and "runs" there.
        task = write_task(
            tmp_path / "arm.yaml",
            """\
type: task
name: sim-arm
image: busybox
commands: ["uname -m"]
env:
  DSTACK_SIM_SECONDS: "1"
resources:
  cpu: arm:1..
""",
        )
        out = controller.ctl("submit", "-f", str(task), timeout=30)
        assert out.returncode == 0, out.stderr
        row = controller.task("sim-arm")
        assert (row["status"], row["exit"]) == ("done", 0)
        assert by_name[row["host"]]["arch"] == "arm64"
        assert out.stdout == f"simulated on {row['host']}\n"
        assert controller.logs("sim-arm").stdout == f"simulated on {row['host']}\n"

        # A long task ends early on stop, as a shell's sleep does on SIGTERM.
        long = write_task(
            tmp_path / "long.yaml",
            """\
type: task
name: sim-long
image: busybox
commands: ["sleep 300"]
env:
  DSTACK_SIM_SECONDS: "300"
""",
        )
        assert controller.ctl("submit", "-d", "-f", str(long)).returncode == 0
        controller.wait_status("sim-long", "running", timeout=15)
        assert controller.ctl("stop", "sim-long").returncode == 0
        row = controller.wait_status("sim-long", "stopped", timeout=15)
        assert row["exit"] == 143
    finally:
        rc = sim.stop(signal.SIGTERM, timeout=15)
    assert rc == 0, sim.log()
    assert "stopped 20 simulated hosts" in sim.log()
    wait_for(
        "the simulated hosts offline",
        lambda: all(h["status"] == "offline" for h in controller.ctl_json("hosts")),
        timeout=10,
    )


def test_a_token_with_too_few_uses_stops_the_simulation_with_a_reason(
    controller: ControllerProcess, tmp_path: Path
) -> None:
    sim = simulator(controller, tmp_path, controller.token("--uses", "2"), 3)
    sim.start()
    assert sim.proc is not None
    rc = sim.proc.wait(timeout=20)
    assert rc == 1, sim.log()
    assert "join token refused" in sim.log() and "--uses 3" in sim.log()


def test_bad_input_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"arch": "riscv64"}')
    out = subprocess.run(
        [str(BIN / "dstack-agent"), "simulate", "--count", "2", "--facts", str(bad), "--join-token", "x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "riscv64" in out.stderr and "--arches" in out.stderr


def test_facts_follow_the_zone_and_arch_spread() -> None:
    template = template_from_json(
        {
            "arch": "amd64",
            "arch_raw": "x86_64",
            "emulators": ["arm64"],
            "cloud": {
                "provider": "aws",
                "region": "eu-west-1",
                "zone": "eu-west-1a",
                "zone_id": "euw1-az3",
                "instance_id": "i-0f1e2d3c4b5a69788",
            },
            "region": "eu-west-1",
            "zone": "eu-west-1a",
        },
        "template",
    )
    zones, arches = ["eu-west-1a", "eu-west-1b"], ["amd64", "arm64"]
    first = host_facts(template, 0, "sim-00000", zones, arches, None, "test")
    second = host_facts(template, 1, "sim-00001", zones, arches, None, "test")
    assert (second.arch, second.arch_raw, list(second.emulators)) == ("arm64", "aarch64", [])
    assert (second.zone, second.region, second.cloud.zone, second.cloud.zone_id) == (
        "eu-west-1b",
        "eu-west-1",
        "eu-west-1b",
        "",
    )
    assert first.cloud.zone_id == "euw1-az3"  # its zone is the template's
    assert first.cloud.instance_id != second.cloud.instance_id
    assert second.cloud.instance_id.startswith("i-") and len(second.cloud.instance_id) == 19
    assert list(second.overridden) == []  # a cloud host learns its zone from metadata, not agent.yaml
    assert region_for_zone("us-central1-a") == "us-central1"
    assert region_for_zone("z-a") is None
    onprem = template_from_json({"arch": "arm64"}, "template")
    placed = host_facts(onprem, 3, "sim-00003", ["rack-1"], [], "dc-east", "test")
    assert (placed.zone, placed.region, list(placed.overridden)) == ("rack-1", "dc-east", ["zone", "region"])
