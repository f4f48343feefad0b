"""The controller's CA with real crypto: files and modes, fingerprints, server and host certificates,
and TLS handshakes through Python's ssl module (the same OpenSSL chain checks a client would make)."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from dstack_hybrid.shared.certs import cert_fingerprint, cert_not_after, cert_serial, fingerprints_match

from controller.pki import (
    CertificateAuthority,
    host_id_from_cert,
    issue_server_certificate,
    load_or_create_ca,
    load_or_create_server_certificate,
    sign_host_csr,
)

# Inside the validity of a CA created now (10 years), with microseconds the certificates must drop.
NOW = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def csr_for(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
    cn: str = "node-1",
    sans: list[x509.GeneralName] | None = None,
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


# -- the CA ---------------------------------------------------------------------------------------


def test_ca_is_created_once_then_loaded(tmp_path: Path) -> None:
    first, created = load_or_create_ca(tmp_path / "data")
    assert created
    second, created_again = load_or_create_ca(tmp_path / "data")
    assert not created_again
    assert second == first
    assert (tmp_path / "data" / "ca.crt").read_bytes() == first.cert_pem
    assert (tmp_path / "data" / "ca.key").read_bytes() == first.key_pem
    assert mode(tmp_path / "data") == 0o700
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["ca.crt", "ca.key"]  # no temp files left


@pytest.mark.parametrize("mask", [0o000, 0o077, 0o277])
def test_ca_file_modes_whatever_the_umask(tmp_path: Path, umask: None, mask: int) -> None:
    os.umask(mask)
    load_or_create_ca(tmp_path)
    assert mode(tmp_path / "ca.key") == 0o600
    assert mode(tmp_path / "ca.crt") == 0o644


def test_ca_certificate(tmp_path: Path) -> None:
    ca, _ = load_or_create_ca(tmp_path, common_name="test CA", now=NOW)
    cert = load(ca.cert_pem)
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test CA"
    cert.verify_directly_issued_by(cert)  # self-signed
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    start = NOW.replace(microsecond=0)
    assert cert.not_valid_after_utc == start + timedelta(days=3650)
    assert cert.not_valid_before_utc <= start  # a little in the past for agents whose clock is behind
    assert cert.serial_number > 0


def test_two_cas_differ(ca: CertificateAuthority, other_ca: CertificateAuthority) -> None:
    assert ca.fingerprint != other_ca.fingerprint
    assert cert_serial(ca.cert_pem) != cert_serial(other_ca.cert_pem)  # random serials


def test_key_stays_out_of_repr(ca: CertificateAuthority) -> None:
    assert b"PRIVATE KEY" in ca.key_pem
    assert "PRIVATE" not in repr(ca) and "key_pem" not in repr(ca)


def test_mismatched_key_is_refused(tmp_path: Path) -> None:
    load_or_create_ca(tmp_path / "a")
    load_or_create_ca(tmp_path / "b")
    shutil.copy(tmp_path / "b" / "ca.key", tmp_path / "a" / "ca.key")
    with pytest.raises(ValueError, match="does not match"):
        load_or_create_ca(tmp_path / "a")


def test_corrupt_key_is_refused(tmp_path: Path) -> None:
    load_or_create_ca(tmp_path)
    (tmp_path / "ca.key").write_bytes(b"not a key")
    with pytest.raises(ValueError, match=r"cannot read .*ca\.key"):
        load_or_create_ca(tmp_path)


def test_certificate_without_key_is_refused_not_replaced(tmp_path: Path) -> None:
    ca, _ = load_or_create_ca(tmp_path)
    (tmp_path / "ca.key").unlink()
    with pytest.raises(ValueError, match="does not"):
        load_or_create_ca(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == ca.cert_pem


def test_key_without_certificate_is_completed(tmp_path: Path) -> None:
    """A crash between writing ca.key and ca.crt: the next start certifies the key that is there."""
    ca, _ = load_or_create_ca(tmp_path)
    (tmp_path / "ca.crt").unlink()
    again, created = load_or_create_ca(tmp_path)
    assert created
    assert again.key_pem == ca.key_pem
    assert again.cert_pem != ca.cert_pem


def test_non_ca_certificate_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert_pem, server_key = issue_server_certificate(ca, ["localhost"], [])
    (tmp_path / "ca.crt").write_bytes(cert_pem)
    (tmp_path / "ca.key").write_bytes(server_key)
    with pytest.raises(ValueError, match="not a CA"):
        load_or_create_ca(tmp_path)


# -- fingerprints ---------------------------------------------------------------------------------


def test_fingerprint_is_sha256_of_der(ca: CertificateAuthority) -> None:
    der = load(ca.cert_pem).public_bytes(serialization.Encoding.DER)
    assert ca.fingerprint == hashlib.sha256(der).hexdigest()
    assert cert_fingerprint(der) == ca.fingerprint  # DER in, same answer


def test_fingerprint_matches_openssl(tmp_path: Path, ca: CertificateAuthority) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl on PATH")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(tmp_path / "ca.crt")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    printed = out.split("=", 1)[1]  # "sha256 Fingerprint=AB:CD:..."
    assert printed.replace(":", "").lower() == ca.fingerprint
    assert fingerprints_match(printed, ca.fingerprint)


def test_fingerprints_match(ca: CertificateAuthority, other_ca: CertificateAuthority) -> None:
    fp = ca.fingerprint
    colons = ":".join(fp[i : i + 2] for i in range(0, len(fp), 2))
    assert fingerprints_match(fp, fp)
    assert fingerprints_match(fp.upper(), colons)
    assert fingerprints_match(f" {colons.upper()}\n", fp)
    assert not fingerprints_match(fp, other_ca.fingerprint)
    assert not fingerprints_match(fp, fp[:-1])


@pytest.mark.parametrize("pin", ["", ":", "zz" * 32, "é" * 64])
def test_a_pin_that_is_no_sha256_matches_nothing(pin: str) -> None:
    assert not fingerprints_match(pin, pin)


# -- the server certificate -----------------------------------------------------------------------


def test_server_certificate(ca: CertificateAuthority) -> None:
    cert_pem, key = issue_server_certificate(ca, ["localhost", "ctl.example"], ["127.0.0.1", "::1"], now=NOW)
    cert = load(cert_pem)
    cert.verify_directly_issued_by(load(ca.cert_pem))
    assert cert.issuer == load(ca.cert_pem).subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "ctl.example"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == NOW.replace(microsecond=0) + timedelta(days=365)
    private = serialization.load_pem_private_key(key, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert private.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)
    assert host_id_from_cert(cert_pem) is None  # a server certificate names no host


def test_server_certificate_needs_valid_names(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError):
        issue_server_certificate(ca, [], [])
    with pytest.raises(ValueError):
        issue_server_certificate(ca, ["localhost"], ["127.0.0.300"])


def test_server_certificate_is_reused(tmp_path: Path, ca: CertificateAuthority) -> None:
    first = load_or_create_server_certificate(tmp_path, ca, ["localhost"], ["127.0.0.1"])
    assert mode(tmp_path / "server.key") == 0o600
    assert mode(tmp_path / "server.crt") == 0o644
    # Same names in another case and order, or fewer of them: still covered.
    assert load_or_create_server_certificate(tmp_path, ca, ["LOCALHOST"], ["127.0.0.1"]) == first
    assert load_or_create_server_certificate(tmp_path, ca, [], ["127.0.0.1"]) == first
    assert (tmp_path / "server.crt").read_bytes() == first[0]


def test_server_certificate_reissued_for_new_names(tmp_path: Path, ca: CertificateAuthority) -> None:
    first = load_or_create_server_certificate(tmp_path, ca, ["localhost"], ["127.0.0.1"])
    second = load_or_create_server_certificate(tmp_path, ca, ["localhost"], ["127.0.0.1", "::1"])
    assert second != first
    san = load(second[0]).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("::1") in san.get_values_for_type(x509.IPAddress)
    assert (tmp_path / "server.crt").read_bytes() == second[0]
    assert (tmp_path / "server.key").read_bytes() == second[1]


def test_server_certificate_reissued_near_expiry(tmp_path: Path, ca: CertificateAuthority) -> None:
    first = load_or_create_server_certificate(tmp_path, ca, ["localhost"], [], now=NOW)
    assert load_or_create_server_certificate(tmp_path, ca, ["localhost"], [], now=NOW + timedelta(days=334)) == first
    renewed = load_or_create_server_certificate(tmp_path, ca, ["localhost"], [], now=NOW + timedelta(days=336))
    assert renewed != first
    assert cert_not_after(renewed[0]) == (NOW + timedelta(days=336 + 365)).replace(microsecond=0)


def test_server_certificate_reissued_for_another_ca(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    load_or_create_server_certificate(tmp_path, other_ca, ["localhost"], [])
    cert_pem, _ = load_or_create_server_certificate(tmp_path, ca, ["localhost"], [])
    load(cert_pem).verify_directly_issued_by(load(ca.cert_pem))


def test_server_certificate_reissued_when_key_does_not_match(tmp_path: Path, ca: CertificateAuthority) -> None:
    first = load_or_create_server_certificate(tmp_path, ca, ["localhost"], [])
    (tmp_path / "server.key").write_bytes(key_pem(ec.generate_private_key(ec.SECP256R1())))
    assert load_or_create_server_certificate(tmp_path, ca, ["localhost"], [])[0] != first[0]
    (tmp_path / "server.crt").write_bytes(b"garbage")
    assert load_or_create_server_certificate(tmp_path, ca, ["localhost"], [])[0].startswith(b"-----BEGIN")


# -- host certificates ----------------------------------------------------------------------------


def test_host_certificate_names_the_host_the_controller_chose(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_for(key, cn="someone-else", sans=[x509.UniformResourceIdentifier("dstack-host://victim")])
    cert_pem = sign_host_csr(ca, csr, "h-1", timedelta(hours=24), now=NOW)
    cert = load(cert_pem)
    cert.verify_directly_issued_by(load(ca.cert_pem))
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h-1")])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["dstack-host://h-1"]
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    assert host_id_from_cert(cert_pem) == "h-1"
    assert host_id_from_cert(cert.public_bytes(serialization.Encoding.DER)) == "h-1"


def test_host_certificate_validity_is_exactly_valid_for(ca: CertificateAuthority) -> None:
    cert_pem = sign_host_csr(ca, csr_for(ec.generate_private_key(ec.SECP256R1())), "h-1", timedelta(hours=6), now=NOW)
    cert = load(cert_pem)
    assert cert.not_valid_before_utc == NOW.replace(microsecond=0)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(hours=6)
    assert cert_not_after(cert_pem) == cert.not_valid_after_utc


def test_host_certificates_get_distinct_serials(ca: CertificateAuthority) -> None:
    csr = csr_for(ec.generate_private_key(ec.SECP256R1()))
    a = sign_host_csr(ca, csr, "h-1", timedelta(hours=1), now=NOW)
    b = sign_host_csr(ca, csr, "h-1", timedelta(hours=1), now=NOW)
    assert cert_serial(a) != cert_serial(b)
    assert cert_serial(a) == load(a).serial_number


def test_host_certificate_from_an_rsa_key(ca: CertificateAuthority) -> None:
    csr = csr_for(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert host_id_from_cert(sign_host_csr(ca, csr, "h-2", timedelta(hours=1))) == "h-2"


def test_csr_with_a_bad_signature_is_refused(ca: CertificateAuthority) -> None:
    """The subject changed after signing: the signature no longer covers what is asked."""
    der = x509.load_pem_x509_csr(csr_for(ec.generate_private_key(ec.SECP256R1()), cn="node-1")).public_bytes(
        serialization.Encoding.DER
    )
    tampered = der.replace(b"node-1", b"node-2")
    assert tampered != der
    with pytest.raises(ValueError, match="signature"):
        sign_host_csr(ca, tampered, "h-1", timedelta(hours=1))


@pytest.mark.parametrize(
    "key",
    [
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        ed25519.Ed25519PrivateKey.generate(),
        ec.generate_private_key(ec.SECP256K1()),
    ],
    ids=["rsa-1024", "ed25519", "secp256k1"],
)
def test_weak_or_unsupported_keys_are_refused(
    ca: CertificateAuthority, key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(ValueError):
        sign_host_csr(ca, csr_for(key), "h-1", timedelta(hours=1))


@pytest.mark.parametrize("host_id", ["", "a/b", "a b", "x" * 65, "-leading-dash", "h-1\n"])
def test_invalid_host_ids_are_refused(ca: CertificateAuthority, host_id: str) -> None:
    with pytest.raises(ValueError, match="host id"):
        sign_host_csr(ca, csr_for(ec.generate_private_key(ec.SECP256R1())), host_id, timedelta(hours=1))


def test_garbage_and_bad_durations_are_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="malformed CSR"):
        sign_host_csr(
            ca, b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "h", timedelta(1)
        )
    with pytest.raises(ValueError, match="valid_for"):
        sign_host_csr(ca, csr_for(ec.generate_private_key(ec.SECP256R1())), "h-1", timedelta(0))


def test_host_id_from_a_certificate_without_one(ca: CertificateAuthority) -> None:
    assert host_id_from_cert(ca.cert_pem) is None  # no SAN at all


# -- TLS through Python's ssl module --------------------------------------------------------------


class Party:
    """Certificate files for one side of a handshake."""

    def __init__(self, directory: Path, name: str, cert_pem: bytes, key: bytes) -> None:
        self.cert = directory / f"{name}.crt"
        self.key = directory / f"{name}.key"
        self.cert.write_bytes(cert_pem)
        self.key.write_bytes(key)


def host_party(directory: Path, ca: CertificateAuthority, host_id: str) -> Party:
    key = ec.generate_private_key(ec.SECP256R1())
    return Party(directory, host_id, sign_host_csr(ca, csr_for(key), host_id, timedelta(hours=1)), key_pem(key))


def server_context(server: Party, trusted: CertificateAuthority) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server.cert, server.key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # RFC 5280 checks, as Python 3.13's defaults make
    ctx.load_verify_locations(cadata=trusted.cert_pem.decode())
    return ctx


def client_context(trusted: CertificateAuthority, host: Party | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies and checks the hostname; trusts nothing yet
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_verify_locations(cadata=trusted.cert_pem.decode())
    if host is not None:
        ctx.load_cert_chain(host.cert, host.key)
    return ctx


Outcome = bytes | BaseException | None


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, name: str) -> tuple[Outcome, Outcome]:
    """(the server's view of the client certificate, DER; what the client read) or the exception each side raised."""
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)

    def serve() -> bytes | None:
        with server_ctx.wrap_socket(a, server_side=True) as s:
            peer = s.getpeercert(binary_form=True)
            s.sendall(b"k")
            return peer

    def connect() -> bytes:
        with client_ctx.wrap_socket(b, server_hostname=name) as c:
            # With TLS 1.3 the client's handshake ends before the server has checked its certificate;
            # reading one byte is what makes a refusal by the server reach the client.
            return c.recv(1)

    with ThreadPoolExecutor(2) as pool:
        futures = pool.submit(serve), pool.submit(connect)
        outcomes: list[Outcome] = []
        for future in futures:
            error = future.exception(timeout=30)
            outcomes.append(error if error is not None else future.result())
    a.close()
    b.close()
    return outcomes[0], outcomes[1]


@pytest.fixture
def server(tmp_path: Path, ca: CertificateAuthority) -> Party:
    return Party(tmp_path, "server", *issue_server_certificate(ca, ["localhost"], ["127.0.0.1", "::1"]))


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "::1"])
def test_mutual_tls_handshake(tmp_path: Path, ca: CertificateAuthority, server: Party, name: str) -> None:
    host = host_party(tmp_path, ca, "h-1")
    peer, read = handshake(server_context(server, ca), client_context(ca, host), name)
    assert read == b"k"
    assert isinstance(peer, bytes)
    assert host_id_from_cert(peer) == "h-1"  # how the controller maps an mTLS peer to its host


def test_client_pinned_to_another_ca_refuses_the_server(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority, server: Party
) -> None:
    host = host_party(tmp_path, ca, "h-1")
    peer, read = handshake(server_context(server, ca), client_context(other_ca, host), "localhost")
    assert isinstance(read, ssl.SSLCertVerificationError)
    assert isinstance(peer, (ssl.SSLError, OSError))


def test_server_certificate_for_another_name_is_refused(
    tmp_path: Path, ca: CertificateAuthority, server: Party
) -> None:
    host = host_party(tmp_path, ca, "h-1")
    _, read = handshake(server_context(server, ca), client_context(ca, host), "ctl.example")
    assert isinstance(read, ssl.SSLCertVerificationError)


def test_server_refuses_a_host_certificate_from_another_ca(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority, server: Party
) -> None:
    intruder = host_party(tmp_path, other_ca, "h-1")
    peer, read = handshake(server_context(server, ca), client_context(ca, intruder), "localhost")
    assert isinstance(peer, ssl.SSLError)
    assert isinstance(read, (ssl.SSLError, OSError))


def test_server_refuses_a_client_without_certificate(ca: CertificateAuthority, server: Party) -> None:
    peer, read = handshake(server_context(server, ca), client_context(ca, None), "localhost")
    assert isinstance(peer, ssl.SSLError)
    assert isinstance(read, (ssl.SSLError, OSError))


def test_server_certificate_is_not_a_client_certificate(
    tmp_path: Path, ca: CertificateAuthority, server: Party
) -> None:
    """serverAuth only: the controller's own certificate cannot log in as a host."""
    peer, _ = handshake(server_context(server, ca), client_context(ca, server), "localhost")
    assert isinstance(peer, ssl.SSLError)
