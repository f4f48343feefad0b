"""Restarts of the agent or the controller mid-task lose no task, host or log line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.support.cluster import AgentProcess, wait_for, write_task
from tests.support.dockerd import DockerEngine

pytestmark = pytest.mark.docker

COUNTING_TASK = """\
type: task
name: {name}
image: dstack-test/busybox:amd64
commands:
  - for i in $(seq 1 {lines}); do echo "line $i"; echo "err $i" >&2; sleep {pause}; done
  - exit 7
"""


def expected(lines: int, prefix: str = "line") -> str:
    return "".join(f"{prefix} {i}\n" for i in range(1, lines + 1))


def lines_logged(cluster: Cluster, name: str) -> int:
    return len(cluster.controller.logs(name).stdout.splitlines())


def test_killing_the_agent_mid_task_loses_no_line_and_keeps_the_exit_code(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    c = fresh_cluster
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="counting", lines=60, pause=0.05))
    assert c.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    wait_for("some lines", lambda: lines_logged(c, "counting") >= 5)
    c.agent.kill()  # SIGKILL: no goodbye, the container keeps running
    time.sleep(1.0)
    c.agent.start()  # its credential is in the state dir: no join token needed
    row = c.controller.wait_status("counting", "failed", timeout=60)
    assert row["exit"] == 7
    logs = c.controller.logs("counting")
    assert logs.stdout == expected(60)
    assert logs.stderr == expected(60, "err")


def test_a_container_that_finished_while_the_agent_was_down_reports_its_real_exit_code(
    fresh_cluster: Cluster, tmp_path: Path, docker_engine: DockerEngine
) -> None:
    c = fresh_cluster
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="finishes-alone", lines=20, pause=0.1))
    assert c.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    wait_for("some lines", lambda: lines_logged(c, "finishes-alone") >= 2)
    c.agent.kill()
    task_id = c.controller.task("finishes-alone")["id"]
    client = docker_engine.client()
    container = client.containers.get(f"dstack-{task_id}")
    assert container.wait(timeout=30)["StatusCode"] == 7  # it ended while nobody watched
    assert c.controller.task("finishes-alone")["status"] == "running"
    c.agent.start()
    row = c.controller.wait_status("finishes-alone", "failed", timeout=60)
    assert row["exit"] == 7
    assert c.controller.logs("finishes-alone").stdout == expected(20)
    # Once the controller holds the final state, the container is removed.
    wait_for(
        "the container's removal",
        # Sparse: a full list inspects each container, and one removed in between fails with 404.
        lambda: not client.containers.list(
            all=True, sparse=True, filters={"label": f"dev.dstack-hybrid.task-id={task_id}"}
        ),
    )


def test_restarting_the_controller_mid_task_loses_no_task_host_or_line(fresh_cluster: Cluster, tmp_path: Path) -> None:
    c = fresh_cluster
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="survivor", lines=60, pause=0.05))
    assert c.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    wait_for("some lines", lambda: lines_logged(c, "survivor") >= 5)
    hosts_before = c.controller.ctl_json("hosts")
    c.controller.kill()
    time.sleep(1.0)
    c.controller.start()  # same data dir, same port
    row = c.controller.wait_status("survivor", "failed", timeout=60)
    assert row["exit"] == 7
    assert c.controller.logs("survivor").stdout == expected(60)
    assert c.controller.logs("survivor").stderr == expected(60, "err")
    wait_for("the agent to reconnect", c.agent.online)
    hosts_after = c.controller.ctl_json("hosts")
    assert [(h["id"], h["name"], h["arch"]) for h in hosts_after] == [
        (h["id"], h["name"], h["arch"]) for h in hosts_before
    ]


def test_a_host_that_went_away_is_offline_and_gets_no_new_task(fresh_cluster: Cluster, tmp_path: Path) -> None:
    c = fresh_cluster
    c.agent.kill()
    wait_for("the host to be offline", lambda: [h["status"] for h in c.controller.ctl_json("hosts")] == ["offline"])
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="waits", lines=2, pause=0))
    assert c.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    row = c.controller.task("waits")
    assert (row["status"], row["reason"]) == ("pending", "no live host: 1 host offline")
    # It is placed as soon as a fitting host comes back.
    c.agent.start()
    row = c.controller.wait_status("waits", "failed", timeout=60)
    assert row["exit"] == 7 and row["host"] == "local"


def test_a_pending_task_is_placed_when_a_fitting_host_registers(fresh_cluster: Cluster, tmp_path: Path) -> None:
    c = fresh_cluster
    c.agent.stop()
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="late-host", lines=1, pause=0))
    assert c.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    assert c.controller.task("late-host")["status"] == "pending"
    second = AgentProcess(c.controller, tmp_path / "agent2", c.controller.token(), "second")
    second.start_and_wait_online()
    try:
        row = c.controller.wait_status("late-host", "failed", timeout=60)
        assert row["host"] == "second"
    finally:
        second.stop()
