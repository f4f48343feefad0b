"""Run Debian's docker-registry (distribution v2) on loopback for one test session."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 20.0
# dockerd treats 127.0.0.0/8 as an insecure registry by default, so plain HTTP on loopback
# works for push and pull without touching the daemon's configuration.
BIND_HOST = "127.0.0.1"
# No proxy: a CI proxy setting must not capture requests to loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RegistryUnavailable(RuntimeError):
    pass


@dataclass
class Registry:
    addr: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    root: Path | None = None

    def stop(self) -> None:
        """Stop this registry by its pid and delete its storage."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((BIND_HOST, 0))
        return int(s.getsockname()[1])


def _answers(addr: str) -> bool:
    try:
        with _OPENER.open(f"http://{addr}/v2/", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_registry(attempts: int = 3) -> Registry:
    """Start a registry on a free loopback port; retries when another process takes the port first."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RegistryUnavailable("docker-registry is not installed: run packaging/dev-setup.sh --tests")
    last_error = ""
    for _ in range(attempts):
        root = Path(tempfile.mkdtemp(prefix="dstack-test-registry-"))
        addr = f"{BIND_HOST}:{_free_port()}"
        # JSON is YAML, so no YAML library is needed to write the config.
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
            "http": {"addr": addr},
        }
        (root / "config.yml").write_text(json.dumps(config))
        log_path = root / "registry.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [binary, "serve", str(root / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        registry = Registry(addr=addr, process=proc, root=root)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers(addr):
                return registry
            time.sleep(0.2)
        lines = log_path.read_text(errors="replace").strip().splitlines()
        last_error = lines[-1] if lines else f"exit status {proc.poll()}"
        registry.stop()
    raise RegistryUnavailable(f"docker-registry did not answer on loopback: {last_error or 'no output'}")
