"""The .deb and .rpm packages: packaging/build --arch amd64, then their metadata, files and linters.

Slow (about 3 minutes with an empty download cache, 1 minute with a warm one) and needs PyPI, plus
the Debian packages rpm, lintian and rpmlint; a missing tool skips the checks that need it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.packages import project_version

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
PACKAGES = ("dstack-agent", "dstack-controller")
PYTHONS = ("cp310", "cp311", "cp312", "cp313")
# What the packages must accept, exactly: Debian 12 (3.11) and 13 (3.13), Ubuntu 22.04 (3.10) to 25.04
# (3.13), Fedora 41 (3.13). The deb spelling and the rpm one of the same range.
DEB_PYTHON = ["python3 (>= 3.10)", "python3 (<< 3.14)"]
RPM_PYTHON = ["python3 >= 3.10", "python3 < 3.14"]
# Probed around the range: one below, one above.
MINORS = range(9, 15)


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
    assert depends.group(1).split(", ") == [*DEB_PYTHON, "python3-venv", "passwd"]
    recommends = subprocess.run(["dpkg-deb", "-f", str(deb), "Recommends"], capture_output=True, text=True).stdout
    # The agent runs tasks through a container engine; the controller needs none.
    assert recommends.strip() == ("docker.io | docker-ce" if name == "dstack-agent" else "")
    description = _run("dpkg-deb", "-f", deb, "Description")
    assert "CPython 3.10 to 3.13;" in " ".join(description.split()), description
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


def _version_check(postinst: str) -> str:
    """The post-install's Python version check, as the package ships it: the one `python3 -c` that
    reads sys.version_info."""
    found = re.findall(r"python3 -c '[^']*\bversion_info\b[^']*'", postinst)
    assert len(found) == 1, postinst
    return found[0]


def _real_python(minor: int) -> str | None:
    """The executable of a real CPython 3.<minor> on this machine, if any: on PATH, or installed by
    pyenv or uv (asked for its sys.executable, so a pyenv shim resolves to the interpreter behind it)."""
    candidates = [shutil.which(f"python3.{minor}"), sys.executable]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob(f"3.{minor}.*/bin/python3.{minor}"))
    uv = Path.home() / ".local" / "share" / "uv" / "python"
    candidates += sorted(str(p) for p in uv.glob(f"cpython-3.{minor}.*/bin/python3.{minor}"))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.executable, '%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        found = probe.stdout.split()
        if probe.returncode == 0 and len(found) == 2 and found[1] == f"3.{minor}":
            return found[0]
    return None


def _python3_dir(minor: int, where: Path) -> tuple[Path, bool]:
    """A directory whose `python3` is CPython 3.<minor>, and whether that is a real interpreter.

    The real one where this machine has it. Elsewhere it emulates (no release of 3.14 may be at
    hand, and a build host often has one or two CPythons): this test's own interpreter with
    `sys.version_info` set to 3.<minor> by a sitecustomize before any code runs, so the
    post-install's check code itself runs unchanged.
    """
    bin_dir = where / f"py3{minor}"
    bin_dir.mkdir()
    real = _real_python(minor)
    if real:
        (bin_dir / "python3").symlink_to(real)
    else:
        site = where / f"site-3{minor}"
        site.mkdir()
        (site / "sitecustomize.py").write_text(f"import sys\nsys.version_info = (3, {minor}, 0, 'final', 0)\n")
        (bin_dir / "python3").write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
        (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    reported = _run_env(env, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
    assert reported.strip() == f"3.{minor}", (minor, reported)
    return bin_dir, real is not None


def _run_env(env: dict[str, str], *cmd: str | Path) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _deb_allows(depends: str, version: str) -> bool:
    """Whether python3 at `version` satisfies every python3 relation in a deb Depends field (dpkg decides)."""
    relations = re.findall(r"\bpython3 \((>=|<<|<=|>>|=) ([^)]+)\)", depends)
    assert relations, depends
    ops = {">=": "ge", "<<": "lt", "<=": "le", ">>": "gt", "=": "eq"}
    return all(
        subprocess.run(["dpkg", "--compare-versions", version, ops[op], bound]).returncode == 0
        for op, bound in relations
    )


@pytest.mark.parametrize("name", PACKAGES)
def test_postinst_accepts_exactly_the_python_its_wheels_and_depends_allow(
    built: dict[str, Path], name: str, tmp_path: Path
) -> None:
    """For CPython 3.9 to 3.14: the post-install's own version check, the Depends range (as dpkg
    compares Debian's python3 versions) and the wheels in the package (pip resolving the project
    from them alone, as the post-install does) agree on every version."""
    deb = built[f"{name}.deb"]
    postinst = _run("dpkg-deb", "-I", deb, "postinst")
    check = _version_check(postinst)
    depends = _run("dpkg-deb", "-f", deb, "Depends")
    tree = tmp_path / "tree"
    _run("dpkg-deb", "-x", deb, tree)
    wheels = tree / "opt" / "dstack" / name.removeprefix("dstack-") / "wheels"
    target = f"dstack-hybrid{'[cloud]' if name == 'dstack-controller' else ''}=={VERSION}"
    # A glibc 2.41 x86_64 host (Debian 13): every manylinux tag up to it.
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in range(5, 42)]
    platforms += ["--platform=manylinux1_x86_64", "--platform=manylinux2010_x86_64", "--platform=manylinux2014_x86_64"]

    verdicts = {}
    emulated = []
    for minor in MINORS:
        bin_dir, real = _python3_dir(minor, tmp_path)
        if not real:
            emulated.append(f"3.{minor}")
        env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
        fits = subprocess.run(["sh", "-c", check], env=env, timeout=60).returncode == 0
        # Debian's python3 versions look like 3.13.5-1: the whole minor is in or out.
        allowed = {_deb_allows(depends, f"3.{minor}.{patch}-1") for patch in (0, 99)}
        assert len(allowed) == 1, (minor, depends)
        resolves = subprocess.run(
            [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "install", "--dry-run",
             "--quiet", "--ignore-installed", "--no-index", "--find-links", str(wheels), "--only-binary=:all:",
             "--implementation", "cp", "--python-version", f"3.{minor}", *platforms, target],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        verdicts[minor] = (fits, allowed.pop(), resolves.returncode == 0)
    expected = {minor: (10 <= minor <= 13,) * 3 for minor in MINORS}
    assert verdicts == expected, "(post-install check, Depends, wheels install) per 3.x:\n" + "\n".join(
        f"3.{m}: {v}" for m, v in verdicts.items()
    )
    print(f"emulated CPython versions (no real interpreter here): {emulated or 'none'}")
    # The rpm's scriptlet is the same script.
    if shutil.which("rpm"):
        assert check in _run("rpm", "-qp", "--scripts", built[f"{name}.rpm"])


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
    assert [line for line in requires.splitlines() if line.startswith("python3 ")] == RPM_PYTHON, requires
    recommends = _run("rpm", "-qp", "--recommends", rpm).splitlines()
    # A boolean (rich) dependency: dnf on Fedora and RHEL 8+ (rpm 4.13+) picks whichever engine is there.
    assert recommends == (["(docker-ce or moby-engine or podman-docker)"] if name == "dstack-agent" else [])
    description = _run("rpm", "-qp", "--qf", "%{DESCRIPTION}", rpm)
    assert "CPython 3.10 to 3.13;" in " ".join(description.split()), description
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
