"""Finding the controller's CA before trusting it, against real TLS servers on loopback: a gRPC server
(BoringSSL, ALPN h2, as the controller runs) presenting `server certificate + CA`, one presenting its
leaf alone, and one that copies the real CA certificate into its chain beside its own leaf."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from dstack_hybrid.shared.ca_discovery import (
    CONTROLLER_SAN,
    CAMismatchError,
    discover_ca,
    fetch_presented_chain,
    presented_ca,
    split_address,
)
from dstack_hybrid.shared.certs import cert_fingerprint

from controller.pki.ca import CertificateAuthority, issue_server_certificate, load_or_create_ca

TIMEOUT_S = 5.0


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def server_pair(ca: CertificateAuthority) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) naming what the controller's certificate names."""
    return issue_server_certificate(ca, [CONTROLLER_SAN, "localhost"], ["127.0.0.1"])


def start_tls_server(chain_pem: bytes, key_pem: bytes) -> tuple[grpc.Server, str]:
    """A gRPC server on a free loopback port presenting `chain_pem`; it serves no method at all."""
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key_pem, chain_pem)]))
    assert port, "cannot listen on loopback"
    server.start()
    return server, f"127.0.0.1:{port}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return load_or_create_ca(tmp_path / "ca")[0]


@pytest.fixture
def other_ca(tmp_path: Path) -> CertificateAuthority:
    return load_or_create_ca(tmp_path / "other-ca", common_name="someone else's CA")[0]


@pytest.fixture
def serve() -> Iterator[Callable[[bytes, bytes], str]]:
    servers: list[grpc.Server] = []

    def start(chain_pem: bytes, key_pem: bytes) -> str:
        server, address = start_tls_server(chain_pem, key_pem)
        servers.append(server)
        return address

    yield start
    for server in servers:
        server.stop(None).wait(TIMEOUT_S)


@pytest.fixture
def leaf(ca: CertificateAuthority) -> tuple[bytes, bytes]:
    return server_pair(ca)


@pytest.fixture
def controller(serve: Callable[[bytes, bytes], str], ca: CertificateAuthority, leaf: tuple[bytes, bytes]) -> str:
    """Like the real controller: its certificate followed by its CA."""
    cert, key = leaf
    return serve(cert + ca.cert_pem, key)


# -- fetch_presented_chain / presented_ca --------------------------------------------------------


def test_fetch_presented_chain_returns_the_leaf_then_the_ca(
    controller: str, ca: CertificateAuthority, leaf: tuple[bytes, bytes]
) -> None:
    chain = fetch_presented_chain(controller, timeout_s=TIMEOUT_S)
    assert chain == [der(leaf[0]), der(ca.cert_pem)]
    assert [cert_fingerprint(c) for c in chain] == [cert_fingerprint(leaf[0]), ca.fingerprint]


def test_presented_ca_picks_the_ca_not_the_leaf(controller: str, ca: CertificateAuthority) -> None:
    chain = fetch_presented_chain(controller, timeout_s=TIMEOUT_S)
    found = presented_ca(chain)
    assert found == ca.cert_pem
    assert found is not None and cert_fingerprint(found) == ca.fingerprint


def test_presented_ca_is_none_for_a_leaf_alone(leaf: tuple[bytes, bytes]) -> None:
    assert presented_ca([der(leaf[0])]) is None
    assert presented_ca([]) is None


def test_presented_ca_ignores_a_ca_that_issued_nothing_in_the_chain(
    leaf: tuple[bytes, bytes], other_ca: CertificateAuthority
) -> None:
    assert presented_ca([der(leaf[0]), der(other_ca.cert_pem)]) is None


def test_fetch_from_a_closed_port_is_an_os_error() -> None:
    with pytest.raises(OSError):
        fetch_presented_chain(f"127.0.0.1:{closed_port()}", timeout_s=TIMEOUT_S)


def test_fetch_from_a_mute_server_gives_up_after_its_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as mute:  # accepts (backlog) but never answers a ClientHello
        address = f"127.0.0.1:{mute.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(OSError):  # TimeoutError
            fetch_presented_chain(address, timeout_s=0.5)
        assert time.monotonic() - started < TIMEOUT_S


# -- discover_ca ---------------------------------------------------------------------------------


def test_discover_ca_with_the_pinned_fingerprint_returns_the_ca_pem(controller: str, ca: CertificateAuthority) -> None:
    assert discover_ca(controller, ca.fingerprint, timeout_s=TIMEOUT_S) == ca.cert_pem


def test_discover_ca_accepts_the_fingerprint_as_openssl_prints_it(controller: str, ca: CertificateAuthority) -> None:
    fp = ca.fingerprint.upper()
    openssl_style = ":".join(fp[i : i + 2] for i in range(0, len(fp), 2))
    assert discover_ca(controller, openssl_style, timeout_s=TIMEOUT_S) == ca.cert_pem


def test_discover_ca_with_another_fingerprint_names_the_address_and_both_fingerprints(
    controller: str, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    with pytest.raises(CAMismatchError) as err:
        discover_ca(controller, other_ca.fingerprint, timeout_s=TIMEOUT_S)
    message = str(err.value)
    assert f"the controller at {controller}" in message
    assert other_ca.fingerprint[:16] in message  # what the token pins
    assert ca.fingerprint[:16] in message  # what the server presented


@pytest.mark.parametrize("pin", ["", "0" * 64, "truncated"])
def test_discover_ca_never_matches_an_empty_zero_or_truncated_pin(
    controller: str, ca: CertificateAuthority, pin: str
) -> None:
    with pytest.raises(CAMismatchError):
        discover_ca(controller, ca.fingerprint[:32] if pin == "truncated" else pin, timeout_s=TIMEOUT_S)


def test_a_server_presenting_only_its_leaf_is_a_mismatch(
    serve: Callable[[bytes, bytes], str], ca: CertificateAuthority, leaf: tuple[bytes, bytes]
) -> None:
    address = serve(*leaf)
    chain = fetch_presented_chain(address, timeout_s=TIMEOUT_S)
    assert chain == [der(leaf[0])]
    assert presented_ca(chain) is None
    with pytest.raises(CAMismatchError) as err:
        discover_ca(address, ca.fingerprint, timeout_s=TIMEOUT_S)
    assert f"the controller at {address}" in str(err.value)


def _call_status(address: str, ca_pem: bytes) -> grpc.StatusCode:
    """The status of a call over a channel that trusts `ca_pem` alone, as the agent and dstackctl dial."""
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    with grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", CONTROLLER_SAN)]) as ch:
        try:
            ch.unary_unary("/test.Nothing/Here", request_serializer=None, response_deserializer=None)(
                b"", timeout=TIMEOUT_S
            )
        except grpc.RpcError as exc:
            return exc.code()
    raise AssertionError("a server with no methods answered a call")


def test_a_copied_ca_certificate_passes_discovery_but_not_the_verified_channel(
    serve: Callable[[bytes, bytes], str], ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    """The pin picks the trust root; the impostor cannot prove it holds a key the pinned CA certified."""
    impostor_cert, impostor_key = server_pair(other_ca)
    impostor = serve(impostor_cert + ca.cert_pem, impostor_key)  # the real CA certificate is public
    found = discover_ca(impostor, ca.fingerprint, timeout_s=TIMEOUT_S)
    assert found == ca.cert_pem
    # Verified against that CA, the handshake fails: the call never reaches the server.
    assert _call_status(impostor, found) == grpc.StatusCode.UNAVAILABLE


def test_the_discovered_ca_verifies_the_genuine_server(controller: str, ca: CertificateAuthority) -> None:
    found = discover_ca(controller, ca.fingerprint, timeout_s=TIMEOUT_S)
    # The handshake succeeded: the server itself answers, that it has no such method.
    assert _call_status(controller, found) == grpc.StatusCode.UNIMPLEMENTED


# -- split_address -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("host:1", ("host", 1)),
        ("127.0.0.1:7443", ("127.0.0.1", 7443)),
        ("[::1]:7443", ("::1", 7443)),
        ("controller.example.com:443", ("controller.example.com", 443)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),  # --listen with port 0 takes any free port
    ],
)
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["", "host", "host:", "host:port", "host:-1", "host:1.5", "[::1]", ":"])
def test_split_address_refuses_bad_input(address: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        split_address(address)


def test_split_address_refuses_a_port_above_65535() -> None:
    with pytest.raises(ValueError):
        split_address("host:66979")
