"""The agent's TLS identity: its own key (made here, never sent anywhere), the CSR the controller signs,
and the short-lived certificate it gets back, renewed well before it expires.

Files in the state dir: host.key (0600, created once), host.crt and ca.crt (0644)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dstack_hybrid.shared.keyfiles import create_once, write_atomic

KEY_FILE = "host.key"
CERT_FILE = "host.crt"
CA_FILE = "ca.crt"
RENEW_AT_FRACTION = 2 / 3


def _state_dir(state_dir: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return state_dir


def _load_key(key_pem: bytes, where: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot read {where}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{where} holds a {type(key).__name__}, not an EC key")
    return key


def load_or_create_key(state_dir: Path) -> bytes:
    """The host's private key PEM; generated (ECDSA P-256) on first call and never rewritten after.

    Keeping the key across renewals and re-registrations is what lets the certificate change while
    the identity proof (possession of this key) does not; it never leaves this host."""
    path = _state_dir(state_dir) / KEY_FILE
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if create_once(path, pem, 0o600):
            return pem
    pem = path.read_bytes()
    _load_key(pem, path)  # a corrupt key file fails here with its path, not later inside a TLS library
    return pem


def make_csr(key_pem: bytes, hostname: str) -> bytes:
    """A CSR proving possession of the key. The CN is only a hint for people reading logs: the
    controller ignores the subject and names the certificate after the host id it assigned."""
    key = _load_key(key_pem, Path(KEY_FILE))
    # CN is capped at 64 characters; a long FQDN must not make registration fail.
    cn = hostname.strip()[:64] or "dstack-agent"
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def check_certificate(cert_pem: bytes, ca_pem: bytes, public_key: ec.EllipticCurvePublicKey | None) -> None:
    """Raises ValueError unless both parse, the CA signed the certificate, and (when given) the
    certificate is for `public_key`: what a reply from the controller must pass before it is used."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate: {exc}") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise ValueError("the certificate was not issued by the given CA") from None
    if public_key is not None:
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        cert_key = cert.public_key()
        if not isinstance(cert_key, ec.EllipticCurvePublicKey) or (
            cert_key.public_bytes(*spki) != public_key.public_bytes(*spki)
        ):
            raise ValueError("the certificate is not for this host's key")


def save_certificate(state_dir: Path, cert_pem: bytes, ca_pem: bytes) -> None:
    """Stores a certificate from the controller and the CA that signed it (both 0644, atomically).

    Checked first, so a bad reply can never replace a working certificate: both must parse, the CA
    must have signed the certificate, and the certificate must be for this host's key."""
    state_dir = _state_dir(state_dir)
    key_path = state_dir / KEY_FILE
    key = _load_key(key_path.read_bytes(), key_path).public_key() if key_path.exists() else None
    try:
        check_certificate(cert_pem, ca_pem, key)
    except ValueError as exc:
        if "this host's key" in str(exc):
            raise ValueError(f"the certificate is not for the key in {key_path}") from None
        raise
    # The CA first: it does not change in practice, and a new host.crt must never sit beside a stale CA.
    write_atomic(state_dir / CA_FILE, ca_pem, 0o644)
    write_atomic(state_dir / CERT_FILE, cert_pem, 0o644)


def load_certificate(state_dir: Path) -> tuple[bytes, bytes] | None:
    """(host cert PEM, CA PEM), or None until both have been saved."""
    try:
        return (state_dir / CERT_FILE).read_bytes(), (state_dir / CA_FILE).read_bytes()
    except FileNotFoundError:
        return None


def renewal_time(cert_pem: bytes, fraction: float = RENEW_AT_FRACTION) -> datetime:
    """When `fraction` of the certificate's validity has passed.

    Renewing at 2/3 leaves a third of the lifetime to retry through a controller restart or an
    outage before the certificate, and with it the host's access, runs out."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    cert = x509.load_pem_x509_certificate(cert_pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * fraction


def needs_renewal(cert_pem: bytes, now: datetime, fraction: float = RENEW_AT_FRACTION) -> bool:
    """True once `fraction` of the certificate's validity has passed (or it has expired)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)  # naive means UTC, as cryptography itself reads naive times
    return now >= renewal_time(cert_pem, fraction)


@dataclass
class TlsIdentity:
    """One host's key, certificate and CA in memory, mirrored in its state dir when it has one
    (a simulated host may not). What the session needs: a CSR, the files for mutual TLS, and
    whether it is time to ask for the next certificate."""

    csr_name: str  # the CN hint in CSRs (the controller names the certificate itself)
    state_dir: Path | None = None
    key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    key_pem: bytes = field(default=b"", repr=False)
    cert_pem: bytes = b""
    ca_pem: bytes = b""
    renew_at: float = math.inf  # epoch seconds; computed once per certificate, not at every heartbeat

    def ensure_key(self) -> None:
        """Loads the key from the state dir (created there once), or makes one in memory: P-256
        is generated in well under a millisecond, cheaper than a trip to a thread."""
        if self.key is not None:
            return
        if self.state_dir is not None:
            self.key_pem = load_or_create_key(self.state_dir)
        else:
            new = ec.generate_private_key(ec.SECP256R1())
            self.key_pem = new.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        self.key = _load_key(self.key_pem, Path(KEY_FILE))

    def load(self) -> bool:
        """True when the state dir holds a key, a certificate and its CA (a restart, not a first start)."""
        if self.state_dir is None or not (self.state_dir / KEY_FILE).exists():
            return False
        found = load_certificate(self.state_dir)
        if found is None:
            return False
        self.ensure_key()
        self._use(*found)
        return True

    def csr(self) -> bytes:
        self.ensure_key()
        return make_csr(self.key_pem, self.csr_name)

    def accept(self, cert_pem: bytes, ca_pem: bytes) -> None:
        """Takes a certificate from the controller (registration or renewal) after checking it was
        signed by `ca_pem` for this key; ValueError leaves the identity as it was."""
        self.ensure_key()
        assert self.key is not None
        check_certificate(cert_pem, ca_pem, self.key.public_key())
        if self.state_dir is not None:
            save_certificate(self.state_dir, cert_pem, ca_pem)
        self._use(cert_pem, ca_pem)

    def renewal_csr(self, now: float) -> bytes | None:
        """A CSR once two thirds of the certificate's life are gone (asked at every heartbeat from
        then on until the next certificate comes), so a restart never meets an expired one."""
        return self.csr() if now >= self.renew_at else None

    def _use(self, cert_pem: bytes, ca_pem: bytes) -> None:
        self.cert_pem, self.ca_pem = cert_pem, ca_pem
        self.renew_at = renewal_time(cert_pem).timestamp()
