"""Reading certificates: fingerprints as join tokens carry them (sha256 of the DER certificate,
lowercase hex), validity and serial.

The fingerprint is the same value `openssl x509 -noout -fingerprint -sha256` prints, without the
colons, so an operator can check a token's pin against the CA file by hand."""

from __future__ import annotations

import hmac
import re
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def load_certificate_bytes(cert: bytes) -> x509.Certificate:
    """PEM or DER: gRPC's auth context hands out PEM, Python's ssl getpeercert(True) DER."""
    if cert.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(cert)
    return x509.load_der_x509_certificate(cert)


def cert_fingerprint(cert_pem: bytes) -> str:
    """Lowercase hex sha256 of the DER encoding (PEM or DER input); a PEM's line wrapping cannot change it."""
    return load_certificate_bytes(cert_pem).fingerprint(hashes.SHA256()).hex()


def _normalize(fingerprint: str) -> str:
    return fingerprint.strip().replace(":", "").lower()


def fingerprints_match(a: str, b: str) -> bool:
    """Constant-time comparison, ignoring case and colons (openssl prints `AB:CD:...`).

    Anything that is not a full sha256 never matches: an empty or truncated pin must not
    turn into "trust whatever the server presents"."""
    na, nb = _normalize(a), _normalize(b)
    if not _SHA256_HEX.fullmatch(na) or not _SHA256_HEX.fullmatch(nb):
        return False
    # bytes, not str: compare_digest refuses non-ASCII str, and both are ASCII hex by now anyway.
    return hmac.compare_digest(na.encode("ascii"), nb.encode("ascii"))


def cert_not_after(cert_pem: bytes) -> datetime:
    """End of validity, timezone-aware UTC (PEM or DER)."""
    return load_certificate_bytes(cert_pem).not_valid_after_utc


def cert_serial(cert_pem: bytes) -> int:
    """Serial number (PEM or DER): what a revocation list or an audit log names a certificate by."""
    return load_certificate_bytes(cert_pem).serial_number
