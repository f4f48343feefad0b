"""Cloud identity against loopback fakes of the three metadata services, replaying the
documented responses in tests/fixtures/metadata with each service's header rules.

Nothing here may reach a real metadata service: every endpoint is a 127.0.0.1 server started
by the test, and an autouse guard fails any connection to another address."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from agent.facts import cloud
from agent.facts.cloud import dmi
from agent.facts.cloud.model import CloudFacts
from agent.facts.sources import FactSources

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
METADATA = FIXTURES / "metadata"
HOSTS = FIXTURES / "hosts"
LOGGER = "dstack.agent.facts"

AWS_TOKEN = (METADATA / "aws/latest/api/token").read_text().strip()
AZURE_DOCUMENT = (METADATA / "azure/metadata/instance.json").read_bytes()

AWS_C6ID = CloudFacts(
    provider="aws",
    region="eu-west-1",
    zone="eu-west-1a",
    zone_id="euw1-az1",
    instance_type="c6id.large",
    instance_id="i-0b22a22eec53b9321",
    spot=False,
)
AZURE_D2S_V6 = CloudFacts(
    provider="azure",
    region="westeurope",
    zone="2",
    instance_type="Standard_D2s_v6",
    instance_id="4f7d2c9e-3b1a-4e8f-9c6d-2a5b8e1f0c37",
    spot=False,
    hyperv_generation="V2",
)
GCP_N2 = CloudFacts(
    provider="gcp",
    region="us-central1",
    zone="us-central1-a",
    instance_type="n2-standard-4",
    instance_id="4520031799277581759",
    spot=False,
)


# --- loopback fakes ----------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names: HTTP header names are case-insensitive


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    trickle_s: float = 0.0  # pause before each body byte: a service that answers, but slowly


App = Callable[[Seen], Reply]


class Fake:
    """A ThreadingHTTPServer on 127.0.0.1 whose answers come from `app`; keeps every request."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.requests: list[Seen] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_PUT(self) -> None:
                self._answer()

            def _answer(self) -> None:
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                fake.requests.append(seen)
                reply = fake.app(seen)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                try:
                    if not reply.trickle_s:
                        self.wfile.write(reply.body)
                    for byte in reply.body if reply.trickle_s else b"":
                        time.sleep(reply.trickle_s)
                        self.wfile.write(bytes([byte]))
                except OSError:
                    pass  # the client gave up, as it should

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        # A short poll interval: shutdown() waits for it, once per fake per test.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def text(body: str, **headers: str) -> Reply:
    return Reply(body=body.encode(), headers=headers)


def fixture_text(path: Path) -> Reply | None:
    # Fixture files end with a newline for the repository's sake; the services send none.
    return text(path.read_text().rstrip("\n")) if path.is_file() else None


def aws_app(overrides: dict[str, Reply] | None = None) -> App:
    """IMDSv2: PUT a token with a TTL header, then every GET must carry it (401 otherwise)."""
    overrides = overrides or {}

    def app(req: Seen) -> Reply:
        if req.path in overrides:
            return overrides[req.path]
        if req.method == "PUT" and req.path == "/latest/api/token":
            ttl = req.headers.get("x-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return Reply(400)
            return text(AWS_TOKEN)
        if req.method != "GET":
            return Reply(405)
        if req.headers.get("x-aws-ec2-metadata-token") != AWS_TOKEN:
            return Reply(401)
        return fixture_text(METADATA / "aws" / req.path.lstrip("/")) or Reply(404)

    return app


def azure_app(document: bytes = AZURE_DOCUMENT) -> App:
    """Azure IMDS: 400 without `Metadata: true`, and for a request that came through a proxy."""

    def app(req: Seen) -> Reply:
        if req.headers.get("metadata") != "true" or "x-forwarded-for" in req.headers:
            return Reply(400, b'{"error": "Bad request. Required metadata header not specified"}')
        url = urlsplit(req.path)
        if url.path != "/metadata/instance" or "api-version=" not in url.query:
            return Reply(400, b'{"error": "Bad request. api-version was not specified in the request"}')
        return Reply(body=document, headers={"Content-Type": "application/json; charset=utf-8"})

    return app


def gcp_app(overrides: dict[str, Reply] | None = None) -> App:
    """GCP: 403 without `Metadata-Flavor: Google`; every answer carries that header back."""
    overrides = overrides or {}

    def app(req: Seen) -> Reply:
        if req.headers.get("metadata-flavor") != "Google":
            return Reply(403, b"Missing Metadata-Flavor:Google header.")
        reply = overrides.get(req.path) or fixture_text(METADATA / "gcp" / req.path.lstrip("/")) or Reply(404)
        return replace(reply, headers={"Metadata-Flavor": "Google", **reply.headers})

    return app


@dataclass
class Fakes:
    aws: Fake
    azure: Fake
    gcp: Fake

    def sources(self, sysfs: Path, timeout_s: float = 1.0) -> FactSources:
        return FactSources(
            sysfs=sysfs,
            aws_endpoint=self.aws.url,
            azure_endpoint=self.azure.url,
            gcp_endpoint=self.gcp.url,
            metadata_timeout_s=timeout_s,
        )

    def asked(self) -> dict[str, int]:
        return {"aws": len(self.aws.requests), "azure": len(self.azure.requests), "gcp": len(self.gcp.requests)}


@pytest.fixture
def serve() -> Iterator[Callable[[App], Fake]]:
    started: list[Fake] = []

    def start(app: App) -> Fake:
        started.append(Fake(app))
        return started[-1]

    yield start
    for fake in started:
        fake.close()


@pytest.fixture
def fakes(serve: Callable[[App], Fake]) -> Fakes:
    return Fakes(aws=serve(aws_app()), azure=serve(azure_app()), gcp=serve(gcp_app()))


@pytest.fixture
def silent() -> Iterator[str]:
    """An endpoint that accepts connections (the kernel's backlog does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test on any connection that is not to 127.0.0.1 (a fixture tree naming a cloud
    with an endpoint left at its default would otherwise ask the real link-local service)."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        if not (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            pytest.fail(f"connection to {address!r}: only 127.0.0.1 is allowed in these tests")
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def dmi_sys(tmp_path: Path, **fields: str) -> Path:
    base = tmp_path / "sys" / "class" / "dmi" / "id"
    base.mkdir(parents=True)
    for name, value in fields.items():
        (base / name).write_text(value + "\n")
    return tmp_path / "sys"


# --- the three clouds, as found by DMI ----------------------------------------------------------


def test_aws_uses_an_imdsv2_token_and_asks_only_aws(fakes: Fakes, caplog: pytest.LogCaptureFixture) -> None:
    assert cloud.detect(fakes.sources(HOSTS / "aws-c6id" / "sys")) == AWS_C6ID
    first, *gets = fakes.aws.requests
    assert (first.method, first.path) == ("PUT", "/latest/api/token")
    assert first.headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    assert gets and all(r.method == "GET" for r in gets)
    assert all(r.headers.get("x-aws-ec2-metadata-token") == AWS_TOKEN for r in gets)
    assert fakes.asked() == {"aws": 7, "azure": 0, "gcp": 0}
    assert warnings(caplog) == []


def test_aws_fake_refuses_imdsv1(fakes: Fakes) -> None:
    # What the token in the test above is for: without it the fake answers as IMDSv2 does.
    reply = aws_app()(Seen("GET", "/latest/meta-data/instance-type", {}))
    assert reply.status == 401


def test_graviton_tree_is_aws_too(fakes: Fakes) -> None:
    facts = cloud.detect(fakes.sources(HOSTS / "graviton3" / "sys"))
    assert facts is not None
    assert facts.provider == "aws"
    assert fakes.asked() == {"aws": 7, "azure": 0, "gcp": 0}


def test_azure_sends_metadata_header_and_asks_only_azure(fakes: Fakes, caplog: pytest.LogCaptureFixture) -> None:
    assert cloud.detect(fakes.sources(HOSTS / "azure-d2s-v6" / "sys")) == AZURE_D2S_V6
    (only,) = fakes.azure.requests
    assert only.path == "/metadata/instance?api-version=2021-02-01"
    assert only.headers["metadata"] == "true"
    assert fakes.asked() == {"aws": 0, "azure": 1, "gcp": 0}
    assert warnings(caplog) == []


def test_azure_fake_refuses_requests_without_metadata_header() -> None:
    assert azure_app()(Seen("GET", "/metadata/instance?api-version=2021-02-01", {})).status == 400


def test_gcp_sends_metadata_flavor_and_asks_only_gcp(
    fakes: Fakes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sysfs = dmi_sys(tmp_path, sys_vendor="Google", product_name="Google Compute Engine", bios_vendor="Google")
    assert cloud.detect(fakes.sources(sysfs)) == GCP_N2
    assert all(r.headers.get("metadata-flavor") == "Google" for r in fakes.gcp.requests)
    assert fakes.gcp.paths()[:2] == ["/computeMetadata/v1/instance/zone", "/computeMetadata/v1/instance/machine-type"]
    assert fakes.asked()["aws"] == fakes.asked()["azure"] == 0
    assert warnings(caplog) == []


def test_gcp_fake_refuses_requests_without_flavor() -> None:
    assert gcp_app()(Seen("GET", "/computeMetadata/v1/instance/zone", {})).status == 403


# --- on-prem and mode off: no network at all ----------------------------------------------------


@pytest.mark.parametrize("machine", ["onprem-2gpu", "qemu-binfmt"])
def test_on_prem_opens_no_socket(machine: str, fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            pytest.fail(f"{name} called on an on-prem host")

        return call

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    assert cloud.detect(fakes.sources(HOSTS / machine / "sys")) is None
    assert calls == []
    assert fakes.asked() == {"aws": 0, "azure": 0, "gcp": 0}


def test_mode_off_does_no_io(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dmi(sysfs: Path) -> str | None:
        raise AssertionError("mode off must not even read DMI")

    monkeypatch.setattr(dmi, "identify", no_dmi)
    assert cloud.detect(fakes.sources(HOSTS / "aws-c6id" / "sys"), mode="off") is None
    assert fakes.asked() == {"aws": 0, "azure": 0, "gcp": 0}


# --- forced modes --------------------------------------------------------------------------------


def test_forced_aws_on_a_host_without_cloud_dmi(fakes: Fakes) -> None:
    assert cloud.detect(fakes.sources(HOSTS / "onprem-2gpu" / "sys"), mode="aws") == AWS_C6ID
    assert fakes.asked()["azure"] == fakes.asked()["gcp"] == 0


def test_forced_mode_overrides_dmi(fakes: Fakes) -> None:
    assert cloud.detect(fakes.sources(HOSTS / "aws-c6id" / "sys"), mode="gcp") == GCP_N2
    assert fakes.asked()["aws"] == fakes.asked()["azure"] == 0


def test_forced_azure_without_efi_is_generation_1(fakes: Fakes, tmp_path: Path) -> None:
    facts = cloud.detect(fakes.sources(tmp_path / "sys"), mode="azure")
    assert facts == replace(AZURE_D2S_V6, hyperv_generation="V1")


def test_unknown_mode_is_an_error(fakes: Fakes) -> None:
    with pytest.raises(ValueError, match="oci"):
        cloud.detect(fakes.sources(HOSTS / "aws-c6id" / "sys"), mode="oci")


# --- values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("life_cycle", "spot"), [("spot", True), ("on-demand", False), ("scheduled", False)])
def test_aws_life_cycle(serve: Callable[[App], Fake], life_cycle: str, spot: bool, tmp_path: Path) -> None:
    aws = serve(aws_app({"/latest/meta-data/instance-life-cycle": text(life_cycle)}))
    facts = cloud.detect(FactSources(sysfs=tmp_path, aws_endpoint=aws.url), mode="aws")
    assert facts == replace(AWS_C6ID, spot=spot)


def test_aws_keys_an_instance_may_lack_are_null_without_warning(
    serve: Callable[[App], Fake], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = {"/latest/meta-data/placement/availability-zone-id": Reply(404)}
    missing["/latest/meta-data/instance-life-cycle"] = Reply(404)
    aws = serve(aws_app(missing))
    facts = cloud.detect(FactSources(sysfs=tmp_path, aws_endpoint=aws.url), mode="aws")
    assert facts == replace(AWS_C6ID, zone_id=None, spot=None)
    assert warnings(caplog) == []


@pytest.mark.parametrize(
    ("priority", "spot"), [("Spot", True), ("Low", True), ("Regular", False), ("", False), ("Future", None)]
)
def test_azure_priority(serve: Callable[[App], Fake], priority: str, spot: bool | None) -> None:
    document = json.loads(AZURE_DOCUMENT)
    document["compute"]["priority"] = priority
    azure = serve(azure_app(json.dumps(document).encode()))
    facts = cloud.detect(FactSources(sysfs=HOSTS / "azure-d2s-v6" / "sys", azure_endpoint=azure.url), mode="azure")
    assert facts == replace(AZURE_D2S_V6, spot=spot)


def test_azure_vm_outside_any_zone(serve: Callable[[App], Fake]) -> None:
    document = json.loads(AZURE_DOCUMENT)
    document["compute"]["zone"] = ""
    azure = serve(azure_app(json.dumps(document).encode()))
    facts = cloud.detect(FactSources(sysfs=HOSTS / "azure-d2s-v6" / "sys", azure_endpoint=azure.url), mode="azure")
    assert facts == replace(AZURE_D2S_V6, zone=None)


@pytest.mark.parametrize(
    ("preemptible", "model", "spot"),
    [("TRUE", None, True), ("FALSE", "SPOT", True), ("FALSE", "STANDARD", False), ("FALSE", None, False)],
)
def test_gcp_spot(
    serve: Callable[[App], Fake], tmp_path: Path, preemptible: str, model: str | None, spot: bool
) -> None:
    base = "/computeMetadata/v1/instance/scheduling/"
    overrides = {base + "preemptible": text(preemptible)}
    overrides[base + "provisioning-model"] = text(model) if model else Reply(404)  # older servers lack it
    gcp = serve(gcp_app(overrides))
    facts = cloud.detect(FactSources(sysfs=tmp_path, gcp_endpoint=gcp.url), mode="gcp")
    assert facts == replace(GCP_N2, spot=spot)


def test_endpoints_from_the_environment(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSTACK_AGENT_SYSFS", str(HOSTS / "aws-c6id" / "sys"))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fakes.aws.url + "/")  # SDKs accept the slash
    monkeypatch.setenv("DSTACK_AGENT_AZURE_IMDS_ENDPOINT", fakes.azure.url)
    monkeypatch.setenv("DSTACK_AGENT_GCP_METADATA_ENDPOINT", fakes.gcp.url)
    assert cloud.detect(FactSources.from_env()) == AWS_C6ID


def test_proxy_environment_is_ignored(
    fakes: Fakes, serve: Callable[[App], Fake], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(lambda req: Reply(502))
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert cloud.detect(fakes.sources(HOSTS / "azure-d2s-v6" / "sys")) == AZURE_D2S_V6
    assert proxy.requests == []


# --- failures: bounded in time, one warning, provider kept ----------------------------------------


@pytest.mark.parametrize("provider", ["aws", "azure", "gcp"])
def test_service_that_never_answers_costs_one_timeout(
    provider: str, silent: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sources = FactSources(
        sysfs=tmp_path, aws_endpoint=silent, azure_endpoint=silent, gcp_endpoint=silent, metadata_timeout_s=1.0
    )
    started = time.monotonic()
    facts = cloud.detect(sources, mode=provider)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    expected = CloudFacts(provider=provider, hyperv_generation="V1" if provider == "azure" else None)
    assert facts == expected
    (warning,) = warnings(caplog)
    assert provider in warning
    assert silent in warning
    assert "no answer within 1 s" in warning


def test_service_that_answers_too_slowly_is_cut_off_by_the_budget(
    serve: Callable[[App], Fake], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Each byte arrives within the per-request timeout, so only the detection's budget stops it.
    slow = Reply(body=b"x" * 200, trickle_s=0.05)
    aws = serve(aws_app({"/latest/meta-data/placement/region": slow}))
    started = time.monotonic()
    facts = cloud.detect(FactSources(sysfs=tmp_path, aws_endpoint=aws.url, metadata_timeout_s=0.5), mode="aws")
    assert time.monotonic() - started < 2.5
    assert facts == CloudFacts(provider="aws")
    (warning,) = warnings(caplog)
    assert "budget" in warning


@pytest.mark.parametrize(
    ("overrides", "stops_at", "why"),
    [
        ({"/latest/api/token": Reply(403)}, "/latest/api/token", "HTTP 403"),
        # The token is not accepted (a hop limit of 1 seen from a container answers like this).
        ({"/latest/meta-data/placement/region": Reply(401)}, "/latest/meta-data/placement/region", "HTTP 401"),
        ({"/latest/meta-data/instance-type": Reply(500)}, "/latest/meta-data/instance-type", "HTTP 500"),
        (
            {"/latest/meta-data/placement/region": text("<html><body>Service Unavailable</body></html>")},
            "/latest/meta-data/placement/region",
            "unexpected answer",
        ),
        ({"/latest/api/token": text("")}, "/latest/api/token", "empty token"),
        ({"/latest/meta-data/instance-id": Reply(body=b"\xff\xfe")}, "/latest/meta-data/instance-id", "UTF-8"),
    ],
)
def test_aws_failure_stops_at_the_first_error(
    serve: Callable[[App], Fake],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    overrides: dict[str, Reply],
    stops_at: str,
    why: str,
) -> None:
    aws = serve(aws_app(overrides))
    facts = cloud.detect(FactSources(sysfs=tmp_path, aws_endpoint=aws.url), mode="aws")
    assert facts == CloudFacts(provider="aws")
    assert aws.paths()[-1] == stops_at
    (warning,) = warnings(caplog)
    assert warning.startswith("aws metadata service at " + aws.url)
    assert aws.url + stops_at in warning
    assert why in warning
    assert "\n" not in warning


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (b"<html>not json", "not JSON"),
        (b"null", '"compute"'),
        (b'{"compute": null, "network": {}}', '"compute"'),
        (b'{"compute": {"location": null, "vmSize": null, "vmId": null}}', "unexpected answer"),
        (b'{"compute": {"location": "west europe!", "vmSize": "Standard_D2s_v6", "vmId": "x"}}', "unexpected"),
    ],
)
def test_azure_garbage(
    serve: Callable[[App], Fake], caplog: pytest.LogCaptureFixture, document: bytes, why: str
) -> None:
    azure = serve(azure_app(document))
    facts = cloud.detect(FactSources(sysfs=HOSTS / "azure-d2s-v6" / "sys", azure_endpoint=azure.url), mode="azure")
    # The generation is read from local firmware, so it survives a broken IMDS.
    assert facts == CloudFacts(provider="azure", hyperv_generation="V2")
    (warning,) = warnings(caplog)
    assert warning.startswith("azure metadata service at " + azure.url)
    assert why in warning


def test_azure_http_error(serve: Callable[[App], Fake], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    azure = serve(lambda req: Reply(503, b"busy"))
    assert cloud.detect(FactSources(sysfs=tmp_path, azure_endpoint=azure.url), mode="azure") == CloudFacts(
        provider="azure", hyperv_generation="V1"
    )
    (warning,) = warnings(caplog)
    assert "HTTP 503" in warning


@pytest.mark.parametrize(
    ("path", "reply", "why"),
    [
        ("zone", text("<!doctype html><title>Sign in</title>"), "unexpected"),
        ("zone", text("projects/1/zones/uscentral"), "unexpected zone"),
        ("scheduling/preemptible", text("maybe"), "unexpected answer"),
        ("machine-type", Reply(500), "HTTP 500"),
    ],
)
def test_gcp_garbage(
    serve: Callable[[App], Fake], tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str, reply: Reply, why: str
) -> None:
    gcp = serve(gcp_app({"/computeMetadata/v1/instance/" + path: reply}))
    assert cloud.detect(FactSources(sysfs=tmp_path, gcp_endpoint=gcp.url), mode="gcp") == CloudFacts(provider="gcp")
    (warning,) = warnings(caplog)
    assert warning.startswith("gcp metadata service at " + gcp.url)
    assert why in warning


def test_gcp_answer_without_flavor_header_is_not_the_metadata_server(
    serve: Callable[[App], Fake], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A captive portal or another web server answering in place of the metadata server.
    portal = serve(lambda req: text("projects/1/zones/us-central1-a"))
    assert cloud.detect(FactSources(sysfs=tmp_path, gcp_endpoint=portal.url), mode="gcp") == CloudFacts(provider="gcp")
    (warning,) = warnings(caplog)
    assert "Metadata-Flavor" in warning


def test_redirects_are_not_followed(
    serve: Callable[[App], Fake], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = serve(lambda req: text("eu-west-1"))
    redirect = Reply(302, headers={"Location": elsewhere.url + "/steal"})
    aws = serve(aws_app({"/latest/meta-data/placement/region": redirect}))
    assert cloud.detect(FactSources(sysfs=tmp_path, aws_endpoint=aws.url), mode="aws") == CloudFacts(provider="aws")
    assert elsewhere.requests == []
    (warning,) = warnings(caplog)
    assert "HTTP 302" in warning


def test_non_http_endpoint_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "latest").mkdir()
    sources = FactSources(sysfs=tmp_path, aws_endpoint=tmp_path.as_uri())
    assert cloud.detect(sources, mode="aws") == CloudFacts(provider="aws")
    (warning,) = warnings(caplog)
    assert "http://" in warning


def test_connection_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sources = FactSources(sysfs=tmp_path, gcp_endpoint=f"http://127.0.0.1:{port}")
    assert cloud.detect(sources, mode="gcp") == CloudFacts(provider="gcp")
    (warning,) = warnings(caplog)
    assert "refused" in warning.lower()
