"""The real programs as processes: a controller on a loopback port with its own data dir,
agents with their own state dirs, and dstackctl. Each is stopped by its own pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Process:
    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.args, self.log_path, self.env = args, log_path, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        self.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ControllerProcess(Process):
    def __init__(
        self, data_dir: Path, registry_mirror: str = "", extra: list[str] | None = None, insecure: bool = False
    ) -> None:
        self.data_dir = data_dir
        self.insecure = insecure
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.agent_port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(BIN / "dstack-controller"),
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            self.address,
            "--agent-listen",
            f"127.0.0.1:{self.agent_port}",
            "--heartbeat-interval",
            "1s",
            "--stop-grace",
            "5s",
        ]
        # Lookups go to the loopback registry only: Docker Hub names are looked up at the mirror.
        args += ["--registry-mirror", registry_mirror] if registry_mirror else ["--image-lookup", "off"]
        if insecure:
            args.append("--insecure")
        super().__init__(args + (extra or []), data_dir.parent / f"{data_dir.name}.log", dict(os.environ))

    def start(self) -> None:
        super().start()
        wait_for("the controller to listen", self._listening, timeout=30)

    def _listening(self) -> bool:
        if not self.running:
            raise AssertionError(f"the controller exited:\n{self.log()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def token(self, *args: str) -> str:
        out = subprocess.run(
            [str(BIN / "dstack-controller"), "token", "create", "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def ctl(self, *args: str, token: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            DSTACK_CONTROLLER=self.address,
            DSTACK_TOKEN=self.admin_token if token is None else token,
            DSTACK_CA_FILE=str(self.ca_file),  # as an operator hands it out; first-contact trust has its own test
            HOME=str(self.data_dir.parent),
        )
        if self.insecure:
            env["DSTACK_INSECURE"] = "1"
        return subprocess.run([str(BIN / "dstackctl"), *args], capture_output=True, text=True, env=env, timeout=timeout)

    def ctl_json(self, *args: str) -> Any:
        out = self.ctl(*args, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def task(self, name: str) -> dict[str, Any]:
        return next(t for t in self.ctl_json("ps", "-a") if t["name"] == name)

    def wait_status(self, name: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        return wait_for(
            f"task {name} to be {'/'.join(statuses)}",
            lambda: (t := self.task(name))["status"] in statuses and t,
            timeout=timeout,
        )

    def logs(self, name: str) -> subprocess.CompletedProcess[str]:
        return self.ctl("logs", name)


class AgentProcess(Process):
    def __init__(
        self,
        controller: ControllerProcess,
        state_dir: Path,
        join_token: str,
        name: str,
        config: str = "",
        cloud: str = "off",
        env: dict[str, str] | None = None,  # over the test's own (the fact seams: DSTACK_AGENT_SYSFS, ...)
    ) -> None:
        self.controller, self.state_dir, self.name = controller, state_dir, name
        env = dict(os.environ, DSTACK_AGENT_RECONNECT_MAX_S="2", **(env or {}))
        args = [
            str(BIN / "dstack-agent"),
            "run",
            "--controller",
            controller.address,
            "--state-dir",
            str(state_dir),
            "--name",
            name,
            "--config",
            str(state_dir.parent / f"{name}-agent.yaml"),
        ]
        if join_token:
            args += ["--join-token", join_token]
        # Tests ask no metadata service unless they pass `cloud` (and a loopback fake's endpoint in
        # `env`); `config` adds agent.yaml lines (region, zone, fleet).
        text = f"cloud: {cloud}\n" + ("insecure: true\n" if controller.insecure else "") + config
        self.config_path = state_dir.parent / f"{name}-agent.yaml"
        self.config_path.write_text(text)
        super().__init__(args, state_dir.parent / f"{state_dir.name}.log", env)

    def start_and_wait_online(self) -> None:
        self.start()
        wait_for(f"host {self.name} online", self.online, timeout=60)

    def online(self) -> bool:
        if not self.running:
            raise AssertionError(f"the agent exited:\n{self.log()}")
        hosts = self.controller.ctl_json("hosts")
        return any(h["name"] == self.name and h["status"] == "online" for h in hosts)


def write_task(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def served_data_dir(data_dir: Path) -> Path:
    """A data dir as a controller's first `serve` leaves it (database, CA, admin token), made by
    the same functions `serve` calls, for commands that refuse a data dir no controller has used."""
    from controller.server.app import ensure_admin_token
    from controller.settings import default_database_url
    from controller.store import open_store
    from controller.tls import load_ca

    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = open_store(default_database_url(data_dir))
    try:
        load_ca(data_dir)
        ensure_admin_token(store, data_dir / "admin-token")
    finally:
        store.close()
    return data_dir
