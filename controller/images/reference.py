"""Docker image references, split the way the engine resolves them."""

from __future__ import annotations

from dataclasses import dataclass

DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class ImageReference:
    registry: str  # docker.io, 127.0.0.1:5000, ghcr.io ...
    repository: str  # library/busybox
    reference: str  # tag or digest

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB

    @property
    def is_loopback(self) -> bool:
        if self.registry.startswith("["):  # [::1]:5000
            host = self.registry.split("]", 1)[0] + "]"
        else:
            host = self.registry.rsplit(":", 1)[0]
        return host in ("localhost", "[::1]") or host.startswith("127.")


def parse_reference(image: str) -> ImageReference:
    name, digest = ([*image.split("@", 1), ""])[:2]
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    # Like the engine: the first component is a registry only if it looks like a host.
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry in (DOCKER_HUB, "index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"  # docker.io/busybox is docker.io/library/busybox
    return ImageReference(registry, repository, digest or tag or "latest")


def uses_latest(image: str) -> bool:
    """A missing tag means :latest, which the agent always re-pulls (like Kubernetes)."""
    ref = parse_reference(image)
    return "@" not in image and ref.reference == "latest"
