"""A minimal Debian root (debootstrap --variant=minbase; bookworm or trixie) as a Docker image.

Each suite's root is built once and cached as a tarball under CACHE_DIR (owned by the tests), so later runs
only `docker import` it. Building needs debootstrap (packaging/dev-setup.sh --tests), root and
Debian's mirror; nothing else is downloaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

CACHE_DIR = Path("/var/cache/dstack-hybrid-tests")
SUITES = ("bookworm", "trixie")  # Debian 12 and 13: what the packages are tested on
MIRROR = "http://deb.debian.org/debian"
BUILD_TIMEOUT_S = 900


class DebrootUnavailable(RuntimeError):
    """The root cannot be built here (no debootstrap, not root)."""


def ensure_minbase_tar(suite: str = "bookworm") -> Path:
    """Path of the cached minbase tarball of `suite`, building it with debootstrap on first use."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r} (expected one of {', '.join(SUITES)})")
    tarball = CACHE_DIR / f"{suite}-minbase.tar"
    if tarball.is_file():
        return tarball
    if shutil.which("debootstrap") is None:
        raise DebrootUnavailable("debootstrap is not installed: run packaging/dev-setup.sh --tests")
    if os.geteuid() != 0:
        raise DebrootUnavailable("debootstrap needs root")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Two sessions starting at once build it once.
    with open(CACHE_DIR / f"{suite}-minbase.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.is_file():
            return tarball
        work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE_DIR))
        try:
            target = work / "root"
            done = subprocess.run(
                ["debootstrap", "--variant=minbase", suite, str(target), MIRROR],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
            )
            if done.returncode != 0:
                log = target / "debootstrap" / "debootstrap.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else done.stderr[-2000:]
                raise RuntimeError(f"debootstrap failed ({done.returncode}):\n{tail}")
            partial = work / "root.tar"
            subprocess.run(
                ["tar", "--numeric-owner", "--xattrs", "-C", str(target), "-cf", str(partial), "."],
                check=True,
                timeout=BUILD_TIMEOUT_S,
            )
            partial.rename(tarball)  # same file system: a reader never sees half a tarball
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tarball


def docker_cli(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The docker CLI against DOCKER_HOST (set by the docker_engine fixture)."""
    docker = shutil.which("docker")
    if docker is None:
        raise DebrootUnavailable("the docker CLI is not installed")
    done = subprocess.run([docker, *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def import_image(tarball: Path) -> str:
    """`docker import` the root; returns the image id (untagged: remove it by this id)."""
    out = docker_cli("import", str(tarball)).stdout.strip()
    assert out.startswith("sha256:"), out
    return out


class RootContainer:
    """A running container of an imported root, driven with `docker exec`."""

    def __init__(self, cid: str) -> None:
        self.id = cid

    def sh(self, script: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`sh -ec script` as root, stdin closed (docker exec without -i)."""
        done = docker_cli(
            "exec", "-e", "DEBIAN_FRONTEND=noninteractive", self.id, "sh", "-ec", script, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"in the container: {script}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def exists(self, path: str) -> bool:
        return self.sh(f"test -e {shlex.quote(path)}", check=False).returncode == 0


@contextlib.contextmanager
def running_root(tarball: Path, docker_host: str, label: str, extra_args: Sequence[str] = ()) -> Iterator[str]:
    """The id of a running container of a root tarball (ensure_minbase_tar), on the host's network
    (so it reaches loopback servers) with the engine's socket at the usual path (for the agent's
    Docker runtime). The container and its imported image are removed, by id, afterwards."""
    image = import_image(tarball)
    cid = ""
    try:
        args = ["run", "-d", "--network", "host", "--label", f"dstack-test={label}", *extra_args]
        if docker_host.startswith("unix://"):
            args += ["-v", f"{docker_host.removeprefix('unix://')}:/var/run/docker.sock"]
        cid = docker_cli(*args, image, "sleep", "infinity").stdout.strip()
        yield cid
    finally:
        if cid:
            docker_cli("rm", "-f", "-v", cid, check=False)
        docker_cli("rmi", "-f", image, check=False)


def repack_deb(deb: Path, version: str, dest_dir: Path) -> Path:
    """A copy of `deb` whose control Version is `version` (a test-only "newer build")."""
    tree = dest_dir / f"repack-{version}"
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True, timeout=300)
    control = tree / "DEBIAN" / "control"
    lines = control.read_text().splitlines()
    lines = [f"Version: {version}" if line.startswith("Version:") else line for line in lines]
    control.write_text("\n".join(lines) + "\n")
    package = subprocess.run(["dpkg-deb", "-f", str(deb), "Package"], capture_output=True, text=True, check=True)
    arch = subprocess.run(["dpkg-deb", "-f", str(deb), "Architecture"], capture_output=True, text=True, check=True)
    out = dest_dir / f"{package.stdout.strip()}_{version}_{arch.stdout.strip()}.deb"
    # Fast compression: the wheels inside are compressed already.
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "-b", str(tree), str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(tree, ignore_errors=True)
    return out
