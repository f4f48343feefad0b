"""dstackctl's SSH-like trust in the controller's CA, against real TLS servers on loopback: a CA file
given outright, a pinned fingerprint, or the CA seen on first contact remembered in
~/.dstack/known_controllers.json and refused when it changes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN

from controller.cli import trust
from controller.cli.errors import CommandError, UsageError
from controller.cli.trust import controller_ca, known_controllers_path
from controller.pki.ca import CertificateAuthority, issue_server_certificate, load_or_create_ca

TIMEOUT_S = 5.0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return load_or_create_ca(tmp_path / "ca")[0]


@pytest.fixture
def other_ca(tmp_path: Path) -> CertificateAuthority:
    return load_or_create_ca(tmp_path / "other-ca", common_name="a replaced CA")[0]


class Servers:
    """gRPC servers on loopback: TLS presenting `cert + CA` like the controller, a leaf alone, or plaintext."""

    def __init__(self) -> None:
        self.servers: dict[str, grpc.Server] = {}

    def start(self, ca: CertificateAuthority | None, *, with_ca: bool = True, port: int = 0) -> str:
        server = grpc.server(ThreadPoolExecutor(max_workers=2))
        if ca is None:
            bound = server.add_insecure_port(f"127.0.0.1:{port}")
        else:
            cert, key = issue_server_certificate(ca, [CONTROLLER_SAN, "localhost"], ["127.0.0.1"])
            chain = cert + ca.cert_pem if with_ca else cert
            bound = server.add_secure_port(f"127.0.0.1:{port}", grpc.ssl_server_credentials([(key, chain)]))
        if not bound:
            raise OSError(f"cannot listen on 127.0.0.1:{port}")
        server.start()
        address = f"127.0.0.1:{bound}"
        self.servers[address] = server
        return address

    __call__ = start

    def stop(self, address: str) -> None:
        self.servers.pop(address).stop(None).wait(TIMEOUT_S)

    def stop_all(self) -> None:
        for address in list(self.servers):
            self.stop(address)


@pytest.fixture
def serve() -> Iterator[Servers]:
    servers = Servers()
    yield servers
    servers.stop_all()


def known() -> dict[str, str]:
    return json.loads(known_controllers_path().read_text())


def test_known_controllers_lives_under_home(home: Path) -> None:
    assert known_controllers_path() == home / ".dstack" / "known_controllers.json"


def test_first_contact_trusts_and_remembers_the_ca(
    serve: Servers, ca: CertificateAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    address = serve(ca)
    assert not known_controllers_path().exists()
    assert controller_ca(address, "", "") == ca.cert_pem
    err = capsys.readouterr().err
    assert err.startswith(f"dstackctl: first contact with {address}: trusting its CA sha256 {ca.fingerprint}")
    assert str(known_controllers_path()) in err
    assert err.count("\n") == 1
    assert known() == {address: ca.fingerprint}


def test_second_contact_with_the_same_ca_is_silent(
    serve: Servers, ca: CertificateAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    address = serve(ca)
    controller_ca(address, "", "")
    capsys.readouterr()
    before = known_controllers_path().read_bytes()
    assert controller_ca(address, "", "") == ca.cert_pem
    assert capsys.readouterr() == ("", "")
    assert known_controllers_path().read_bytes() == before


def test_each_address_is_remembered_separately(
    serve: Servers, ca: CertificateAuthority, other_ca: CertificateAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = serve(ca), serve(other_ca)
    controller_ca(first, "", "")
    controller_ca(second, "", "")
    assert capsys.readouterr().err.count("first contact") == 2
    assert known() == {first: ca.fingerprint, second: other_ca.fingerprint}


def test_a_different_ca_at_a_known_address_is_refused(
    serve: Servers, ca: CertificateAuthority, other_ca: CertificateAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    address = serve(ca)
    controller_ca(address, "", "")
    capsys.readouterr()
    serve.stop(address)
    port = int(address.rsplit(":", 1)[1])
    # The same address, now answered by a server with another CA (a reinstall, or someone in the middle).
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            assert serve(other_ca, port=port) == address
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with pytest.raises(CommandError) as err:
        controller_ca(address, "", "")
    message = str(err.value)
    assert f"the controller at {address}" in message
    assert other_ca.fingerprint in message  # what it presents now
    assert ca.fingerprint in message  # what was trusted before
    assert str(known_controllers_path()) in message  # where to remove it if the change is genuine
    assert capsys.readouterr().err == ""
    assert known() == {address: ca.fingerprint}  # never overwritten by the new one


def test_a_changed_ca_is_trusted_again_once_its_entry_is_removed(
    serve: Servers, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    address = serve(other_ca)
    known_controllers_path().parent.mkdir(parents=True)
    known_controllers_path().write_text(json.dumps({address: ca.fingerprint, "elsewhere:1": "ab" * 32}))
    with pytest.raises(CommandError):
        controller_ca(address, "", "")
    known_controllers_path().write_text(json.dumps({"elsewhere:1": "ab" * 32}))
    assert controller_ca(address, "", "") == other_ca.cert_pem
    assert known() == {address: other_ca.fingerprint, "elsewhere:1": "ab" * 32}


def test_ca_file_wins_and_makes_no_connection(
    tmp_path: Path, ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("dstackctl connected although it was given the CA file")

    monkeypatch.setattr(trust, "fetch_presented_chain", no_network)
    monkeypatch.setattr(trust, "discover_ca", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    address = f"127.0.0.1:{closed_port()}"  # nothing answers there anyway
    assert controller_ca(address, str(ca_file), "") == ca.cert_pem
    assert controller_ca(address, str(ca_file), ca.fingerprint) == ca.cert_pem
    assert capsys.readouterr() == ("", "")
    assert not known_controllers_path().exists()


def test_an_unreadable_ca_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    with pytest.raises(UsageError, match=f"cannot read the CA file {missing}"):
        controller_ca(f"127.0.0.1:{closed_port()}", str(missing), "")


def test_pinned_fingerprint_that_matches_is_trusted_without_remembering(
    serve: Servers, ca: CertificateAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    address = serve(ca)
    assert controller_ca(address, "", ca.fingerprint.upper()) == ca.cert_pem
    assert capsys.readouterr() == ("", "")
    assert not known_controllers_path().exists()


def test_pinned_fingerprint_mismatch_is_refused(
    serve: Servers, ca: CertificateAuthority, other_ca: CertificateAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    address = serve(ca)
    with pytest.raises(CommandError) as err:
        controller_ca(address, "", other_ca.fingerprint)
    message = str(err.value)
    assert f"the controller at {address}" in message
    assert other_ca.fingerprint[:16] in message
    assert message.endswith("not connecting")
    assert capsys.readouterr().err == ""
    assert not known_controllers_path().exists()


def test_pinned_fingerprint_beats_a_remembered_one(
    serve: Servers, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    address = serve(ca)
    controller_ca(address, "", "")  # remembers ca
    with pytest.raises(CommandError):
        controller_ca(address, "", other_ca.fingerprint)


def test_a_plaintext_server_is_refused_as_not_speaking_tls(serve: Servers) -> None:
    address = serve(None)  # like a controller started with --insecure
    with pytest.raises(CommandError) as err:
        controller_ca(address, "", "")
    message = str(err.value)
    assert message.startswith(f"{address} does not speak TLS")
    assert "--insecure" in message
    assert not known_controllers_path().exists()
    with pytest.raises(CommandError, match="does not speak TLS"):
        controller_ca(address, "", "ab" * 32)


def test_a_server_presenting_no_ca_is_refused_on_first_contact(serve: Servers, ca: CertificateAuthority) -> None:
    address = serve(ca, with_ca=False)
    with pytest.raises(CommandError, match=f"the controller at {address} presents no CA certificate"):
        controller_ca(address, "", "")
    assert not known_controllers_path().exists()


def test_an_unreachable_controller_is_a_command_error() -> None:
    address = f"127.0.0.1:{closed_port()}"
    with pytest.raises(CommandError, match=f"cannot reach {address}"):
        controller_ca(address, "", "")
    assert not known_controllers_path().exists()


def test_a_corrupt_known_controllers_file_is_a_usage_error(serve: Servers, ca: CertificateAuthority) -> None:
    address = serve(ca)
    known_controllers_path().parent.mkdir(parents=True)
    known_controllers_path().write_text("{not json")
    with pytest.raises(UsageError, match="cannot read"):
        controller_ca(address, "", "")
    assert known_controllers_path().read_text() == "{not json"  # left for the user to look at
