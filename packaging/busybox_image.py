#!/usr/bin/env python3
"""Build an offline busybox Docker image for one architecture from Debian's busybox-static.

    python3 packaging/busybox_image.py --arch amd64|arm64 --tag NAME:TAG [--docker-host URL] [--cache-dir DIR]

The image is written as a docker-archive tarball by hand and loaded with `docker load`, because
`docker import --platform` does not record the architecture on Docker 20.10 and the tests need
images whose Architecture really is arm64 without pulling anything from Docker Hub.
Standard library only, so it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import NoReturn

ARCHES = ("amd64", "arm64")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A fixed timestamp keeps the layer (and so the image id) identical between builds.
EPOCH = 0
CREATED = "1970-01-01T00:00:00Z"


class BuildError(Exception):
    """A step failed; the message is one sentence for the user."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"busybox_image.py: error: {message}", file=sys.stderr)
        sys.exit(2)


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise BuildError(f"{cmd[0]} is not installed (run packaging/dev-setup.sh)") from exc
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise BuildError(f"`{' '.join(cmd)}` failed: {detail}")
    return proc.stdout


def _deb_field(deb: Path, field: str) -> str:
    return _run(["dpkg-deb", "-f", str(deb), field]).strip()


def fetch_deb(arch: str, cache_dir: Path, version: str | None = None) -> Path:
    """Return the cached busybox-static .deb for arch, downloading it with apt only when missing."""
    cache_dir.mkdir(parents=True, exist_ok=True)

    def cached() -> list[Path]:
        debs = sorted(cache_dir.glob(f"busybox-static_*_{arch}.deb"), key=lambda p: p.stat().st_mtime)
        if version is not None:
            debs = [d for d in debs if _deb_field(d, "Version") == version]
        return debs

    debs = cached()
    if not debs:
        spec = f"busybox-static:{arch}" + (f"={version}" if version else "")
        # As root apt would otherwise try (and warn about) dropping to the _apt user for the download.
        _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", spec], cwd=cache_dir)
        debs = cached()
        if not debs:
            raise BuildError(f"apt-get download {spec} produced no .deb in {cache_dir}")
    return debs[-1]


def applet_names(busybox: Path) -> list[str]:
    names = [n.strip() for n in _run([str(busybox), "--list"]).splitlines()]
    return sorted({n for n in names if n and n != "busybox" and "/" not in n})


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer_tar(busybox_binary: bytes, applets: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d, mode in (
            ("bin", 0o755),
            ("etc", 0o755),
            ("root", 0o700),
            ("tmp", 0o1777),
            ("usr", 0o755),
            ("usr/bin", 0o755),
        ):
            _add(tar, d, tarfile.DIRTYPE, mode)
        _add(tar, "bin/busybox", tarfile.REGTYPE, 0o755, busybox_binary)
        for name in applets:
            _add(tar, f"bin/{name}", tarfile.SYMTYPE, 0o777, link="busybox")
        # `#!/usr/bin/env sh` scripts are common enough to be worth one extra link.
        _add(tar, "usr/bin/env", tarfile.SYMTYPE, 0o777, link="../../bin/busybox")
        # So `id` and `whoami` print names rather than bare numbers.
        _add(tar, "etc/passwd", tarfile.REGTYPE, 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        _add(tar, "etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\n")
    return buf.getvalue()


def docker_archive(layer: bytes, arch: str, tag: str, version: str) -> bytes:
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config: dict[str, object] = {
        "architecture": arch,
        "os": "linux",
        "created": CREATED,
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": f"busybox_image.py busybox-static {version}"}],
    }
    if arch == "arm64":
        # Registries and `docker manifest` describe 64-bit ARM as arm64/v8; say the same here.
        config["variant"] = "v8"
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_dir = diff_id.split(":", 1)[1]
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{layer_dir}/layer.tar"]}]

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _add(tar, layer_dir, tarfile.DIRTYPE, 0o755)
        _add(tar, f"{layer_dir}/VERSION", tarfile.REGTYPE, 0o644, b"1.0")
        _add(tar, f"{layer_dir}/layer.tar", tarfile.REGTYPE, 0o644, layer)
        _add(tar, config_name, tarfile.REGTYPE, 0o644, config_bytes)
        _add(tar, "manifest.json", tarfile.REGTYPE, 0o644, json.dumps(manifest).encode())
    return buf.getvalue()


def extract_busybox(deb: Path, into: Path) -> Path:
    _run(["dpkg", "-x", str(deb), str(into)])
    binary = into / "bin" / "busybox"
    if not binary.is_file():
        raise BuildError(f"{deb.name} holds no bin/busybox")
    return binary


def build(arch: str, tag: str, docker_host: str | None, cache_dir: Path) -> None:
    deb = fetch_deb(arch, cache_dir)
    version = _deb_field(deb, "Version")
    with tempfile.TemporaryDirectory(prefix="busybox-image-") as tmp:
        work = Path(tmp)
        binary = extract_busybox(deb, work / arch)
        # The applet list comes from an amd64 binary of the same version: it runs natively here
        # and the arm64 build of one package version has the same applets.
        lister = binary
        if arch != "amd64":
            lister = extract_busybox(fetch_deb("amd64", cache_dir, version), work / "amd64")
        applets = applet_names(lister)
        if "sh" not in applets:
            raise BuildError(f"busybox {version} lists no sh applet")
        archive = work / "image.tar"
        archive.write_bytes(docker_archive(layer_tar(binary.read_bytes(), applets), arch, tag, version))

        env = dict(os.environ)
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        out = _run(["docker", "load", "-i", str(archive)], env=env)
        if tag not in out:
            raise BuildError(f"docker load did not report {tag}: {out.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description="Build an offline busybox image for one architecture.")
    parser.add_argument("--arch", required=True, choices=ARCHES)
    parser.add_argument("--tag", required=True, help="NAME:TAG (an explicit tag is required)")
    parser.add_argument("--docker-host", default=os.environ.get("DOCKER_HOST"))
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "dstack-hybrid" / "debs")
    args = parser.parse_args(argv)

    name, sep, tag = args.tag.rpartition(":")
    if not sep or not name or not tag or "/" in tag:
        parser.error(f"--tag must be NAME:TAG with an explicit tag, got {args.tag!r}")

    try:
        build(args.arch, args.tag, args.docker_host, args.cache_dir.expanduser())
    except (BuildError, OSError) as exc:
        print(f"busybox_image.py: {exc}", file=sys.stderr)
        return 1
    print(args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
