"""Registry platform lookups against a fake OCI registry on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.images.platforms import LookupSettings, PlatformLookup, native_arches

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

Response = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeRegistry:
    port: int = 0
    routes: dict[str, Callable[[Seen], Response]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def json(self, path: str, body: object, content_type: str = "application/json") -> None:
        self.routes[path] = lambda _seen: (200, {"Content-Type": content_type}, json.dumps(body).encode())

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def index(content_type: str = OCI_INDEX) -> dict[str, object]:
    return {
        "schemaVersion": 2,
        "mediaType": content_type,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + "1" * 64,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + "2" * 64,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + "3" * 64,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
        ],
    }


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            seen = Seen("GET", url.path, dict(urllib.parse.parse_qsl(url.query)), dict(self.headers.items()))
            fake.requests.append(seen)
            route = fake.routes.get(url.path)
            status, headers, body = route(seen) if route else (404, {"Content-Type": "application/json"}, b"{}")
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def lookup(**kw: object) -> PlatformLookup:
    return PlatformLookup(LookupSettings(timeout_s=2.0, **kw))  # type: ignore[arg-type]


# ---------------------------------------------------------------- manifests


@pytest.mark.parametrize("content_type", [OCI_INDEX, DOCKER_LIST])
def test_index_lists_platforms_and_skips_attestations(registry: FakeRegistry, content_type: str) -> None:
    registry.json("/v2/multi/manifests/v1", index(content_type), content_type)
    found = lookup().platforms(f"{registry.addr}/multi:v1")
    assert found == frozenset({"linux/amd64", "linux/arm64"})
    assert native_arches(found) == frozenset({"amd64", "arm64"})
    [req] = registry.requests
    for media_type in (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST):
        assert media_type in req.headers["Accept"]


def test_index_recognised_by_body_when_content_type_is_generic(registry: FakeRegistry) -> None:
    body = index()
    del body["mediaType"]
    registry.json("/v2/multi/manifests/v1", body, "application/octet-stream")
    assert lookup().platforms(f"{registry.addr}/multi:v1") == frozenset({"linux/amd64", "linux/arm64"})


def test_single_manifest_reads_the_config_blob(registry: FakeRegistry) -> None:
    config_digest = "sha256:" + "c" * 64
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest},
        "layers": [],
    }
    registry.json("/v2/team/single/manifests/arm", manifest, DOCKER_MANIFEST)
    registry.json(f"/v2/team/single/blobs/{config_digest}", {"os": "linux", "architecture": "arm64", "rootfs": {}})
    assert lookup().platforms(f"{registry.addr}/team/single:arm") == frozenset({"linux/arm64"})
    assert registry.paths() == ["/v2/team/single/manifests/arm", f"/v2/team/single/blobs/{config_digest}"]


def test_digest_reference_is_asked_by_digest(registry: FakeRegistry) -> None:
    digest = "sha256:" + "d" * 64
    registry.json(f"/v2/multi/manifests/{digest}", index())
    assert lookup().platforms(f"{registry.addr}/multi@{digest}") == frozenset({"linux/amd64", "linux/arm64"})


def test_bearer_challenge_fetches_an_anonymous_token(registry: FakeRegistry) -> None:
    challenge = f'Bearer realm="http://{registry.addr}/token",service="x"'

    def manifest(seen: Seen) -> Response:
        if seen.headers.get("Authorization") != "Bearer tok-123":
            return 401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"}, b'{"errors": []}'
        return 200, {"Content-Type": OCI_INDEX}, json.dumps(index()).encode()

    registry.routes["/v2/private/app/manifests/v1"] = manifest
    registry.json("/token", {"token": "tok-123"})
    found = lookup().platforms(f"{registry.addr}/private/app:v1")
    assert found == frozenset({"linux/amd64", "linux/arm64"})
    assert registry.paths() == ["/v2/private/app/manifests/v1", "/token", "/v2/private/app/manifests/v1"]
    token_req = registry.requests[1]
    assert token_req.query == {"service": "x", "scope": "repository:private/app:pull"}
    assert "Authorization" not in registry.requests[0].headers


def test_bearer_token_as_access_token_and_challenge_scope_kept(registry: FakeRegistry) -> None:
    challenge = f'Bearer realm="http://{registry.addr}/auth",service="reg",scope="repository:other:pull"'

    def manifest(seen: Seen) -> Response:
        if seen.headers.get("Authorization") != "Bearer at-9":
            return 401, {"WWW-Authenticate": challenge}, b"{}"
        return 200, {"Content-Type": DOCKER_LIST}, json.dumps(index(DOCKER_LIST)).encode()

    registry.routes["/v2/app/manifests/latest"] = manifest
    registry.json("/auth", {"access_token": "at-9"})
    assert lookup().platforms(f"{registry.addr}/app") == frozenset({"linux/amd64", "linux/arm64"})
    assert registry.requests[1].query == {"service": "reg", "scope": "repository:other:pull"}


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (404, {}),
        (500, {}),
        (401, {}),  # no challenge
        (401, {"WWW-Authenticate": 'Basic realm="x"'}),
        (403, {"WWW-Authenticate": 'Bearer realm="http://127.0.0.1:1/token"'}),  # only 401 triggers auth
    ],
)
def test_registry_errors_give_none(registry: FakeRegistry, status: int, headers: dict[str, str]) -> None:
    registry.routes["/v2/app/manifests/v1"] = lambda _s: (status, headers, b"{}")
    assert lookup().platforms(f"{registry.addr}/app:v1") is None
    assert registry.paths() == ["/v2/app/manifests/v1"]


@pytest.mark.parametrize("body", [b"not json", b'{"schemaVersion": 2}', b'{"config": {}}'])
def test_unusable_manifest_gives_none(registry: FakeRegistry, body: bytes) -> None:
    registry.routes["/v2/app/manifests/v1"] = lambda _s: (200, {"Content-Type": OCI_MANIFEST}, body)
    assert lookup().platforms(f"{registry.addr}/app:v1") is None


@pytest.mark.parametrize("body", [b"null", b"[]"])
def test_non_object_manifest_gives_none(registry: FakeRegistry, body: bytes) -> None:
    registry.routes["/v2/app/manifests/v1"] = lambda _s: (200, {"Content-Type": OCI_MANIFEST}, body)
    assert lookup().platforms(f"{registry.addr}/app:v1") is None


# ---------------------------------------------------------------- settings and cache


def test_disabled_lookup_makes_no_request(registry: FakeRegistry) -> None:
    registry.json("/v2/multi/manifests/v1", index())
    assert lookup(enabled=False).platforms(f"{registry.addr}/multi:v1") is None
    assert registry.requests == []


def test_results_are_cached_for_ttl(registry: FakeRegistry) -> None:
    registry.json("/v2/multi/manifests/v1", index())
    lk = lookup(ttl_s=600.0)
    image = f"{registry.addr}/multi:v1"
    assert lk.platforms(image, now=1000.0) == frozenset({"linux/amd64", "linux/arm64"})
    assert lk.platforms(image, now=1599.0) == frozenset({"linux/amd64", "linux/arm64"})
    assert len(registry.requests) == 1
    assert lk.platforms(image, now=1600.0) == frozenset({"linux/amd64", "linux/arm64"})
    assert len(registry.requests) == 2


def test_failures_are_cached_for_negative_ttl(registry: FakeRegistry) -> None:
    registry.routes["/v2/app/manifests/v1"] = lambda _s: (500, {}, b"oops")
    lk = lookup(negative_ttl_s=30.0, ttl_s=600.0)
    image = f"{registry.addr}/app:v1"
    assert lk.platforms(image, now=1000.0) is None
    assert lk.platforms(image, now=1029.0) is None
    assert len(registry.requests) == 1
    # After the negative TTL it asks again, and a recovered registry is believed.
    registry.json("/v2/app/manifests/v1", index())
    assert lk.platforms(image, now=1030.0) == frozenset({"linux/amd64", "linux/arm64"})
    assert len(registry.requests) == 2
    assert lk.platforms(image, now=1100.0) == frozenset({"linux/amd64", "linux/arm64"})
    assert len(registry.requests) == 2


def test_unreachable_registry_gives_none(registry: FakeRegistry) -> None:
    # A port nothing listens on: refused at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    assert lookup().platforms(f"127.0.0.1:{dead}/app:v1") is None


def test_cache_is_per_image(registry: FakeRegistry) -> None:
    registry.json("/v2/a/manifests/v1", index())
    registry.routes["/v2/b/manifests/v1"] = lambda _s: (404, {}, b"{}")
    lk = lookup()
    assert lk.platforms(f"{registry.addr}/a:v1", now=1.0) is not None
    assert lk.platforms(f"{registry.addr}/b:v1", now=1.0) is None
    assert registry.paths() == ["/v2/a/manifests/v1", "/v2/b/manifests/v1"]


@pytest.mark.parametrize(
    ("image", "path"),
    [
        ("busybox:1.36", "/v2/library/busybox/manifests/1.36"),
        ("busybox", "/v2/library/busybox/manifests/latest"),
        ("myorg/app:v2", "/v2/myorg/app/manifests/v2"),
    ],
)
def test_docker_hub_mirror_is_used_for_unqualified_names(registry: FakeRegistry, image: str, path: str) -> None:
    registry.json(path, index())
    lk = lookup(docker_hub_mirror=f"http://{registry.addr}/")
    assert lk.platforms(image) == frozenset({"linux/amd64", "linux/arm64"})
    assert registry.paths() == [path]


# ---------------------------------------------------------------- native_arches


@pytest.mark.parametrize(
    ("platforms", "arches"),
    [
        (frozenset(), frozenset()),
        (frozenset({"linux/amd64"}), frozenset({"amd64"})),
        (frozenset({"linux/amd64", "linux/arm64"}), frozenset({"amd64", "arm64"})),
        (frozenset({"linux/arm64/v8"}), frozenset({"arm64"})),
        (frozenset({"windows/amd64", "linux/arm64"}), frozenset({"arm64"})),
        (frozenset({"windows/amd64"}), frozenset()),
    ],
)
def test_native_arches(platforms: frozenset[str], arches: frozenset[str]) -> None:
    assert native_arches(platforms) == arches
