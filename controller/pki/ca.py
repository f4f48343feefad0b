"""The controller's CA: created on first start in the data dir, then used to sign its server certificate
and the short-lived certificates hosts ask for with a CSR.

The CA is deliberately tiny (pathlen 0, one ECDSA P-256 key): it exists only so agents can pin it by
fingerprint and the controller can tell hosts apart by the certificate they present."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from dstack_hybrid.shared.certs import cert_fingerprint, load_certificate_bytes
from dstack_hybrid.shared.keyfiles import write_atomic

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
SERVER_CERT_FILE = "server.crt"
SERVER_KEY_FILE = "server.key"
HOST_URI_PREFIX = "dstack-host://"
DEFAULT_CA_NAME = "dstack-hybrid controller CA"
CA_VALIDITY = timedelta(days=3650)
# A server certificate with less left than this is reissued at start, so a controller that restarts
# now and then never serves one that expires before its next restart.
SERVER_MIN_REMAINING = timedelta(days=30)
# Certificates the agent verifies (CA, server) start a little in the past: an agent whose clock is a
# minute behind must not reject a certificate issued a second ago as "not yet valid". Host certificates
# are verified by the controller against its own clock, so they start exactly at issue time.
CLOCK_SKEW = timedelta(minutes=5)
MIN_RSA_BITS = 2048
# Curves every TLS stack gRPC may sit on (BoringSSL, OpenSSL) verifies.
_EC_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
# Host ids go into a URI authority and a CN (64 characters at most): keep them to characters neither escapes.
_HOST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
SubjectKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class CertificateAuthority:
    cert_pem: bytes
    key_pem: bytes = field(repr=False)  # keeps the key out of log lines and tracebacks that print the CA

    @property
    def fingerprint(self) -> str:
        """What join tokens pin: lowercase hex sha256 of the DER certificate."""
        return cert_fingerprint(self.cert_pem)

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def private_key(self) -> IssuerKey:
        return _load_issuer_key(self.key_pem, "CA key")


# -- files ---------------------------------------------------------------------------------------


# -- helpers -------------------------------------------------------------------------------------


def _utc_now(now: datetime | None) -> datetime:
    now = datetime.now(timezone.utc) if now is None else now
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)  # naive means UTC, as cryptography itself reads naive times
    # X.509 times have whole seconds; truncating here keeps not_after - not_before exactly what was asked.
    return now.astimezone(timezone.utc).replace(microsecond=0)


def _key_pem(key: IssuerKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_der(key: object) -> bytes:
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise ValueError(f"unsupported key type {type(key).__name__}")
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_issuer_key(key_pem: bytes, what: str) -> IssuerKey:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: an encrypted key, which nothing here can unlock
        raise ValueError(f"cannot read {what}: {exc}") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError(f"{what} is a {type(key).__name__}; only EC and RSA keys are supported")
    return key


def _key_matches_cert(key: IssuerKey, cert: x509.Certificate) -> bool:
    try:
        return _public_der(key.public_key()) == _public_der(cert.public_key())
    except ValueError:
        return False


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _check_subject_key(key: object) -> SubjectKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _EC_CURVES):
            raise ValueError(f"unsupported EC curve {key.curve.name}; use P-256, P-384 or P-521")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits is too small; at least {MIN_RSA_BITS} are needed")
        return key
    raise ValueError(f"unsupported key type {type(key).__name__}; only EC and RSA keys are accepted")


def _leaf_builder(
    ca: CertificateAuthority,
    issuer_key: IssuerKey,
    public_key: SubjectKey,
    subject: x509.Name,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    ca_cert = ca.certificate
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        # Past the CA's own end the chain fails anyway; saying so in the certificate makes it visible.
        .not_valid_after(min(not_after, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        # Key identifiers: OpenSSL's strict verification (Python 3.13's default) requires them.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(aki, critical=False)
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# -- the CA --------------------------------------------------------------------------------------


def _self_signed_ca(key: IssuerKey, common_name: str, now: datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        # pathlen 0: this CA signs leaves only; a host certificate can never act as an intermediate.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert)


def _check_ca(ca: CertificateAuthority, cert_path: Path, key_path: Path) -> None:
    try:
        cert = ca.certificate
    except ValueError as exc:
        raise ValueError(f"cannot read {cert_path}: {exc}") from None
    key = _load_issuer_key(ca.key_pem, str(key_path))
    if not _key_matches_cert(key, cert):
        raise ValueError(
            f"{key_path} does not match {cert_path}: restore the pair from the same backup "
            "(a new CA would invalidate every join token and host certificate)"
        )
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ValueError(f"{cert_path} is not a CA certificate (no basicConstraints CA:TRUE)")


def load_or_create_ca(
    directory: Path, common_name: str = DEFAULT_CA_NAME, now: datetime | None = None
) -> tuple[CertificateAuthority, bool]:
    """The CA in `directory` (ca.crt 0644, ca.key 0600), created on first call; returns (ca, created)."""
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    cert_exists, key_exists = cert_path.exists(), key_path.exists()
    if cert_exists and key_exists:
        ca = CertificateAuthority(cert_path.read_bytes(), key_path.read_bytes())
        _check_ca(ca, cert_path, key_path)
        return ca, False
    if cert_exists:
        # Making a new CA here would silently break every pinned join token and host certificate.
        raise ValueError(
            f"{cert_path} exists but {key_path} does not: restore the key, "
            "or remove both to create a new CA (every join token and host certificate must then be reissued)"
        )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if key_exists:
        # A crash between writing the key and the certificate: that key was never in a certificate, so
        # nothing pins it yet; finish the job with it rather than overwrite a key file.
        key_pem = key_path.read_bytes()
        key = _load_issuer_key(key_pem, str(key_path))
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = _key_pem(key)
        write_atomic(key_path, key_pem, 0o600)  # the key first: a certificate must never exist without it
    cert_pem = _self_signed_ca(key, common_name, _utc_now(now))
    write_atomic(cert_path, cert_pem, 0o644)
    return CertificateAuthority(cert_pem, key_pem), True


# -- the controller's server certificate ---------------------------------------------------------


def issue_server_certificate(
    ca: CertificateAuthority,
    hostnames: list[str],
    ips: list[str],
    valid_days: int = 365,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """A fresh key and a serverAuth certificate for it naming `hostnames` and `ips`; returns (cert PEM, key PEM)."""
    if not hostnames and not ips:
        raise ValueError("a server certificate needs at least one hostname or IP address")
    if valid_days <= 0:
        raise ValueError(f"valid_days must be positive, not {valid_days}")
    addresses = [ipaddress.ip_address(ip) for ip in ips]  # a typo fails here, before anything is signed
    now = _utc_now(now)
    issuer_key = ca.private_key()
    key = ec.generate_private_key(ec.SECP256R1())
    # TLS clients match the SANs only; the CN is for people reading the certificate (and is capped at 64).
    label = hostnames[0] if hostnames else str(addresses[0])
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, label if len(label) <= 64 else "dstack-hybrid controller")]
    )
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    sans += [x509.IPAddress(a) for a in addresses]
    cert = (
        _leaf_builder(ca, issuer_key, key.public_key(), subject, now - CLOCK_SKEW, now + timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return _pem(cert), _key_pem(key)


def _server_cert_reusable(
    ca: CertificateAuthority,
    cert_pem: bytes,
    key_pem: bytes,
    hostnames: list[str],
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
    now: datetime,
) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cert.verify_directly_issued_by(ca.certificate)
        key = _load_issuer_key(key_pem, "server key")
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False  # unreadable, or from another CA: the server pair is derived, so just reissue it
    if not _key_matches_cert(key, cert):
        return False  # a crash between writing the new key and its certificate
    dns = {d.lower() for d in san.get_values_for_type(x509.DNSName)}
    return (
        {h.lower() for h in hostnames} <= dns
        and set(addresses) <= set(san.get_values_for_type(x509.IPAddress))
        and cert.not_valid_before_utc <= now
        and cert.not_valid_after_utc - now > SERVER_MIN_REMAINING
    )


def load_or_create_server_certificate(
    directory: Path,
    ca: CertificateAuthority,
    hostnames: list[str],
    ips: list[str],
    valid_days: int = 365,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """server.crt/server.key from `directory` when signed by `ca`, covering the names and with more than
    30 days left; otherwise a new pair, written there (key 0600). Returns (cert PEM, key PEM)."""
    addresses = [ipaddress.ip_address(ip) for ip in ips]
    now = _utc_now(now)
    cert_path, key_path = directory / SERVER_CERT_FILE, directory / SERVER_KEY_FILE
    try:
        cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
    except FileNotFoundError:
        pass
    else:
        if _server_cert_reusable(ca, cert_pem, key_pem, hostnames, addresses, now):
            return cert_pem, key_pem
    cert_pem, key_pem = issue_server_certificate(ca, hostnames, ips, valid_days=valid_days, now=now)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(key_path, key_pem, 0o600)
    write_atomic(cert_path, cert_pem, 0o644)
    return cert_pem, key_pem


# -- host certificates ---------------------------------------------------------------------------


def host_uri(host_id: str) -> str:
    return HOST_URI_PREFIX + host_id


def sign_host_csr(
    ca: CertificateAuthority,
    csr_pem: bytes,
    host_id: str,
    valid_for: timedelta,
    now: datetime | None = None,
) -> bytes:
    """A clientAuth certificate for the CSR's key, naming `host_id` (CN and URI SAN dstack-host://<id>).

    Only the CSR's public key is used: its subject and requested extensions are ignored, because the
    controller, having checked the join token or the current certificate, decides who the host is."""
    if not _HOST_ID.fullmatch(host_id):
        raise ValueError(f"invalid host id {host_id!r}")
    if valid_for <= timedelta(0):
        raise ValueError(f"valid_for must be positive, not {valid_for}")
    try:
        if csr_pem.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(csr_pem)
        else:
            csr = x509.load_der_x509_csr(csr_pem)
    except ValueError as exc:
        raise ValueError(f"malformed CSR: {exc}") from None
    # Proof of possession: a CSR signed by another key means the sender does not hold the one it names.
    if not csr.is_signature_valid:
        raise ValueError("CSR signature does not verify")
    public_key = _check_subject_key(csr.public_key())
    now = _utc_now(now)
    issuer_key = ca.private_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_id)])
    cert = (
        _leaf_builder(ca, issuer_key, public_key, subject, now, now + valid_for)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(host_uri(host_id))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return _pem(cert)


def host_id_from_cert(cert_pem_or_der: bytes) -> str | None:
    """The host id in a host certificate's URI SAN, or None when it names none (or more than one).

    Does not verify anything: call it on a peer certificate the TLS handshake has already verified."""
    cert = load_certificate_bytes(cert_pem_or_der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    ids = [
        uri[len(HOST_URI_PREFIX) :]
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(HOST_URI_PREFIX)
    ]
    if len(ids) != 1 or not _HOST_ID.fullmatch(ids[0]):
        return None
    return ids[0]
