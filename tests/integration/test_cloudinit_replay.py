"""The user-data of `dstack-controller cloud-init`, replayed as cloud-init runs it on a fresh VM.

For Debian 12 (bookworm) and 13 (trixie), in a container from a debootstrap minbase root with
what a stock cloud image carries added first (curl, ca-certificates, python3) and nothing of the
project: the real `dstack-controller cloud-init` renders the user-data against a running
controller, with `--package-url http://127.0.0.1:PORT/dstack-agent_{arch}.deb`, served by a
loopback HTTP server here (the container shares the host's network). tests/support/
cloudinit_replay.py then does what cloud-init does with it: write_files with their owners and
modes, then the runcmd script with stdin on /dev/null (apt-get installs python3-venv from
Debian's mirror as a dependency of the .deb), `systemctl enable --now` standing in as the unit's
ExecStart. The host must come online in the controller's fleet with the region, zone and labels
given to `cloud-init`, and the package's conffile /etc/dstack/agent.yaml must be untouched.

This is what would have caught issue 12: the user-data wrote /etc/dstack/agent.yaml before the
install, dpkg stopped at its conffile prompt with stdin closed and apt-get failed (exit 100).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cloudinit_replay import UNIT_LOG, UNIT_PID, cloud_init_python, parse_user_data, run_runcmd
from tests.support.cloudinit_replay import write_files as replay_write_files
from tests.support.cluster import BIN, ControllerProcess, wait_for
from tests.support.debroot import DebrootUnavailable, RootContainer, ensure_minbase_tar, running_root
from tests.support.dockerd import DockerEngine
from tests.support.packages import build_agent_deb

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(1500)]

CONFFILE = "/etc/dstack/agent.yaml"
DROP_IN = "/etc/dstack/agent.d/50-cloud-init.yaml"
UNIT = "dstack-agent"
FLEET = "replayed"
REGION, ZONE = "eu-test-1", "eu-test-1b"
LABELS = {"rack": "r12", "image": "stock"}
# What a stock Debian cloud image has that a minbase root lacks (cloud-init itself needs python3).
STOCK_IMAGE_PACKAGES = ("curl", "ca-certificates", "python3")
# The agent's cloud lookups stay on the loopback, whatever DMI data this host's /sys shows.
NO_METADATA = {
    "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9",
    "DSTACK_AGENT_AZURE_IMDS_ENDPOINT": "http://127.0.0.1:9",
    "DSTACK_AGENT_GCP_METADATA_ENDPOINT": "http://127.0.0.1:9",
}


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    if cloud_init_python() is None:
        pytest.skip("the cloud-init command is missing: packaging/dev-setup.sh --tests installs it")
    return build_agent_deb(tmp_path_factory.mktemp("replay-deb"))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requested: list[str]

    def log_message(self, format: str, *args: object) -> None:
        self.requested.append(self.path)


@pytest.fixture(scope="module")
def package_server(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, list[str]]]:
    """Serves the .deb as dstack-agent_<its Architecture>.deb on 127.0.0.1; yields (port, paths asked)."""
    arch = subprocess.run(["dpkg-deb", "-f", str(deb), "Architecture"], capture_output=True, text=True, check=True)
    root = tmp_path_factory.mktemp("served")
    shutil.copy2(deb, root / f"dstack-agent_{arch.stdout.strip()}.deb")
    requested: list[str] = []
    handler = type("Handler", (_Quiet,), {"requested": requested})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requested
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerProcess]:
    ctl = ControllerProcess(tmp_path / "controller")
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.stop()


@pytest.fixture
def stock_vm(request: pytest.FixtureRequest, docker_engine: DockerEngine) -> Iterator[RootContainer]:
    """A container of the suite's minbase root plus STOCK_IMAGE_PACKAGES; nothing of the project."""
    try:
        tarball = ensure_minbase_tar(request.param)
    except DebrootUnavailable as exc:
        pytest.skip(str(exc))
    with running_root(tarball, docker_engine.host, "cloudinit-replay") as cid:
        vm = RootContainer(cid)
        vm.sh("apt-get -o Acquire::Retries=3 update -q", timeout=300)
        packages = " ".join(STOCK_IMAGE_PACKAGES)
        vm.sh(f"apt-get -o Acquire::Retries=3 install -y -q --no-install-recommends {packages}", timeout=600)
        vm.sh("rm -rf /var/lib/apt/lists/*")  # as an image ships: the user-data's apt-get update fetches them
        assert not vm.exists("/etc/dstack") and not vm.exists("/opt/dstack"), "the root must not hold the project"
        assert vm.sh("dpkg-query -W -f '${Status}' python3-venv", check=False).stdout.strip() != (
            "install ok installed"
        ), "python3-venv must come in as a dependency of the .deb"
        yield vm


def _render_user_data(controller: ControllerProcess, port: int) -> str:
    """The real command against the running controller's data dir."""
    labels = [a for k, v in LABELS.items() for a in ("--label", f"{k}={v}")]
    done = subprocess.run(
        [str(BIN / "dstack-controller"), "cloud-init", "--fleet", FLEET, "--data-dir", str(controller.data_dir),
         "--controller", controller.address, "--package-url", f"http://127.0.0.1:{port}/dstack-agent_{{arch}}.deb",
         "--region", REGION, "--zone", ZONE, *labels],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("stock_vm", ["bookworm", "trixie"], indirect=True)
def test_user_data_installs_and_registers_on_a_fresh_vm(
    stock_vm: RootContainer, controller: ControllerProcess, package_server: tuple[int, list[str]]
) -> None:
    vm = stock_vm
    port, requested = package_server
    requested.clear()  # the server is the module's; this test counts its own requests
    started = time.monotonic()
    user_data = _render_user_data(controller, port)
    replay = parse_user_data(user_data)
    assert "{arch}" in user_data, "the URL's {arch} is for the VM to resolve"

    # cloud-init's init stage: write_files. Then its final stage: the runcmd script, stdin closed.
    replay_write_files(vm.id, replay.files)
    ran = run_runcmd(vm.id, replay.script, NO_METADATA, timeout=900)
    output = f"runcmd exit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    assert requested == ["/dstack-agent_amd64.deb"], f"{requested}\n{output}"
    installed = vm.sh("dpkg-query -W -f '${Status}' dstack-agent", check=False).stdout
    assert installed == "install ok installed", output
    assert "python3-venv" in vm.sh("dpkg-query -W -f '${Package}\\n' 'python3*-venv'").stdout

    # The package's conffile is the package's: dpkg sees no change (and left no .dpkg-* beside it).
    assert vm.sh("dpkg --verify dstack-agent", check=False).stdout == "", output
    conffiles = vm.sh("dpkg-query -W -f '${Conffiles}' dstack-agent").stdout.split()
    assert conffiles[0] == CONFFILE
    assert vm.sh(f"md5sum {CONFFILE}").stdout.split()[0] == conffiles[1]
    assert vm.sh("ls /etc/dstack").stdout.split() == ["agent.d", "agent.yaml"]
    assert vm.sh("ls -A /etc/dstack/agent.d").stdout.split() == ["50-cloud-init.yaml"]
    assert vm.sh(f"stat -c '%U:%G %a' {DROP_IN}").stdout.strip() == "root:dstack-agent 640"

    # The stand-in started the unit's ExecStart, as its User: the host registers and stays online.
    pid_file, log_file = UNIT_PID.format(unit=UNIT), UNIT_LOG.format(unit=UNIT)

    def agent_log() -> str:
        return vm.sh(f"cat {log_file} 2>/dev/null || true", check=False).stdout

    def online() -> dict | None:
        if vm.sh(f"kill -0 $(cat {pid_file})", check=False).returncode != 0:
            raise AssertionError(f"the agent exited:\n{agent_log()}\n{output}")
        hosts = controller.ctl_json("hosts")
        return next((h for h in hosts if h["status"] == "online"), None)

    try:
        host = wait_for("the host online", online, timeout=120, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nagent log:\n{agent_log()}\n{output}") from None
    registered = time.monotonic() - started
    assert vm.sh(f"stat -c %U /proc/$(cat {pid_file})").stdout.strip() == "dstack-agent"
    assert (host["region"], host["zone"]) == (REGION, ZONE)
    assert host["facts"]["labels"] == LABELS
    assert host["facts"]["fleet"] == FLEET
    assert {"region", "zone", "labels", "fleet"} <= set(host["facts"]["overridden"])
    print(f"user-data to online host: {registered:.1f} s")
