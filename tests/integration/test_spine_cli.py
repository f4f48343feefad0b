"""Bad task files are refused by dstackctl with one sentence naming the key, exit 2, nothing submitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.support.cluster import write_task

pytestmark = pytest.mark.docker

CASES = [
    (
        "type: task\nname: typo\nimage: dstack-test/busybox:amd64\ncomands:\n  - echo hi\n",
        'unknown key "comands" in {file} line 4 (did you mean "commands"?)',
    ),
    (
        "type: task\nimage: dstack-test/busybox:amd64\nresources:\n  cpu: arm:lots\n",
        'invalid resources.cpu "arm:lots" in {file} line 4',
    ),
    ("type: task\ncommands: [echo hi]\n", 'missing key "image" in {file}'),
    ("type: task\nimage: x\nresources:\n  memory: 8XB..\n", 'invalid resources.memory "8XB.." in {file} line 4'),
    ("type: task\nimage: [unclosed\n", "{file} is not valid YAML"),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_bad_task_files_are_refused_with_the_key_named(
    cluster: Cluster, tmp_path: Path, text: str, message: str
) -> None:
    before = cluster.controller.ctl_json("ps", "-a")
    path = write_task(tmp_path / "task.yaml", text)
    out = cluster.controller.ctl("submit", "-f", str(path))
    assert out.returncode == 2
    assert out.stderr.startswith("dstackctl: " + message.format(file=path)), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr
    assert cluster.controller.ctl_json("ps", "-a") == before


def test_missing_task_file_and_unknown_task(cluster: Cluster, tmp_path: Path) -> None:
    out = cluster.controller.ctl("submit", "-f", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "not found" in out.stderr
    out = cluster.controller.ctl("logs", "no-such-task")
    assert out.returncode == 2 and out.stderr.strip() == "dstackctl: no task named 'no-such-task'"


def test_unreachable_controller_is_one_sentence(cluster: Cluster) -> None:
    out = cluster.controller.ctl("ps", "--controller", "127.0.0.1:1")
    assert out.returncode == 1
    assert out.stderr.startswith("dstackctl: cannot reach 127.0.0.1:1")
    assert "Traceback" not in out.stderr
