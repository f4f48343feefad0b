"""An attached `dstackctl submit` and `dstackctl logs -f` outlive a controller restart: they
reconnect, resume at the last line they printed, and exit with the task's exit code."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster
from tests.support.cluster import BIN, ControllerProcess, wait_for, write_task

pytestmark = pytest.mark.docker

LINES = 75  # one line per stream every 0.2 s: about 15 s of output
COUNTING_TASK = """\
type: task
name: {name}
image: dstack-test/busybox:amd64
commands:
  - for i in $(seq 1 {lines}); do echo "line $i"; echo "err $i" >&2; sleep 0.2; done
  - exit 7
"""


def ctl_env(controller: ControllerProcess, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        DSTACK_CONTROLLER=controller.address,
        DSTACK_TOKEN=controller.admin_token,
        DSTACK_CA_FILE=str(controller.ca_file),
        HOME=str(controller.data_dir.parent),
        **extra,
    )


class Attached:
    """A dstackctl process whose stdout and stderr go to files, read while it runs."""

    def __init__(self, tmp: Path, args: list[str], env: dict[str, str]) -> None:
        self.out_path, self.err_path = tmp / "ctl.out", tmp / "ctl.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([str(BIN / "dstackctl"), *args], stdout=out, stderr=err, env=env)

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"dstackctl still running after {timeout:.0f}s; stderr:\n{self.stderr()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def numbered(text: str, prefix: str) -> list[str]:
    """The task's own lines on one of dstackctl's outputs, leaving out dstackctl's messages."""
    return [line for line in text.splitlines() if re.fullmatch(rf"{prefix} \d+", line)]


def restart(controller: ControllerProcess, how: signal.Signals) -> None:
    """Stops the controller by `how` and starts it again on the same port and data dir."""
    controller.stop(how)
    time.sleep(1.0)  # long enough that the client sees the controller gone
    controller.start()


def assert_complete_run(attached: Attached, rc: int) -> None:
    out, err = attached.stdout(), attached.stderr()
    assert numbered(out, "line") == [f"line {i}" for i in range(1, LINES + 1)], err
    assert out == "".join(f"line {i}\n" for i in range(1, LINES + 1))  # nothing else on stdout
    assert numbered(err, "err") == [f"err {i}" for i in range(1, LINES + 1)], err
    assert rc == 7, err
    assert "Traceback" not in err


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_submit_outlives_a_controller_restart_and_exits_with_the_task_code(
    fresh_cluster: Cluster, tmp_path: Path, how: signal.Signals
) -> None:
    c = fresh_cluster
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="attached", lines=LINES))
    attached = Attached(tmp_path, ["submit", "-f", str(task)], ctl_env(c.controller))
    try:
        wait_for("lines on the attached client", lambda: len(numbered(attached.stdout(), "line")) >= 10)
        restart(c.controller, how)
        rc = attached.wait(timeout=120)
    finally:
        attached.stop()
    assert_complete_run(attached, rc)
    err = attached.stderr()
    # Said once, not once per try.
    assert err.count("is unreachable") == 1, err
    assert c.controller.task("attached")["exit"] == 7


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_logs_follow_outlives_a_controller_restart_and_exits_with_the_task_code(
    fresh_cluster: Cluster, tmp_path: Path, how: signal.Signals
) -> None:
    c = fresh_cluster
    task = write_task(tmp_path / "t.yaml", COUNTING_TASK.format(name="followed", lines=LINES))
    assert c.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    attached = Attached(tmp_path, ["logs", "followed", "-f"], ctl_env(c.controller))
    try:
        wait_for("lines on the following client", lambda: len(numbered(attached.stdout(), "line")) >= 10)
        restart(c.controller, how)
        rc = attached.wait(timeout=120)
    finally:
        attached.stop()
    assert_complete_run(attached, rc)
