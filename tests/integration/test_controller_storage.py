"""The controller's own storage failing: a full disk, a read-only mount, a data dir that cannot be
made. Real programs on a real tmpfs mounted by the test (root only), unmounted in teardown.

What used to happen: `dstackctl submit` printed gRPC's `Unexpected <class
'sqlite3.OperationalError'>: database or disk is full`, a failed heartbeat write ended the
agent's stream so healthy hosts flapped offline, and a read-only data dir crashed `serve` with a
traceback."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cluster import BIN, ControllerProcess, Process, wait_for, write_task

FACTS = Path(__file__).parents[1] / "fixtures" / "sim" / "host.json"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")

Mount = Callable[..., Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """mount(name, size) -> a fresh tmpfs at tmp_path/name; every one is unmounted in teardown."""
    mounted: list[Path] = []

    def mount(name: str, size: str = "8m") -> Path:
        target = tmp_path / name
        target.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(target)], check=True)
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], check=True)


def remount_read_only(target: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)


def fill(directory: Path) -> Path:
    """Writes one file until the file system has not a byte left."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
        with pytest.raises(OSError) as caught:
            os.write(fd, b"\0")
        assert caught.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def serve_once(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dstack-controller"), "serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
         "--agent-listen", "127.0.0.1:0", "--image-lookup", "off"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def one_sentence(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "<class" not in stderr and "Unexpected" not in stderr
    return lines[0]


TASK = """\
type: task
name: {name}
image: busybox
commands: ["echo hi"]
env:
  DSTACK_SIM_SECONDS: "1"
"""


def test_a_full_disk_is_one_sentence_hosts_stay_online_and_it_heals(tmpfs: Mount, tmp_path: Path) -> None:
    data_dir = tmpfs("data")
    controller = ControllerProcess(data_dir, extra=["--host-grace", "3s"])  # heartbeats every 1s
    controller.start()
    (tmp_path / "no-agent.yaml").write_text("cloud: off\n")
    sim = Process(
        [str(BIN / "dstack-agent"), "simulate", "--count", "1", "--facts", str(FACTS), "--controller",
         controller.address, "--join-token", controller.token(), "--config", str(tmp_path / "no-agent.yaml")],
        tmp_path / "sim.log", dict(os.environ, DSTACK_AGENT_RECONNECT_MAX_S="2"),
    )  # fmt: skip
    sim.start()
    try:
        # Registration may not have happened at the first look: no host yet is "not yet", not an error.
        wait_for("the simulated host online", lambda: [h["status"] for h in controller.ctl_json("hosts")] == ["online"])
        # A task that ends while the disk is full: its exit and its output cannot be stored then.
        slow = TASK.format(name="t0").replace('"1"', '"3"')
        out = controller.ctl("submit", "-d", "-f", str(write_task(tmp_path / "t0.yaml", slow)))
        assert out.returncode == 0, out.stderr
        controller.wait_status("t0", "running")
        filler = fill(data_dir)

        # (a) a call that must write says so in one sentence, exit 1.
        out = controller.ctl("submit", "-d", "-f", str(write_task(tmp_path / "t1.yaml", TASK.format(name="t1"))))
        assert out.returncode == 1
        assert one_sentence(out.stderr) == "dstackctl: the controller's storage is full"

        # (b) heartbeats cannot be written, yet the host stays online well past the 3s grace.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            hosts = controller.ctl_json("hosts")
            assert [h["status"] for h in hosts] == ["online"], hosts
            time.sleep(1)
        log = controller.log()
        assert log.count("the controller's storage is full") == 1  # said once, not per heartbeat
        assert "disconnected" not in log and "Traceback" not in log

        # (c) space returns: the same controller takes the task, nothing restarted.
        filler.unlink()
        out = controller.ctl("submit", "-f", str(write_task(tmp_path / "t2.yaml", TASK.format(name="t2"))))
        assert out.returncode == 0, out.stderr
        assert controller.task("t2")["status"] == "done"
        # The report lost while full was asked for again: the task ended, with its output.
        assert controller.wait_status("t0", "done", timeout=15)["exit"] == 0
        assert controller.logs("t0").stdout.strip() != ""
        assert "the controller's storage accepts writes again" in controller.log()
        assert controller.running and sim.running
    finally:
        sim.stop()
        controller.stop()


@pytest.mark.parametrize("used", [False, True], ids=["empty", "used-before"])
def test_a_read_only_data_dir_is_one_sentence(tmpfs: Mount, used: bool) -> None:
    data_dir = tmpfs("data")
    if used:
        c = ControllerProcess(data_dir)
        c.start()
        c.stop()
        assert (data_dir / "controller.db").exists()
    remount_read_only(data_dir)
    out = serve_once(data_dir)
    assert out.returncode == 1
    assert one_sentence(out.stderr) == (
        f"dstack-controller: the data dir {data_dir} is on a read-only file system; the controller writes there"
    )


def test_a_data_dir_that_cannot_be_made_is_one_sentence(tmpfs: Mount, tmp_path: Path) -> None:
    read_only = tmpfs("ro")
    remount_read_only(read_only)
    out = serve_once(read_only / "controller")
    assert out.returncode == 1
    assert one_sentence(out.stderr) == (
        f"dstack-controller: cannot create the data dir {read_only / 'controller'}: the file system is read-only"
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = serve_once(blocker / "controller")
    assert out.returncode == 1
    assert one_sentence(out.stderr) == (
        f"dstack-controller: cannot create the data dir {blocker / 'controller'}: "
        "something that is not a directory is in the way"
    )
