"""The dstack-agent .deb installed into minimal Debian roots (debootstrap minbase): bookworm (12,
python3.11) and trixie (13, python3.13), each in its own container.

In each root, in order: `apt-get install ./dstack-agent_*.deb` (python3-venv and its dependencies
come from Debian's mirror; the virtualenv must be built from the wheels for that root's CPython),
`dstack-agent facts --json`, registration with a controller on this host's loopback (the container
shares the host network), a task that runs across an upgrade to a newer build (a repack of the same
package with Version 0.1.0-2) that keeps /etc/dstack/agent.yaml edits and the state dir, `remove`
(keeps the state) and `purge` (deletes it).

The recommended container engine: apt's own resolution is asked (`apt-get install -s`, a
simulation: docker.io is not downloaded) whether the install pulls docker.io, and whether
--no-install-recommends leaves it out; the real installs use --no-install-recommends (the test
uses the host's engine through its socket).

There is no systemd in the container: the test starts `dstack-agent run` itself with `docker exec -d`.
The container and the imported image are removed by their ids. The root is cached as a tarball
under /var/cache/dstack-hybrid-tests (tests/support/debroot.py); building it the first time takes
a few minutes (debootstrap), later runs import it in seconds.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import ControllerProcess, wait_for
from tests.support.debroot import (
    SUITES,
    DebrootUnavailable,
    RootContainer,
    docker_cli,
    ensure_minbase_tar,
    repack_deb,
    running_root,
)
from tests.support.dockerd import DockerEngine
from tests.support.packages import build_agent_deb, project_version

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(1500)]

STATE = "/var/lib/dstack-agent"
CONFIG = "/etc/dstack/agent.yaml"
AGENT_PID = "/run/dstack-agent-test.pid"
AGENT_LOG = "/var/log/dstack-agent-test.log"
VENV = "/opt/dstack/agent/venv"
# Each suite's python3: the post-install must accept it and the package must carry its wheels.
SUITE_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}


VERSION = project_version()


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The freshly built agent .deb and a "newer build" of it (Version <version>-2), copied out of dist/."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    out = tmp_path_factory.mktemp("debs")
    first = build_agent_deb(out)
    return {"first": first, "newer": repack_deb(first, f"{VERSION}-2", out)}


class Container(RootContainer):
    def start_agent(self) -> None:
        cmd = (
            f"echo $$ > {AGENT_PID}; exec /usr/bin/dstack-agent run --config {CONFIG} --state-dir {STATE} "
            f">>{AGENT_LOG} 2>&1"
        )
        docker_cli("exec", "-d", "-e", "DSTACK_AGENT_RECONNECT_MAX_S=2", self.id, "sh", "-c", cmd)
        wait_for("the agent's pid file", lambda: self.exists(AGENT_PID), timeout=15)

    def agent_running(self) -> bool:
        return self.sh(f"kill -0 $(cat {AGENT_PID})", check=False).returncode == 0

    def stop_agent(self) -> None:
        if not self.exists(AGENT_PID):
            return
        self.sh(f"kill $(cat {AGENT_PID}) 2>/dev/null || true")
        wait_for("the agent to stop", lambda: not self.agent_running(), timeout=20)
        self.sh(f"rm -f {AGENT_PID}")

    def agent_log(self) -> str:
        return self.sh(f"cat {AGENT_LOG} 2>/dev/null || true", check=False).stdout


@pytest.fixture(scope="module", params=SUITES)
def suite(request: pytest.FixtureRequest) -> str:
    """The Debian release of the root: every test here runs once in each."""
    return str(request.param)


@pytest.fixture(scope="module")
def container(docker_engine: DockerEngine, debs: dict[str, Path], suite: str) -> Iterator[Container]:
    try:
        tarball = ensure_minbase_tar(suite)
    except DebrootUnavailable as exc:
        pytest.skip(str(exc))
    mounts = [a for deb in debs.values() for a in ("-v", f"{deb}:/debs/{deb.name}:ro")]
    with running_root(tarball, docker_engine.host, f"package-install-{suite}", mounts) as cid:
        yield Container(cid)


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    ctl = ControllerProcess(tmp_path_factory.mktemp("pkg-controller") / "controller")
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.stop()


def _host(controller: ControllerProcess, name: str) -> dict | None:
    return next((h for h in controller.ctl_json("hosts") if h["name"] == name), None)


def _wait_online(controller: ControllerProcess, c: Container, name: str) -> None:
    def online() -> bool:
        if not c.agent_running():
            raise AssertionError(f"the agent in the container exited:\n{c.agent_log()}")
        host = _host(controller, name)
        return bool(host and host["status"] == "online")

    try:
        wait_for(f"host {name} online", online, timeout=90, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nagent log:\n{c.agent_log()}") from None


def _installed_version(c: Container) -> str:
    return c.sh("dpkg-query -W -f '${Status} ${Version}' dstack-agent", check=False).stdout.strip()


def _simulated_installs(c: Container, *args: str) -> set[str]:
    """The packages `apt-get install -s <args>` would install (apt resolves; nothing is downloaded)."""
    out = c.sh("apt-get install -s -q " + " ".join(shlex.quote(a) for a in args), timeout=300).stdout
    return set(re.findall(r"^Inst (\S+)", out, re.M))


def test_deb_install_register_upgrade_remove_purge(
    container: Container,
    suite: str,
    controller: ControllerProcess,
    debs: dict[str, Path],
    busybox_images: dict[str, str],
) -> None:
    c = container
    name = f"pkg-{suite}-{uuid.uuid4().hex[:8]}"
    assert not c.exists("/usr/bin/python3"), "the minbase root should not have python3 yet"
    c.sh("apt-get -o Acquire::Retries=3 update -q", timeout=300)

    # The container engine is recommended: a plain install pulls docker.io, unless told not to.
    deb = f"/debs/{debs['first'].name}"
    assert "docker.io" in _simulated_installs(c, deb)
    without = _simulated_installs(c, "--no-install-recommends", deb)
    assert "docker.io" not in without and "dstack-agent" in without, without

    # Install: python3, python3-venv and friends come from Debian's mirror as dependencies.
    c.sh(f"apt-get -o Acquire::Retries=3 install -y -q --no-install-recommends {deb}", timeout=600)
    assert _installed_version(c) == f"install ok installed {VERSION}-1"
    assert c.exists(f"{VENV}/bin/dstack-agent")
    assert c.sh("stat -c '%U:%G %a' " + STATE).stdout.strip() == "dstack-agent:dstack-agent 750"
    assert "python3-venv" in c.sh("dpkg-query -W -f '${Package}\\n' 'python3*-venv'").stdout
    # The venv runs on this release's python3, from the wheels built for it (compiled extensions).
    py = SUITE_PYTHON[suite]
    assert c.sh(f"{VENV}/bin/python -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'").stdout.strip() == py
    abi = f"cpython-{py.replace('.', '')}-x86_64-linux-gnu.so"
    site = f"{VENV}/lib/python{py}/site-packages"
    for extension in ("grpc/_cython/cygrpc", "pydantic_core/_pydantic_core"):
        assert c.exists(f"{site}/{extension}.{abi}"), extension

    # Settings, as an operator edits the shipped conffile (cloud: off keeps facts off the network).
    edits = (
        f"\n# edited by test_package_install\ncontroller: 127.0.0.1:{controller.port}\n"
        f"join_token: {controller.token()}\nname: {name}\ncloud: off\n"
    )
    c.sh(f"printf '%s' {shlex.quote(edits)} >> {CONFIG}")
    facts = json.loads(c.sh(f"dstack-agent facts --json --config {CONFIG}").stdout)
    assert facts["arch"] == "amd64"
    assert facts["memory_bytes"] and facts["cpu"]

    # Register with the controller on the loopback and show up in `dstackctl hosts`.
    c.start_agent()
    _wait_online(controller, c, name)
    assert c.exists(f"{STATE}/") and c.sh(f"ls -A {STATE}").stdout.strip(), "no identity in the state dir"
    state_before = c.sh(f"cd {STATE} && find . -type f | sort | xargs sha256sum").stdout
    hosts = controller.ctl("hosts")
    assert hosts.returncode == 0 and name in hosts.stdout, hosts.stdout + hosts.stderr

    # A task runs across the upgrade: its container lives in dockerd, not in the agent, and the
    # upgraded agent re-adopts it; it finishes with its whole log and its real exit code.
    # Named per run: the controller is shared by the suites, and a name that an earlier suite's
    # finished task holds would make the waits below read that task's status.
    task_name = f"across-upgrade-{suite}"
    task = controller.data_dir.parent / f"{task_name}.yaml"
    task.write_text(
        f"type: task\nname: {task_name}\nimage: {busybox_images['amd64']}\n"
        'commands:\n  - for i in $(seq 1 30); do echo "line $i"; sleep 0.5; done\n'
    )
    assert controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    wait_for("the task's first lines", lambda: len(controller.logs(task_name).stdout.splitlines()) >= 3)

    # Upgrade to a newer build: the edited conffile and the state dir stay.
    c.stop_agent()
    c.sh(f"apt-get -o Acquire::Retries=3 install -y -q --no-install-recommends /debs/{debs['newer'].name}", timeout=600)
    assert _installed_version(c) == f"install ok installed {VERSION}-2"
    config_after = c.sh(f"cat {CONFIG}").stdout
    assert "# edited by test_package_install" in config_after and f"name: {name}" in config_after
    assert not c.exists(f"{CONFIG}.dpkg-new") and not c.exists(f"{CONFIG}.dpkg-dist")
    assert c.sh(f"cd {STATE} && find . -type f | sort | xargs sha256sum").stdout == state_before
    assert c.sh("ls -d /opt/dstack/agent/venv-*").stdout.count("venv-") == 1, "old venvs are deleted"
    # The upgraded agent comes back with the kept identity: the join token was single-use.
    c.start_agent()
    _wait_online(controller, c, name)
    assert [h["name"] for h in controller.ctl_json("hosts")].count(name) == 1
    row = controller.wait_status(task_name, "done", "failed", timeout=120)
    assert (row["status"], row["exit"]) == ("done", 0)
    logged = controller.logs(task_name).stdout
    assert logged == "".join(f"line {i}\n" for i in range(1, 31)), f"{row}\nagent log:\n{c.agent_log()}"
    c.stop_agent()

    # Remove: the program and its venvs go; the configuration and the state stay.
    c.sh("apt-get remove -y -q dstack-agent", timeout=300)
    assert _installed_version(c).startswith("deinstall ok config-files")
    assert not c.exists("/usr/bin/dstack-agent") and not c.exists("/opt/dstack/agent/venv")
    assert c.exists(CONFIG)
    assert c.sh(f"cd {STATE} && find . -type f | sort | xargs sha256sum").stdout == state_before

    # Purge: the state and the conffile are deleted.
    c.sh("apt-get purge -y -q dstack-agent", timeout=300)
    assert not c.exists(STATE)
    assert not c.exists(CONFIG)
    assert c.sh("dpkg-query -W dstack-agent", check=False).returncode != 0 or "not-installed" in _installed_version(c)
