"""Find a Docker engine for the integration tests, or start a private dockerd.

The private daemon keeps its data under /var/lib/dstack-test-docker so the test images survive
between runs on one machine, and it is stopped by its own pid only: other daemons on the host
(a developer's, a CI service) are never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

DEFAULT_HOST = "unix:///var/run/docker.sock"
DATA_ROOT = Path("/var/lib/dstack-test-docker")
RUN_DIR = Path("/run/dstack-test-docker")
TEST_HOST = f"unix://{RUN_DIR}/docker.sock"
START_TIMEOUT_S = 60.0
# dockerd stops running containers on SIGTERM with a 15 s grace period; leave room for that.
STOP_TIMEOUT_S = 40.0


class DockerUnavailable(RuntimeError):
    """No engine answers and none could be started."""


@dataclass
class DockerEngine:
    host: str
    started: bool
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=120)

    def stop(self) -> None:
        """Stop the dockerd this object started; an engine it merely found is left running."""
        if self.process is None:
            return
        proc, self.process = self.process, None
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            # A SIGKILLed dockerd cannot stop the containerd it supervises; that one is ours too.
            _kill_pidfile(RUN_DIR / "exec" / "containerd" / "containerd.pid")


def _kill_pidfile(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(path.read_text().strip()), signal.SIGKILL)


def ping(host: str, timeout: float = 3.0) -> bool:
    try:
        client = docker.DockerClient(base_url=host, timeout=timeout)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except Exception:  # any failure (no socket, refused, timeout, TLS) means "no engine here"
        return False
    finally:
        client.close()


def ensure_docker() -> DockerEngine:
    """Return an engine that answers: DOCKER_HOST or the default socket, else a private dockerd."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    if ping(host):
        return DockerEngine(host=host, started=False)

    RUN_DIR.mkdir(parents=True, exist_ok=True)
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    # Two test sessions starting at once must not both launch a daemon on the same pidfile.
    with open(RUN_DIR / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ping(TEST_HOST):
            # Left by an earlier or concurrent session: use it, and leave stopping it to its owner.
            return DockerEngine(host=TEST_HOST, started=False)
        return _start_dockerd()


def _start_dockerd() -> DockerEngine:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise DockerUnavailable(
            "no Docker engine answers and dockerd is not installed: run packaging/dev-setup.sh --tests"
        )
    log_path = DATA_ROOT / "dockerd.log"
    cmd = [
        dockerd,
        "-H",
        TEST_HOST,
        "--data-root",
        str(DATA_ROOT / "root"),
        "--exec-root",
        str(RUN_DIR / "exec"),
        "--pidfile",
        str(RUN_DIR / "docker.pid"),
        # If a system containerd is running, dockerd attaches to it; separate namespaces keep
        # this daemon's containers apart from another daemon's "moby" namespace.
        "--containerd-namespace",
        "dstack-test",
        "--containerd-plugins-namespace",
        "dstack-test-plugins",
    ]
    with open(log_path, "ab") as log:
        # A new session keeps a Ctrl-C on pytest from killing the daemon before teardown stops it.
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    engine = DockerEngine(host=TEST_HOST, started=True, process=proc, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DockerUnavailable(f"dockerd exited with status {proc.returncode}: {_tail(log_path)}")
        if ping(TEST_HOST, timeout=2.0):
            return engine
        time.sleep(0.5)
    engine.stop()
    raise DockerUnavailable(f"dockerd did not answer within {START_TIMEOUT_S:.0f} s: {_tail(log_path)}")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
