"""Session fixtures for tests that need a real Docker engine, images, a registry or qemu.

All fixtures are lazy: unit tests that use none of them start nothing.
Helpers live in tests/support so tests can import them; only fixtures live here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import docker
import pytest

from tests.support.binfmt import ensure_qemu_aarch64
from tests.support.dockerd import DockerEngine, ensure_docker
from tests.support.images import build_busybox_images, push_multiarch
from tests.support.registry import Registry, start_registry


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """An answering engine; DOCKER_HOST points at it for the whole session (and is restored after)."""
    engine = ensure_docker()
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = engine.host
    try:
        yield engine
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
        engine.stop()  # a no-op unless this session started the daemon


@pytest.fixture(scope="session")
def busybox_images(docker_engine: DockerEngine) -> dict[str, str]:
    """arch -> local tag: {"amd64": "dstack-test/busybox:amd64", "arm64": "dstack-test/busybox:arm64"}."""
    return build_busybox_images(docker_engine)


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """A docker-registry on 127.0.0.1 with a free port; `registry.addr` is "127.0.0.1:PORT"."""
    reg = start_registry()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def multiarch_image(docker_engine: DockerEngine, busybox_images: dict[str, str], registry: Registry) -> Iterator[str]:
    """Reference of a manifest list (amd64 + arm64/v8) in the loopback registry, absent locally."""
    ref = push_multiarch(docker_engine, registry.addr)
    yield ref
    # Tests pull it; the registry goes away with the session, so drop the dangling local tag too.
    client = docker_engine.client()
    with contextlib.suppress(docker.errors.APIError):
        client.images.remove(ref)
    client.close()


@pytest.fixture(scope="session")
def qemu_aarch64() -> bool:
    """qemu-aarch64 emulation is enabled; fails (never skips) when it cannot be, because refusal
    tests are only meaningful when the emulated run was possible."""
    if not ensure_qemu_aarch64():
        pytest.fail(
            "cannot enable the qemu-aarch64 binfmt handler: run packaging/dev-setup.sh --tests "
            "(qemu-user-static, binfmt-support) as root and make sure binfmt_misc can be mounted",
            pytrace=False,
        )
    return True


# --- moto_server (AWS backend tests) -------------------------------------------------------------
# Appended block: moto's AWS API on 127.0.0.1 for the whole session, started on first use. While it
# runs, the environment holds fake credentials and no real profile (tests/support/moto_server.py).
# Imported inside the fixture: sessions that do not use it load neither boto3 nor moto.

import typing  # noqa: E402

if typing.TYPE_CHECKING:
    from tests.support.moto_server import MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A ThreadedMotoServer on loopback: `.url`, `.reset()`, `.client(service, region)`, `.register_image(...)`."""
    from tests.support.moto_server import moto_server as start_moto_server

    with start_moto_server() as server:
        yield server


# --- end moto_server ------------------------------------------------------------------------------
