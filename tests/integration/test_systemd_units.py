"""The unit files in systemd/: `systemd-analyze verify` prints nothing, `systemd-analyze security`
scores them under 4.0; and the real programs speak the notify protocol those units rely on
(Type=notify, WatchdogSec=)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import BIN, AgentProcess, ControllerProcess
from tests.support.dockerd import DockerEngine

UNITS = Path(__file__).resolve().parents[2] / "systemd"
# unit -> the venv path the packages install its entry point at
ENTRY_POINTS = {
    "dstack-agent.service": "/opt/dstack/agent/venv/bin/dstack-agent",
    "dstack-controller.service": "/opt/dstack/controller/venv/bin/dstack-controller",
}
MAX_EXPOSURE = 4.0

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)


def local_copy(unit: str, dest: Path) -> Path:
    """The unit with ExecStart pointed at this checkout's venv: verify checks that the binary exists."""
    text = (UNITS / unit).read_text()
    assert ENTRY_POINTS[unit] in text, f"{unit} no longer starts {ENTRY_POINTS[unit]}"
    path = dest / unit
    path.write_text(text.replace(ENTRY_POINTS[unit], str(BIN / Path(ENTRY_POINTS[unit]).name)))
    return path


def verify(*units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--generators=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_analyze
@pytest.mark.parametrize("unit", sorted(ENTRY_POINTS))
def test_verify_passes_without_a_single_warning(unit: str, tmp_path: Path) -> None:
    out = verify(local_copy(unit, tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout + out.stderr == "", f"systemd-analyze verify printed:\n{out.stdout}{out.stderr}"


@needs_analyze
def test_verify_would_catch_a_warning(tmp_path: Path) -> None:
    """The check above is not vacuous: an unknown directive makes verify print something."""
    path = local_copy("dstack-agent.service", tmp_path)
    path.write_text(path.read_text().replace("[Service]\n", "[Service]\nNoSuchDirective=yes\n"))
    out = verify(path)
    assert "NoSuchDirective" in out.stdout + out.stderr


@needs_analyze
@pytest.mark.parametrize("unit", sorted(ENTRY_POINTS))
def test_security_exposure_is_under_4(unit: str) -> None:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNITS / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = out.stdout + out.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", text)
    assert found, f"no exposure level in:\n{text}"
    assert float(found.group(1)) < MAX_EXPOSURE, text


@needs_analyze
def test_every_unit_file_is_tested() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(ENTRY_POINTS)


@pytest.fixture
def notify_socket() -> Iterator[tuple[str, socket.socket]]:
    """An abstract AF_UNIX datagram socket, as $NOTIFY_SOCKET names it ("@..."): no path-length limit."""
    name = f"dstack-notify-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        yield "@" + name, sock
    finally:
        sock.close()


def wait_datagram(sock: socket.socket, needle: str, timeout: float, seen: list[str]) -> str:
    """The first datagram containing `needle` (each line is one assignment); all are kept in `seen`."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            break
        seen.append(msg)
        if needle in msg.splitlines():
            return msg
    raise AssertionError(f"no {needle} within {timeout}s; got {seen}")


@pytest.mark.docker
def test_the_real_programs_notify_ready_watchdog_and_stopping(
    tmp_path: Path,
    docker_engine: DockerEngine,
    busybox_images: dict[str, str],
    notify_socket: tuple[str, socket.socket],
) -> None:
    address, sock = notify_socket
    controller = ControllerProcess(tmp_path / "controller")
    controller.env["NOTIFY_SOCKET"] = address
    agent: AgentProcess | None = None
    seen: list[str] = []
    controller.start()
    try:
        ready = wait_datagram(sock, "READY=1", 30, seen)
        assert f"STATUS=listening on {controller.address}" in ready.splitlines()

        agent = AgentProcess(controller, tmp_path / "agent", controller.token(), "notified")
        agent.env["NOTIFY_SOCKET"] = address
        agent.start_and_wait_online()
        ready = wait_datagram(sock, "READY=1", 30, seen)
        assert f"STATUS=connected to {controller.address} as notified" in ready.splitlines()
        # The harness's controller asks for a heartbeat every second: each one pets the watchdog.
        wait_datagram(sock, "WATCHDOG=1", 15, seen)
        wait_datagram(sock, "WATCHDOG=1", 15, seen)

        agent.stop()
        agent = None
        seen.clear()
        controller.stop()
        wait_datagram(sock, "STOPPING=1", 10, seen)
    finally:
        if agent is not None:
            agent.stop()
        controller.stop()
