"""A cloud's interruption notice ends the host's tasks and keeps new ones away: a real controller,
real agents (two hosts on one Docker engine), real containers, and loopback fakes of the metadata
services replaying the documented notice documents (tests/fixtures/notices) mid-task. DMI comes
from the fixture hosts' sysfs trees (DSTACK_AGENT_SYSFS), so only the host DMI puts on a cloud asks."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.notices import aws
from tests.support.cluster import AgentProcess, ControllerProcess, wait_for, write_task
from tests.support.dockerd import DockerEngine
from tests.support.metadata_server import MetadataServer
from tests.support.registry import Registry
from tests.support.task_containers import containers_of

pytestmark = pytest.mark.docker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HOSTS = FIXTURES / "hosts"
NOTICES = FIXTURES / "notices"
POLL = "notice_poll_s: 0.2\n"  # AWS recommends 5 s; the tests do not wait that long

TASK = """\
type: task
name: {name}
image: dstack-test/busybox:amd64
commands:
  - sleep 120
resources:
  cpu: 1..
  memory: 64MB..
"""


@pytest.fixture
def controller(
    tmp_path: Path, docker_engine: DockerEngine, busybox_images: dict[str, str], registry: Registry
) -> Iterator[ControllerProcess]:
    c = ControllerProcess(tmp_path / "controller", registry_mirror=f"http://{registry.addr}")
    c.start()
    yield c
    c.stop()


def host_row(c: ControllerProcess, name: str) -> dict[str, Any]:
    return next(h for h in c.ctl_json("hosts") if h["name"] == name)


def submit(c: ControllerProcess, tmp_path: Path, name: str, ids: list[str]) -> dict[str, Any]:
    out = c.ctl("submit", "-d", "-f", str(write_task(tmp_path / f"{name}.yaml", TASK.format(name=name))))
    assert out.returncode == 0, out.stderr
    row = c.task(name)
    ids.append(row["id"])
    return row


def fake_of(fixture_host: str) -> MetadataServer:
    return MetadataServer.from_file(HOSTS / fixture_host / "metadata.json")


def interrupted_mid_task(
    c: ControllerProcess,
    tmp_path: Path,
    engine: DockerEngine,
    ids: list[str],
    agent: AgentProcess,
    notify: Any,
    notice: str,
) -> None:
    """The agent's task runs; `notify()` makes its fake announce the interruption: the task fails as
    interrupted, its container goes, `hosts` shows the notice and a new task is not placed there."""
    agent.start_and_wait_online()
    task = submit(c, tmp_path, "first", ids)
    assert c.wait_status("first", "running", timeout=60)["host"] == agent.name
    notify()
    announced = time.monotonic()
    row = c.wait_status("first", "failed", timeout=30)
    took = time.monotonic() - announced
    assert row["reason"] == f"interrupted: {notice}"
    assert took < 5, f"the task ended {took:.1f}s after the notice (polled every 0.2s)"
    wait_for("the interrupted container's removal", lambda: not containers_of(engine, task["id"]), timeout=30)

    host = host_row(c, agent.name)
    assert (host["status"], host["notice"], host["tasks"], host["cpu_used"]) == ("online", notice, 0, 0)
    table = c.ctl("hosts")
    assert table.returncode == 0 and "NOTICE" in table.stdout.splitlines()[0] and notice in table.stdout
    assert re.search(
        rf"WARNING .*host {agent.name} has an interruption notice \({re.escape(notice)}\): "
        r"its tasks first end as interrupted",
        c.log(),
    ), c.log()

    submit(c, tmp_path, "second", ids)
    reason = f"host {agent.name} has an interruption notice ({notice})"
    wait_for("the second task's reason", lambda: reason in c.task("second")["reason"], timeout=15)
    assert c.task("second")["status"] == "pending"


def test_an_aws_spot_notice_ends_the_task_keeps_new_ones_away_and_survives_a_reconnect(
    controller: ControllerProcess, tmp_path: Path, docker_engine: DockerEngine, our_containers: list[str]
) -> None:
    c = controller
    with fake_of("aws-c6id") as imds, MetadataServer("aws", {}) as untouched:
        agent = AgentProcess(
            c, tmp_path / "spot", c.token(), "spot", config=POLL, cloud="auto",
            env={"DSTACK_AGENT_SYSFS": str(HOSTS / "aws-c6id" / "sys"), "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url},
        )  # fmt: skip
        # An on-prem host (no DMI of any cloud) with the same settings: it must never ask.
        onprem = AgentProcess(
            c, tmp_path / "onprem", c.token(), "onprem", config=POLL, cloud="auto",
            env={"DSTACK_AGENT_SYSFS": str(tmp_path / "no-dmi"), "AWS_EC2_METADATA_SERVICE_ENDPOINT": untouched.url,
                 "DSTACK_AGENT_AZURE_IMDS_ENDPOINT": untouched.url},
        )  # fmt: skip
        try:
            notice = "spot terminate at 08:22:00 UTC"
            action = (NOTICES / "aws-instance-action.json").read_text()
            interrupted_mid_task(
                c, tmp_path, docker_engine, our_containers, agent,
                lambda: imds.responses.__setitem__(aws.INSTANCE_ACTION_PATH, action), notice,
            )  # fmt: skip
            assert ("GET", aws.SCHEDULED_PATH) in imds.requests  # both documents were read before
            assert host_row(c, "spot")["facts"]["cloud"]["provider"] == "aws"

            # A restarted agent says it again on its new stream; the host never takes the waiting task.
            agent.stop()
            agent.start_and_wait_online()
            time.sleep(2)  # ten polls
            assert host_row(c, "spot")["notice"] == notice
            assert (c.task("second")["status"], c.task("second")["host"]) == ("pending", None)

            # A host without the notice takes the waiting task; the on-prem host asked nobody.
            onprem.start_and_wait_online()
            assert c.wait_status("second", "running", timeout=60)["host"] == "onprem"
            assert host_row(c, "onprem")["notice"] is None
            assert untouched.requests == []
        finally:
            c.ctl("stop", "--abort", "second")
            agent.stop()
            onprem.stop()


def test_an_azure_preempt_for_this_vm_ends_the_task_and_keeps_new_ones_away(
    controller: ControllerProcess, tmp_path: Path, docker_engine: DockerEngine, our_containers: list[str]
) -> None:
    c = controller
    with fake_of("azure-d2s-v6") as imds:
        sysfs = str(HOSTS / "azure-d2s-v6" / "sys")
        seams = {"DSTACK_AGENT_SYSFS": sysfs, "DSTACK_AGENT_AZURE_IMDS_ENDPOINT": imds.url}
        agent = AgentProcess(c, tmp_path / "evictable", c.token(), "evictable", config=POLL, cloud="auto", env=seams)
        events = json.loads((NOTICES / "azure-scheduledevents.json").read_text())
        preempt = events["Events"][2]
        events["Events"].remove(preempt)  # first only the Freeze and the other VM's Reboot: no notice
        imds.responses["/metadata/scheduledevents"] = json.dumps(events)
        try:

            def notify() -> None:
                assert host_row(c, "evictable")["notice"] is None  # Freeze, and another VM's Reboot
                announced = {**events, "Events": [*events["Events"], preempt]}
                imds.responses["/metadata/scheduledevents"] = json.dumps(announced)

            interrupted_mid_task(
                c, tmp_path, docker_engine, our_containers, agent, notify, "azure preempt at 2022-04-11 22:27:28 UTC"
            )
            assert ("GET", "/metadata/scheduledevents?api-version=2020-07-01") in imds.requests
        finally:
            agent.stop()


RETRIED_TASK = """\
type: task
name: {name}
image: dstack-test/busybox:amd64
commands:
  - echo running on $HOSTNAME
  - sleep {seconds}
retry:
  on_events: [interruption]
resources:
  cpu: 1..
  memory: 64MB..
"""


def test_a_spot_notice_with_retry_on_interruption_runs_the_task_again_elsewhere(
    controller: ControllerProcess, tmp_path: Path, docker_engine: DockerEngine, our_containers: list[str]
) -> None:
    """dstack's `retry: on_events: [interruption]` covers a spot reclaim: the noticed host's attempt is
    stopped and removed, attempt 2 runs on a host without a notice, and the log has the marker."""
    c = controller
    with fake_of("aws-c6id") as imds:
        env = {"DSTACK_AGENT_SYSFS": str(HOSTS / "aws-c6id" / "sys"), "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
        spot = AgentProcess(c, tmp_path / "spot", c.token(), "spot", config=POLL, cloud="auto", env=env)
        onprem = AgentProcess(c, tmp_path / "onprem", c.token(), "onprem", config=POLL, cloud="off")
        try:
            spot.start_and_wait_online()
            path = write_task(tmp_path / "retried.yaml", RETRIED_TASK.format(name="retried", seconds=120))
            out = c.ctl("submit", "-d", "-f", str(path))
            assert out.returncode == 0, out.stderr
            first = c.wait_status("retried", "running", timeout=60)
            our_containers.append(first["id"])
            assert first["host"] == "spot"
            onprem.start_and_wait_online()

            imds.responses[aws.INSTANCE_ACTION_PATH] = (NOTICES / "aws-instance-action.json").read_text()
            second = wait_for(
                "attempt 2 running on the host without a notice",
                lambda: (row := c.task("retried"))["status"] == "running" and row["host"] == "onprem" and row,
                timeout=60,
            )
            assert second["attempt"] == 2
            # Attempt 1's container on the noticed host is stopped and removed; only attempt 2's is left.
            wait_for("only attempt 2's container", lambda: len(containers_of(docker_engine, first["id"])) == 1, 30)
            history = [e["event"] for e in c.ctl_json("events", "retried")]
            assert any(e.startswith("retried as attempt 2") for e in history), history
            logs = c.ctl("logs", "retried").stdout
            assert "--- attempt 2 (attempt 1: interrupted: spot terminate at 08:22:00 UTC) ---" in logs, logs
            assert logs.count("running on") == 2, logs
        finally:
            c.ctl("stop", "--abort", "retried")
            spot.stop()
            onprem.stop()
