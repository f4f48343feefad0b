"""`dstackctl events TASK`: a task's history, through a real controller, a real agent and real
containers; kept across a controller restart."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import docker.errors
import pytest

from tests.integration.conftest import Cluster
from tests.support.cluster import write_task
from tests.support.dockerd import DockerEngine

pytestmark = pytest.mark.docker

ROW = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})  +(\S.*)$")


def events_table(cluster: Cluster, name: str) -> list[tuple[str, str]]:
    out = cluster.controller.ctl("events", name)
    assert out.returncode == 0, out.stderr
    header, *lines = out.stdout.splitlines()
    assert header.split() == ["TIME", "(UTC)", "EVENT"]
    rows = []
    for line in lines:
        match = ROW.match(line)
        assert match, f"not a TIME  EVENT row: {line!r}"
        rows.append((match[1], match[2].rstrip()))
    return rows


def test_a_failing_tasks_history_in_order_with_times_kept_across_a_restart(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    c = fresh_cluster.controller
    task = write_task(
        tmp_path / "task.yaml",
        'type: task\nname: exits-3\nimage: dstack-test/busybox:amd64\ncommands: ["echo hi", "exit 3"]\n',
    )
    out = c.ctl("submit", "-d", "-f", str(task))
    assert out.returncode == 0, out.stderr
    c.wait_status("exits-3", "failed", timeout=60)

    rows = events_table(fresh_cluster, "exits-3")
    assert [message for _, message in rows] == [
        "submitted (dstack-test/busybox:amd64)",
        "placed on local",
        "started on local",
        "exited 3",
        "failed: exited with code 3",
    ]
    times = [at for at, _ in rows]
    assert times == sorted(times)

    as_json = c.ctl_json("events", "exits-3")
    assert [(e["kind"], e["event"], e["time"]) for e in as_json] == [
        (kind, message, at)
        for kind, (at, message) in zip(["submitted", "placed", "started", "exited", "failed"], rows, strict=True)
    ]
    assert all(isinstance(e["at_ms"], int) for e in as_json)

    c.stop()
    c.start()
    assert c.ctl_json("events", "exits-3") == as_json  # stored, not remembered

    unknown = c.ctl("events", "no-such-task")
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr == "dstackctl: no task named 'no-such-task'\n"


def test_an_image_pull_is_in_the_history(
    cluster: Cluster, tmp_path: Path, multiarch_image: str, docker_engine: DockerEngine
) -> None:
    c = cluster.controller
    # The session's own test image: an earlier test may have pulled it, and then there is no pull.
    client = docker_engine.client()
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(multiarch_image)
    client.close()
    task = write_task(
        tmp_path / "task.yaml", f'type: task\nname: pulls\nimage: {multiarch_image}\ncommands: ["true"]\n'
    )
    out = c.ctl("submit", "-d", "-f", str(task))
    assert out.returncode == 0, out.stderr
    c.wait_status("pulls", "done", timeout=90)
    kinds = [e["kind"] for e in json.loads(c.ctl("events", "pulls", "--json").stdout)]
    assert kinds == ["submitted", "placed", "pulling", "started", "exited", "done"]
    assert [m for _, m in events_table(cluster, "pulls")][2] == f"pulling {multiarch_image}"
