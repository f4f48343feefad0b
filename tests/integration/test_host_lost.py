"""A host that goes away for good gives its tasks back, and stop works while it is away: real
controller, two real agents (two hosts on one Docker engine), kill -9, real containers."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import BIN, AgentProcess, ControllerProcess, free_port, wait_for, write_task
from tests.support.dockerd import DockerEngine
from tests.support.task_containers import containers_of

pytestmark = pytest.mark.docker


# All the host's cores: two such tasks never share a host, so where the second one goes says
# whether the first one's share was given back.
WHOLE_HOST_TASK = """\
type: task
name: {name}
image: dstack-test/busybox:amd64
commands:
  - sleep 60
resources:
  cpu: {cpus}..
  memory: 64MB..
"""


def host_row(controller: ControllerProcess, name: str) -> dict[str, Any]:
    return next(h for h in controller.ctl_json("hosts") if h["name"] == name)


def submit(controller: ControllerProcess, tmp_path: Path, name: str, cpus: int, ids: list[str]) -> dict[str, Any]:
    path = write_task(tmp_path / f"{name}.yaml", WHOLE_HOST_TASK.format(name=name, cpus=cpus))
    out = controller.ctl("submit", "-d", "-f", str(path))
    assert out.returncode == 0, out.stderr
    row = controller.task(name)
    ids.append(row["id"])
    return row


def test_a_killed_hosts_task_fails_as_lost_its_share_is_free_and_its_container_goes_when_it_returns(
    lost_fast: ControllerProcess, tmp_path: Path, docker_engine: DockerEngine, our_containers: list[str]
) -> None:
    c = lost_fast
    first = AgentProcess(c, tmp_path / "first", c.token(), "first")
    second = AgentProcess(c, tmp_path / "second", c.token(), "second")
    first.start_and_wait_online()
    try:
        cpus = int(host_row(c, "first")["cpu_total"])
        task = submit(c, tmp_path, "on-first", cpus, our_containers)
        assert c.wait_status("on-first", "running", timeout=60)["host"] == "first"
        second.start_and_wait_online()

        first.kill()  # SIGKILL: no goodbye; its container keeps running
        killed_at = time.monotonic()
        row = c.wait_status("on-first", "failed", timeout=30)
        took = time.monotonic() - killed_at
        assert re.fullmatch(r"host first lost \(last heard \d\d:\d\d:\d\d\)", row["reason"]), row["reason"]
        assert 15 <= took <= 25, f"declared lost after {took:.1f}s (lost after 15s, checked every few seconds)"

        gone = host_row(c, "first")
        assert (gone["status"], gone["cpu_used"], gone["memory_used_bytes"], gone["tasks"]) == ("offline", 0, 0, 0)
        log = c.log()
        assert re.search(r"WARNING .*host first is offline \(last heard .* UTC\); its tasks on-first end as lost", log)
        assert re.search(r"WARNING .*host first is lost \(last heard .* UTC, \d+s ago\): its tasks on-first ended", log)
        assert len(containers_of(docker_engine, task["id"])) == 1  # still there: nobody told it

        # The live host takes new work; it is now full.
        submit(c, tmp_path, "on-second", cpus, our_containers)
        assert c.wait_status("on-second", "running", timeout=60)["host"] == "second"

        first.start()  # its credential is in the state dir
        wait_for("host first online", first.online, timeout=60)
        wait_for("the stale container's removal", lambda: not containers_of(docker_engine, task["id"]), timeout=30)
        assert (c.task("on-first")["status"], c.task("on-first")["reason"]) == ("failed", row["reason"])

        # What the lost task held on first was given back: a whole-host task fits there again.
        submit(c, tmp_path, "first-again", cpus, our_containers)
        assert c.wait_status("first-again", "running", timeout=60)["host"] == "first"
    finally:
        for name in ("on-second", "first-again"):
            c.ctl("stop", "--abort", name)
        first.stop()
        second.stop()


def test_stop_on_an_offline_host_stops_at_once_and_the_returning_agent_removes_the_container(
    lost_fast: ControllerProcess, tmp_path: Path, docker_engine: DockerEngine, our_containers: list[str]
) -> None:
    c = lost_fast
    agent = AgentProcess(c, tmp_path / "solo", c.token(), "solo")
    agent.start_and_wait_online()
    try:
        task = submit(c, tmp_path, "stop-me", 1, our_containers)
        c.wait_status("stop-me", "running", timeout=60)
        agent.kill()
        wait_for("host solo offline", lambda: host_row(c, "solo")["status"] == "offline", timeout=15)

        out = c.ctl("stop", "stop-me")
        assert (out.returncode, out.stdout) == (0, "stopped stop-me (stopped while its host was offline)\n"), out.stderr
        row = c.task("stop-me")  # at once, not when the host returns
        assert (row["status"], row["reason"]) == ("stopped", "stopped while its host was offline")
        assert (host_row(c, "solo")["cpu_used"], host_row(c, "solo")["tasks"]) == (0, 0)
        assert [x.status for x in containers_of(docker_engine, task["id"])] == ["running"]

        agent.start()
        wait_for("host solo online", agent.online, timeout=60)
        wait_for("the container's removal", lambda: not containers_of(docker_engine, task["id"]), timeout=30)
        row = c.task("stop-me")
        assert (row["status"], row["reason"]) == ("stopped", "stopped while its host was offline")
    finally:
        agent.stop()


def test_an_offline_fleets_deletion_names_its_hosts_tasks_and_removing_the_host_ends_them(
    lost_fast: ControllerProcess, tmp_path: Path, our_containers: list[str]
) -> None:
    c = lost_fast
    fleet = write_task(tmp_path / "pool.yaml", "type: fleet\nname: pool\n")
    assert c.ctl("apply", "-f", str(fleet)).returncode == 0
    agent = AgentProcess(c, tmp_path / "solo", c.token("--fleet", "pool"), "solo")
    agent.start_and_wait_online()
    try:
        task = submit(c, tmp_path, "on-pool", 1, our_containers)  # names no fleet: it is on one
        c.wait_status("on-pool", "running", timeout=60)
        agent.kill()
        wait_for("host solo offline", lambda: host_row(c, "solo")["status"] == "offline", timeout=15)

        refused = c.ctl("delete", "fleet", "pool")
        assert (refused.returncode, refused.stderr) == (
            1,
            "dstackctl: fleet pool is in use (host solo (offline), task on-pool); pass --force to delete it anyway\n",
        )
        assert c.ctl("delete", "fleet", "pool", "--force").returncode == 0
        assert c.task("on-pool")["status"] == "running"  # the fleet's config went; its host did not

        assert c.ctl("hosts", "rm", "solo").returncode == 0
        row = c.task("on-pool")  # at once, well before the host would be lost
        assert (row["status"], row["reason"]) == ("failed", "host solo was removed")
        events = [e["event"] for e in c.ctl_json("events", "on-pool")]
        assert events[-2:] == ["host solo offline", "failed: host solo was removed"]
        assert task["id"] in our_containers
    finally:
        agent.stop()


@pytest.mark.parametrize(
    ("flags", "config", "message"),
    [
        (
            ["--host-lost-after", "3s", "--host-grace", "5s"],
            "",
            "--host-lost-after (3s) must not be shorter than the host grace (5s): a host is offline before it is lost",
        ),
        (["--host-lost-after", "soon"], "", "host_lost_after: invalid duration 'soon': use e.g. 30m, 1h or 7d"),
        (
            [],
            "host_lost_after: 30s\n",
            "host_lost_after ({config}) (30s) must not be shorter than the host grace (40s)",
        ),
    ],
    ids=["below the grace", "not a duration", "below the default grace, from the config file"],
)
def test_a_lost_period_that_cannot_work_is_refused_in_one_sentence_and_changes_nothing(
    tmp_path: Path, flags: list[str], config: str, message: str
) -> None:
    data_dir = tmp_path / "data"
    args = [
        str(BIN / "dstack-controller"),
        "serve",
        "--data-dir",
        str(data_dir),
        "--listen",
        f"127.0.0.1:{free_port()}",
    ]
    if config:
        config_path = tmp_path / "controller.yaml"
        config_path.write_text(config)
        args += ["--config", str(config_path)]
        message = message.format(config=config_path)
    out = subprocess.run([*args, *flags], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not data_dir.exists()
