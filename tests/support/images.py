"""Offline busybox test images: one per architecture, plus a multi-arch list in a loopback registry.

Nothing here names an image without an explicit tag, and containers are never started with
`containers.run`, which would pull a missing image from Docker Hub.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import docker

from tests.support.dockerd import DockerEngine

REPO = "dstack-test/busybox"
MULTI_REPO = "dstack-test/busybox-multi"
MULTI_TAG = "1"
ARCHES = ("amd64", "arm64")
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "busybox_image.py"


def image_arch(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).attrs.get("Architecture"))
    except docker.errors.ImageNotFound:
        return None


def build_busybox_images(engine: DockerEngine, cache_dir: Path | None = None) -> dict[str, str]:
    """Make sure dstack-test/busybox:{amd64,arm64} exist with the right Architecture; return arch -> tag."""
    client = engine.client()
    tags: dict[str, str] = {}
    try:
        for arch in ARCHES:
            tag = f"{REPO}:{arch}"
            tags[arch] = tag
            if image_arch(client, tag) == arch:
                continue
            cmd = [
                sys.executable,
                str(BUILD_SCRIPT),
                "--arch",
                arch,
                "--tag",
                tag,
                "--docker-host",
                engine.host,
            ]
            if cache_dir is not None:
                cmd += ["--cache-dir", str(cache_dir)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"building {tag} failed: {proc.stderr.strip() or proc.stdout.strip()}")
            if image_arch(client, tag) != arch:
                raise RuntimeError(f"{tag} was loaded but its Architecture is not {arch}")
    finally:
        client.close()
    return tags


def _docker_cli(engine: DockerEngine, config_dir: str, *args: str) -> str:
    docker_bin = shutil.which("docker")
    if docker_bin is None:
        raise RuntimeError("the docker client is not installed: run packaging/dev-setup.sh --tests")
    env = dict(os.environ)
    env["DOCKER_HOST"] = engine.host
    # `docker manifest` is experimental on 20.10-era clients and refused unless this is set.
    env["DOCKER_CLI_EXPERIMENTAL"] = "enabled"
    # Manifest lists are staged in $DOCKER_CONFIG/manifests; a throwaway config keeps stale lists
    # from earlier sessions (same port, same name) out of the way and leaves ~/.docker alone.
    env["DOCKER_CONFIG"] = config_dir
    proc = subprocess.run([docker_bin, *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def _push(client: docker.DockerClient, repository: str, tag: str) -> None:
    for line in client.images.push(repository, tag=tag, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError(f"pushing {repository}:{tag} failed: {line['error']}")


def push_multiarch(engine: DockerEngine, registry_addr: str) -> str:
    """Push both busybox images and a manifest list over them to the registry; return the list's reference.

    Local copies of everything pushed are removed afterwards, so pulling the returned reference
    really goes to the registry.
    """
    client = engine.client()
    multi = f"{registry_addr}/{MULTI_REPO}:{MULTI_TAG}"
    pushed: dict[str, str] = {}
    try:
        for arch in ARCHES:
            repository = f"{registry_addr}/{REPO}"
            if not client.images.get(f"{REPO}:{arch}").tag(repository, tag=arch):
                raise RuntimeError(f"tagging {REPO}:{arch} as {repository}:{arch} failed")
            _push(client, repository, arch)
            pushed[arch] = f"{repository}:{arch}"

        with tempfile.TemporaryDirectory(prefix="dstack-test-docker-config-") as config_dir:
            _docker_cli(engine, config_dir, "manifest", "create", "--insecure", multi, *pushed.values())
            for arch, ref in pushed.items():
                # create reads the platform from each image config; annotating states it outright
                # so the list is right even with clients that leave the variant out.
                variant = ["--variant", "v8"] if arch == "arm64" else []
                _docker_cli(
                    engine,
                    config_dir,
                    "manifest",
                    "annotate",
                    "--os",
                    "linux",
                    "--arch",
                    arch,
                    *variant,
                    multi,
                    ref,
                )
            _docker_cli(engine, config_dir, "manifest", "push", "--insecure", "--purge", multi)

        for ref in [*pushed.values(), multi]:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(ref)
    finally:
        client.close()
    return multi


def run_output(client: docker.DockerClient, image: str, command: list[str], platform: str | None = None) -> str:
    """Run command in a fresh container of a local image and return its output; the container is removed."""
    container = client.containers.create(image, command, platform=platform)
    try:
        container.start()
        result = container.wait(timeout=60)
        output: str = container.logs(stdout=True, stderr=True).decode(errors="replace")
        if result.get("StatusCode") != 0:
            raise RuntimeError(f"{command} in {image} exited {result.get('StatusCode')}: {output.strip()}")
        return output
    finally:
        container.remove(force=True)
