"""Docker image references: whether the engine can pull one (the OCI distribution grammar), and
how it splits one into registry, repository and tag or digest.

The grammar is distribution/reference's (reference.go, regexp.go):

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] path-component ['/' path-component]*
    domain           := host [':' port-number]
    host             := domain-name | '[' IPv6 ']'
    domain-name      := domain-component ['.' domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := alpha-numeric [separator alpha-numeric]*
    alpha-numeric    := /[a-z0-9]+/
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex   (go-digest: sha256, sha384, sha512, lower-case hex)

with the engine's normalisation (ParseNormalizedNamed): the first component is a registry only when
a slash follows and it has a dot or a colon, is `localhost`, or has an upper-case letter; a name is
at most 255 characters; a 64-hex-digit name is an image id. Checked part by part, so the sentence
names the part that is wrong. """

from __future__ import annotations

import re
from dataclasses import dataclass

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = re.compile(rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*", re.ASCII)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?", re.ASCII)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_IMAGE_ID = re.compile(r"[a-f0-9]{64}", re.ASCII)
# The algorithms the engine can verify, with the length of their hex digests.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
NAME_MAX_LENGTH = 255
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


def _names_registry(first: str) -> bool:
    """The engine's rule for the first of several components: a registry when it looks like a host."""
    return "." in first or ":" in first or first == "localhost" or first != first.lower()


def parse_reference(image: str) -> ImageReference:
    """Splits a reference (checked or not) the way the engine resolves it."""
    name, digest = ([*image.split("@", 1), ""])[:2]
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and _names_registry(first):
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


def reference_problem(image: str) -> str | None:
    """None for a reference the grammar accepts, else what is wrong with it, as a clause."""
    if not image:
        return "the reference is empty"
    if any(c.isspace() for c in image):
        return "an image reference cannot contain spaces"
    name_and_tag, at, digest = image.partition("@")
    name, tag = name_and_tag, None
    head, colon, tail = name_and_tag.rpartition(":")
    if colon and "/" not in tail:  # after the last slash: a tag; before it: a registry's port
        name, tag = head, tail
    # Left to right, as the user reads it: the first wrong part is the one named.
    problem = _name_problem(name)
    if problem is None and tag is not None and not _TAG.fullmatch(tag):
        problem = f'tag {_quoted(tag)} is not 1 to 128 letters, digits, "_", "." or "-" (not starting with "." or "-")'
    if problem is None and at:
        problem = _digest_problem(digest)
    return problem


def _name_problem(name: str) -> str | None:
    if not name:
        return "the repository name is missing"
    if len(name) > NAME_MAX_LENGTH:
        return f"the name is longer than {NAME_MAX_LENGTH} characters"
    first, slash, rest = name.partition("/")
    if slash and _names_registry(first):
        if not _DOMAIN.fullmatch(first):
            return f"registry {_quoted(first)} is not a host name or [IPv6 address] with an optional :port"
        path = rest
    else:
        path = name
    if path != path.lower():
        return f"repository {_quoted(path)} must be lower-case"
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            shown = _quoted(component) if component else "an empty part"
            return (
                f"{shown} is not a repository name part (lower-case letters and digits, "
                'joined by ".", "_", "__" or dashes)'
            )
    if path == name and _IMAGE_ID.fullmatch(path):
        return "a 64-digit hexadecimal name is an image id, not a reference"
    return None


def _digest_problem(digest: str) -> str | None:
    algorithm, colon, hex_digits = digest.partition(":")
    expected = DIGEST_HEX_LENGTHS.get(algorithm)
    if not colon or expected is None:
        known = ", ".join(DIGEST_HEX_LENGTHS)
        return f"digest {_quoted(digest)} is not ALGORITHM:HEX with an algorithm of {known}"
    if len(hex_digits) != expected or not all(c in "0123456789abcdef" for c in hex_digits):
        return f"digest {_quoted(digest)} needs {expected} lower-case hexadecimal digits after {algorithm}:"
    return None


def _quoted(part: str) -> str:
    """A part of the reference as the sentence shows it: quoted, and cut when long."""
    return f'"{part}"' if len(part) <= 80 else f'"{part[:77]}..."'
