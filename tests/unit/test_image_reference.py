"""Image references split the way the Docker engine resolves them."""

from __future__ import annotations

import pytest
from dstack_hybrid.shared.image_reference import DOCKER_HUB, ImageReference, parse_reference, uses_latest

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("busybox", ("docker.io", "library/busybox", "latest")),
        ("busybox:1.36", ("docker.io", "library/busybox", "1.36")),
        ("library/busybox:1.36", ("docker.io", "library/busybox", "1.36")),
        ("myorg/app", ("docker.io", "myorg/app", "latest")),
        ("myorg/team/app:v2", ("docker.io", "myorg/team/app", "v2")),
        (f"busybox@{DIGEST}", ("docker.io", "library/busybox", DIGEST)),
        (f"busybox:1.36@{DIGEST}", ("docker.io", "library/busybox", DIGEST)),  # the digest wins
        ("ghcr.io/org/app:1.0", ("ghcr.io", "org/app", "1.0")),
        ("ghcr.io/org/app", ("ghcr.io", "org/app", "latest")),
        ("registry.example.com:5000/app:tag", ("registry.example.com:5000", "app", "tag")),
        ("127.0.0.1:5000/repo:tag", ("127.0.0.1:5000", "repo", "tag")),
        ("127.0.0.1:5000/repo", ("127.0.0.1:5000", "repo", "latest")),
        (f"127.0.0.1:5000/a/b@{DIGEST}", ("127.0.0.1:5000", "a/b", DIGEST)),
        ("localhost/app:dev", ("localhost", "app", "dev")),
        ("localhost:5000/app", ("localhost:5000", "app", "latest")),
        ("myhost:5000/app:1", ("myhost:5000", "app", "1")),  # a port makes it a registry
        ("myhost/app:1", ("docker.io", "myhost/app", "1")),  # no dot, no port: a Hub namespace
    ],
)
def test_parse_reference(image: str, expected: tuple[str, str, str]) -> None:
    assert parse_reference(image) == ImageReference(*expected)


def test_docker_hub_and_loopback_flags() -> None:
    assert parse_reference("busybox").is_docker_hub
    assert not parse_reference("ghcr.io/a/b").is_docker_hub
    assert DOCKER_HUB == "docker.io"
    for image in ("127.0.0.1:5000/x", "127.0.0.53/x", "localhost:5000/x", "localhost/x"):
        assert parse_reference(image).is_loopback, image
    for image in ("busybox", "ghcr.io/a/b", "10.0.0.1:5000/x", "registry.local:5000/x"):
        assert not parse_reference(image).is_loopback, image


def test_explicit_docker_io_short_name_gets_library_prefix() -> None:
    assert parse_reference("docker.io/busybox:1.36") == ImageReference("docker.io", "library/busybox", "1.36")


def test_ipv6_loopback_registry_with_port_is_loopback() -> None:
    ref = parse_reference("[::1]:5000/repo:tag")
    assert ref.registry == "[::1]:5000"
    assert ref.is_loopback


@pytest.mark.parametrize(
    ("image", "latest"),
    [
        ("busybox", True),
        ("busybox:latest", True),
        ("127.0.0.1:5000/app", True),
        ("busybox:1.36", False),
        (f"busybox@{DIGEST}", False),
        ("127.0.0.1:5000/app:v1", False),
    ],
)
def test_uses_latest(image: str, latest: bool) -> None:
    assert uses_latest(image) is latest


def test_an_upper_case_first_component_is_a_registry_as_the_engine_reads_it() -> None:
    # The grammar and the splitter share one rule: MyReg/app is pulled from host MyReg, not Docker Hub.
    assert parse_reference("MyReg/app:1") == ImageReference("MyReg", "app", "1")
    assert parse_reference("myreg/app:1") == ImageReference(DOCKER_HUB, "myreg/app", "1")
