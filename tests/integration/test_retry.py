"""dstack's `retry`: a task whose host is lost runs again as attempt 2 on another host, the
returning host's stale attempt is stopped and removed (fencing), the log continues across the
attempts with a marker; a failing command is retried on `error`. Real controller, two real agents
(two hosts on one Docker engine), kill -9, real containers. Without `retry` the task fails as
before (tests/integration/test_host_lost.py)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import BIN, AgentProcess, ControllerProcess, wait_for, write_task
from tests.support.dockerd import DockerEngine

pytestmark = pytest.mark.docker

TASK_LABEL = "dev.dstack-hybrid.task-id"  # the agent's labels on every task container
ATTEMPT_LABEL = "dev.dstack-hybrid.attempt"
LINES = 30  # one line every 2 s: a 60 s task

COUNTING_TASK = f"""\
type: task
name: {{name}}
image: dstack-test/busybox:amd64
commands:
  - for i in $(seq 1 {LINES}); do echo "line $i"; sleep 2; done
resources:
  cpu: 1..
  memory: 64MB..
retry:
  on_events: [interruption]
"""

# Fails the first time (exit 3), succeeds the second: the file on the bind-mounted directory
# outlives the first attempt's container.
FAILS_ONCE_TASK = """\
type: task
name: {name}
image: dstack-test/busybox:amd64
commands:
  - if [ -f /state/ran ]; then echo second run; else touch /state/ran; echo first run; exit 3; fi
volumes:
  - {state}:/state
retry:
  on_events: [error]
"""


def attempts_present(engine: DockerEngine, task_id: str) -> list[str]:
    """The attempt labels of the task's containers on the engine (both hosts share it)."""
    client = engine.client()
    try:
        # The list call's own summaries carry the labels: no inspect that a removal in between fails.
        found = client.api.containers(all=True, filters={"label": f"{TASK_LABEL}={task_id}"})
        return sorted((c.get("Labels") or {}).get(ATTEMPT_LABEL, "") for c in found)
    finally:
        client.close()


def follow_logs(c: ControllerProcess, name: str, out: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        DSTACK_CONTROLLER=c.address,
        DSTACK_TOKEN=c.admin_token,
        DSTACK_CA_FILE=str(c.ca_file),
        HOME=str(c.data_dir.parent),
    )
    with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        return subprocess.Popen([str(BIN / "dstackctl"), "logs", "-f", name], stdout=stdout, stderr=stderr, env=env)


def submit(c: ControllerProcess, tmp_path: Path, name: str, text: str, ids: list[str]) -> dict[str, Any]:
    out = c.ctl("submit", "-d", "-f", str(write_task(tmp_path / f"{name}.yaml", text)))
    assert out.returncode == 0, out.stderr
    row = c.task(name)
    ids.append(row["id"])
    return row


def test_a_lost_hosts_task_runs_again_as_attempt_2_elsewhere_and_the_returning_host_drops_attempt_1(
    lost_fast: ControllerProcess, tmp_path: Path, docker_engine: DockerEngine, our_containers: list[str]
) -> None:
    c = lost_fast
    first = AgentProcess(c, tmp_path / "first", c.token(), "first")
    second = AgentProcess(c, tmp_path / "second", c.token(), "second")
    first.start_and_wait_online()
    follower: subprocess.Popen[bytes] | None = None
    try:
        task = submit(c, tmp_path, "counts", COUNTING_TASK.format(name="counts"), our_containers)
        assert c.wait_status("counts", "running", timeout=60)["host"] == "first"
        wait_for("two lines of attempt 1", lambda: "line 2\n" in c.logs("counts").stdout, timeout=30)
        second.start_and_wait_online()
        follower = follow_logs(c, "counts", tmp_path / "follow.out")

        first.kill()  # SIGKILL: its container goes on running attempt 1
        row = wait_for(
            "attempt 2 running on second",
            lambda: (t := c.task("counts"))["status"] == "running" and t["attempt"] == 2 and t,
            timeout=60,
        )
        assert row["host"] == "second" and row["retry"] == "interruption for 1h"
        assert attempts_present(docker_engine, task["id"]) == ["1", "2"]  # attempt 1 runs on, unfenced yet
        verbose = c.ctl("ps", "-a", "-v")
        assert re.search(r"counts\s+running\s+second\s.*mem=64MB\.\.\s+2\s+interruption for 1h", verbose.stdout), (
            verbose.stdout
        )

        first.start()  # the host returns while attempt 2 runs: its attempt 1 is not current
        wait_for("host first online", first.online, timeout=60)
        wait_for("attempt 1's removal", lambda: attempts_present(docker_engine, task["id"]) == ["2"], timeout=30)
        assert re.search(r"INFO .*host first removed attempt 1 of task \w+: superseded", c.log()), c.log()[-3000:]

        done = c.wait_status("counts", "done", "failed", timeout=120)
        assert (done["status"], done["attempt"], done["host"]) == ("done", 2, "second"), done
        out = c.logs("counts").stdout.splitlines()
        markers = [i for i, line in enumerate(out) if line.startswith("--- attempt 2")]
        assert len(markers) == 1, out
        marker = out[markers[0]]
        assert re.fullmatch(r"--- attempt 2 \(attempt 1: host first lost \(last heard \d\d:\d\d:\d\d\)\) ---", marker)
        before, after = out[: markers[0]], out[markers[0] + 1 :]
        assert before == [f"line {i}" for i in range(1, len(before) + 1)] and len(before) >= 2, before
        assert after == [f"line {i}" for i in range(1, LINES + 1)], after  # one complete attempt 2
        # logs -f, attached from attempt 1 on, saw the same and ended with the task.
        assert follower.wait(timeout=60) == 0, (tmp_path / "follow.err").read_text()
        assert (tmp_path / "follow.out").read_text().splitlines() == out
        assert "task counts is pending: retrying as attempt 2: host first lost" in (tmp_path / "follow.err").read_text()
    finally:
        if follower is not None and follower.poll() is None:
            follower.kill()
            follower.wait()
        c.ctl("stop", "--abort", "counts")
        first.stop()
        second.stop()


def test_a_failing_command_is_retried_on_error_and_the_second_attempt_succeeds(
    lost_fast: ControllerProcess, tmp_path: Path, docker_engine: DockerEngine, our_containers: list[str]
) -> None:
    c = lost_fast
    state = tmp_path / "state"
    state.mkdir()
    agent = AgentProcess(c, tmp_path / "solo", c.token(), "solo")
    agent.start_and_wait_online()
    try:
        submit(c, tmp_path, "flaky", FAILS_ONCE_TASK.format(name="flaky", state=state), our_containers)
        done = c.wait_status("flaky", "done", "failed", timeout=90)
        assert (done["status"], done["attempt"], done["exit"]) == ("done", 2, 0), done
        assert c.logs("flaky").stdout == "first run\n--- attempt 2 (attempt 1: exited with code 3) ---\nsecond run\n"
        assert re.search(r"task flaky is retried as attempt 2: retrying as attempt 2: exited with code 3", c.log())
    finally:
        agent.stop()


def test_without_error_in_on_events_a_failing_command_fails_as_before(
    lost_fast: ControllerProcess, tmp_path: Path, docker_engine: DockerEngine, our_containers: list[str]
) -> None:
    c = lost_fast
    state = tmp_path / "state"
    state.mkdir()
    agent = AgentProcess(c, tmp_path / "solo", c.token(), "solo")
    agent.start_and_wait_online()
    try:
        text = FAILS_ONCE_TASK.format(name="once", state=state).replace("[error]", "[interruption]")
        submit(c, tmp_path, "once", text, our_containers)
        row = c.wait_status("once", "done", "failed", timeout=90)
        assert (row["status"], row["attempt"], row["reason"]) == ("failed", 1, "exited with code 3"), row
        assert c.logs("once").stdout == "first run\n"
    finally:
        agent.stop()
