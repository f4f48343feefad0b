"""Finding the controller's CA before trusting it, as kubeadm and k3s do: read the chain the
server presents without verifying it, keep the CA certificate whose sha256 is the pinned one,
and from then on verify everything against that CA alone. Nothing is sent on the unverified
connection, so a man in the middle learns nothing from it.

Python exposes the presented chain publicly from 3.13 (`get_unverified_chain`); 3.10-3.12
have the same call on the private `_sslobj`."""

from __future__ import annotations

import socket
import ssl
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from dstack_hybrid.shared.certs import cert_fingerprint, fingerprints_match

# Every controller server certificate carries this DNS name, and clients verify it whatever
# address they dialled (an IP, a load balancer's name): the pinned CA is what they trust.
CONTROLLER_SAN = "dstack-controller"


class CAMismatchError(Exception):
    """The controller presented no CA with the pinned fingerprint."""


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    # The resolver wraps ports modulo 65536: 66979 would quietly dial 1443.
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid address {address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def fetch_presented_chain(address: str, timeout_s: float = 5.0) -> list[bytes]:
    """The certificates (DER) the server at `address` presents, unverified."""
    host, port = split_address(address)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])  # a gRPC server ends handshakes that do not offer HTTP/2
    with socket.create_connection((host, port), timeout=timeout_s) as raw, ctx.wrap_socket(raw) as tls:
        getter: Any = getattr(tls, "get_unverified_chain", None)
        if getter is not None:
            return [bytes(c) for c in getter()]
        chain = tls._sslobj.get_unverified_chain() or []  # type: ignore[attr-defined]
        return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]


def presented_ca(chain: list[bytes]) -> bytes | None:
    """The CA certificate (PEM) in a presented chain: the one marked CA that issued another
    certificate of the chain (a stray CA that signed nothing there would be a useless pin)."""
    certs = [x509.load_der_x509_certificate(der) for der in chain]
    for ca in reversed(certs):
        if not _is_ca(ca):
            continue
        for other in certs:
            if other is ca:
                continue
            try:
                other.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca.public_bytes(Encoding.PEM)
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def discover_ca(address: str, fingerprint: str, timeout_s: float = 5.0) -> bytes:
    """The controller's CA (PEM) if its sha256 is `fingerprint`; else CAMismatchError naming what was seen."""
    chain = fetch_presented_chain(address, timeout_s)
    for der in chain:
        if fingerprints_match(cert_fingerprint(der), fingerprint):
            return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
    seen = ", ".join(cert_fingerprint(der)[:16] + "…" for der in chain) or "no certificate"
    raise CAMismatchError(
        f"the controller at {address} presents {seen}, not the CA sha256 {fingerprint[:16]}… the token pins"
    )


class UntrustedControllerError(ValueError):
    """Nothing is to be sent to this controller: one sentence saying why."""


def discover_pinned_ca(address: str, fingerprint: str, insecure_hint: str) -> bytes:
    """discover_ca for a joining host: a mismatch or a plaintext server becomes one sentence
    (OSError, a controller not up yet, passes through for the caller to retry)."""
    try:
        return discover_ca(address, fingerprint)
    except CAMismatchError as exc:
        raise UntrustedControllerError(f"{exc}; refusing to send the join token") from None
    except ssl.SSLError as exc:
        raise UntrustedControllerError(
            f"{address} does not speak TLS ({exc.reason}); if the controller runs with --insecure, {insecure_hint}"
        ) from None
