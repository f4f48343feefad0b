"""The .deb and .rpm packages: packaging/build --arch amd64, then their metadata, files and linters.

Slow (about 3 minutes with an empty download cache, 15 s with a warm one) and needs PyPI, plus the
Debian packages rpm, lintian and rpmlint; a missing tool skips the checks that need it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.packages import project_version

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
PACKAGES = ("dstack-agent", "dstack-controller")
PYTHONS = ("cp310", "cp311", "cp312")


VERSION = project_version()


def _run(*cmd: str | Path) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    for name in PACKAGES:
        for fmt in ("deb", "rpm"):
            for old in DIST.glob(f"{name}[_-]{VERSION}-*.{fmt}"):
                old.unlink()
    subprocess.run([ROOT / "packaging" / "build", "--arch", "amd64"], cwd=ROOT, check=True, timeout=900)
    return {
        "dstack-agent.deb": DIST / f"dstack-agent_{VERSION}-1_amd64.deb",
        "dstack-controller.deb": DIST / f"dstack-controller_{VERSION}-1_amd64.deb",
        "dstack-agent.rpm": DIST / f"dstack-agent-{VERSION}-1.x86_64.rpm",
        "dstack-controller.rpm": DIST / f"dstack-controller-{VERSION}-1.x86_64.rpm",
    }


def test_four_packages(built: dict[str, Path]) -> None:
    for path in built.values():
        assert path.is_file(), path
        assert path.stat().st_size > 1_000_000, path  # the wheelhouse is in it


@pytest.mark.parametrize("name", PACKAGES)
def test_deb_metadata(built: dict[str, Path], name: str) -> None:
    deb = built[f"{name}.deb"]
    info = _run("dpkg-deb", "-I", deb)
    assert f"Package: {name}" in info
    assert f"Version: {VERSION}-1" in info
    assert "Architecture: amd64" in info
    depends = re.search(r"^ Depends: (.*)$", info, re.M)
    assert depends, info
    assert "python3 (>= 3.10)" in depends.group(1)
    assert "python3-venv" in depends.group(1)
    short = name.removeprefix("dstack-")
    assert _run("dpkg-deb", "-f", deb, "Package").strip() == name
    extracted = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True, text=True)
    assert extracted.stdout.split() == [f"/etc/dstack/{short}.yaml"]
    for script in ("postinst", "prerm", "postrm"):
        body = subprocess.run(["dpkg-deb", "-I", str(deb), script], capture_output=True, text=True).stdout
        assert body.startswith("#!/bin/sh"), script
        for line in body.splitlines():
            if re.match(r"\s*systemctl ", line):
                assert "|| true" in line, line  # and each sits under [ -d /run/systemd/system ]
    postinst = subprocess.run(["dpkg-deb", "-I", str(deb), "postinst"], capture_output=True, text=True).stdout
    assert "try-restart" in postinst
    assert "--no-index" in postinst and "--isolated" in postinst
    assert "systemctl stop" not in postinst  # an upgrade never stops the service, let alone containers
    postrm = subprocess.run(["dpkg-deb", "-I", str(deb), "postrm"], capture_output=True, text=True).stdout
    assert 'rm -rf "/var/lib/$NAME"' in postrm and "purge)" in postrm


@pytest.mark.parametrize("name", PACKAGES)
def test_deb_contents(built: dict[str, Path], name: str) -> None:
    listing = _run("dpkg-deb", "-c", built[f"{name}.deb"])
    short = name.removeprefix("dstack-")
    assert f"./etc/dstack/{short}.yaml" in listing
    # The agent's drop-in directory (cloud-init writes there; agent.yaml is a conffile), empty.
    drop_ins = [line for line in listing.splitlines() if "./etc/dstack/" in line and ".d/" in line]
    if name == "dstack-agent":
        assert len(drop_ins) == 1 and drop_ins[0].startswith("drwxr-xr-x root/root"), drop_ins
        assert drop_ins[0].endswith(" ./etc/dstack/agent.d/"), drop_ins
    else:
        assert drop_ins == []  # the controller reads no drop-ins: shipping a directory would mislead
    assert f"./lib/systemd/system/{name}.service" in listing
    assert f"./usr/bin/{name} -> /opt/dstack/{short}/venv/bin/{name}" in listing
    if name == "dstack-controller":
        assert "./usr/bin/dstackctl -> /opt/dstack/controller/venv/bin/dstackctl" in listing
    else:
        assert "dstackctl" not in listing
    wheels = re.findall(rf"\./opt/dstack/{short}/wheels/(\S+\.whl)", listing)
    assert f"dstack_hybrid-{VERSION}-py3-none-any.whl" in wheels
    for dist in ("grpcio", "pydantic_core"):  # per-CPython wheels
        for py in PYTHONS:
            assert any(w.startswith(f"{dist}-") and f"-{py}-{py}-" in w and "x86_64" in w for w in wheels), (dist, py)
    for dist in ("cryptography", "protobuf", "psutil", "docker", "ruamel_yaml", "py_cpuinfo"):
        assert any(w.startswith(f"{dist}-") for w in wheels), dist
    assert not any("aarch64" in w for w in wheels)
    # The cloud SDKs (bursting) are the controller's alone.
    cloud = [w for w in wheels if w.startswith(("boto3-", "botocore-", "azure_mgmt_compute-", "azure_identity-"))]
    assert len(cloud) == (4 if name == "dstack-controller" else 0), cloud


@pytest.mark.parametrize("name", PACKAGES)
def test_rpm(built: dict[str, Path], name: str) -> None:
    _need("rpm")
    rpm = built[f"{name}.rpm"]
    short = name.removeprefix("dstack-")
    files = _run("rpm", "-qpl", rpm).split()
    assert f"/etc/dstack/{short}.yaml" in files
    assert f"/lib/systemd/system/{name}.service" in files
    assert f"/usr/bin/{name}" in files
    assert f"/opt/dstack/{short}/wheels/dstack_hybrid-{VERSION}-py3-none-any.whl" in files
    for py in PYTHONS:
        assert any(f.startswith(f"/opt/dstack/{short}/wheels/grpcio-") and f"-{py}-" in f for f in files), py
    assert _run("rpm", "-qpc", rpm).split() == [f"/etc/dstack/{short}.yaml"]
    drop_ins = [f for f in files if f.startswith(f"/etc/dstack/{short}.d")]
    assert drop_ins == (["/etc/dstack/agent.d"] if name == "dstack-agent" else [])
    if drop_ins:
        [line] = [ln for ln in _run("rpm", "-qplv", rpm).splitlines() if ln.endswith(" /etc/dstack/agent.d")]
        assert line.startswith("drwxr-xr-x") and " root " in line, line
    requires = _run("rpm", "-qpR", rpm)
    assert re.search(r"^python3 >= 3\.10$", requires, re.M), requires
    assert "x86_64" in _run("rpm", "-qp", "--qf", "%{ARCH}", rpm)
    scripts = _run("rpm", "-qp", "--scripts", rpm)
    assert "try-restart" in scripts and "[ -d /run/systemd/system ]" in scripts


@pytest.mark.parametrize("name", PACKAGES)
def test_rpm_lays_its_files_out_and_carries_the_debs_steps(built: dict[str, Path], name: str, tmp_path: Path) -> None:
    """`rpm --root` into a scratch root (no deps, no scripts): the files land where the deb puts
    them, and the scriptlets do what the deb's do (user, offline venv, guarded systemctl, cleanup)."""
    _need("rpm")
    short = name.removeprefix("dstack-")
    root = tmp_path / "root"
    root.mkdir()
    _run("rpm", "--root", root, "--initdb")
    _run("rpm", "--root", root, "-i", "--nodeps", "--noscripts", built[f"{name}.rpm"])
    assert (root / f"etc/dstack/{short}.yaml").is_file()
    assert (root / f"lib/systemd/system/{name}.service").is_file()
    assert (root / f"usr/bin/{name}").is_symlink()
    assert str((root / f"usr/bin/{name}").readlink()) == f"/opt/dstack/{short}/venv/bin/{name}"
    wheels = root / f"opt/dstack/{short}/wheels"
    assert (wheels / f"dstack_hybrid-{VERSION}-py3-none-any.whl").is_file()
    if name == "dstack-controller":
        assert (root / "usr/bin/dstackctl").is_symlink()
    assert _run("rpm", "--root", root, "-q", name).startswith(f"{name}-{VERSION}-1")
    scripts = _run("rpm", "-qp", "--scripts", built[f"{name}.rpm"])
    for step in ("useradd --system", "python3 -m venv", "--no-index --find-links", "[ -d /run/systemd/system ]"):
        assert step in scripts, step
    assert re.search(r"postuninstall scriptlet", scripts), "the venvs must go on erase"


def test_lintian_no_errors(built: dict[str, Path]) -> None:
    _need("lintian")
    debs = [str(built[f"{n}.deb"]) for n in PACKAGES]
    done = subprocess.run(["lintian", *debs], capture_output=True, text=True, timeout=600)
    errors = [line for line in done.stdout.splitlines() if line.startswith("E:")]
    assert not errors, done.stdout


def test_rpmlint_no_errors(built: dict[str, Path]) -> None:
    _need("rpmlint")
    rpms = [str(built[f"{n}.rpm"]) for n in PACKAGES]
    config = ROOT / "packaging" / "rpmlint.toml"
    done = subprocess.run(["rpmlint", "-c", str(config), *rpms], capture_output=True, text=True, timeout=600)
    errors = [line for line in done.stdout.splitlines() if ": E: " in line]
    assert not errors, done.stdout
    assert re.search(r"\b0 errors\b", done.stdout), done.stdout
