"""The test environment is what the product tests rely on.

If these fail, failures elsewhere say nothing about the product: the engine, the per-arch images,
qemu emulation and the loopback multi-arch registry are checked here on their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator

import docker
import pytest

from tests.support.dockerd import DockerEngine
from tests.support.images import run_output
from tests.support.registry import Registry

pytestmark = pytest.mark.docker


@pytest.fixture
def client(docker_engine: DockerEngine) -> Iterator[docker.DockerClient]:
    c = docker_engine.client()
    yield c
    c.close()


def test_engine_answers_and_docker_host_is_set(docker_engine: DockerEngine) -> None:
    assert os.environ["DOCKER_HOST"] == docker_engine.host
    assert docker_engine.client().ping()


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_busybox_image_architecture(client: docker.DockerClient, busybox_images: dict[str, str], arch: str) -> None:
    attrs = client.images.get(busybox_images[arch]).attrs
    assert attrs["Architecture"] == arch
    assert attrs["Os"] == "linux"
    assert attrs["Config"]["Cmd"] == ["sh"]
    assert not any(t.endswith(":latest") for t in attrs["RepoTags"])


def test_amd64_image_runs_natively(client: docker.DockerClient, busybox_images: dict[str, str]) -> None:
    assert run_output(client, busybox_images["amd64"], ["uname", "-m"]).strip() == "x86_64"


def test_arm64_image_would_run_emulated(
    docker_engine: DockerEngine, busybox_images: dict[str, str], qemu_aarch64: bool
) -> None:
    # Through the CLI on purpose: this is the exact command an operator would try.
    proc = subprocess.run(
        # --pull never: should the local image be missing or wrong, fail here rather than ask Docker Hub.
        [
            "docker",
            "run",
            "--rm",
            "--pull",
            "never",
            "--platform",
            "linux/arm64",
            busybox_images["arm64"],
            "uname",
            "-m",
        ],
        env={**os.environ, "DOCKER_HOST": docker_engine.host},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "aarch64"


def test_registry_holds_manifest_list(registry: Registry, multiarch_image: str) -> None:
    name, _, tag = multiarch_image.split("/", 1)[1].rpartition(":")
    req = urllib.request.Request(
        f"http://{registry.addr}/v2/{name}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.list.v2+json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        body = json.load(resp)
    platforms = {(m["platform"]["architecture"], m["platform"].get("variant")) for m in body["manifests"]}
    assert body["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert platforms == {("amd64", None), ("arm64", "v8")}


def test_multiarch_pull_selects_amd64(client: docker.DockerClient, multiarch_image: str) -> None:
    # Another test may have pulled it already; drop that copy so the pull below goes to the registry.
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(multiarch_image)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(multiarch_image)  # really absent locally: the pull below goes to the registry
    image = client.images.pull(multiarch_image, platform="linux/amd64")
    assert image.attrs["Architecture"] == "amd64"
    assert run_output(client, multiarch_image, ["uname", "-m"]).strip() == "x86_64"
