"""The controller's own CA: server certificates for its gRPC endpoint, host certificates from CSRs, fingerprints.

Pure functions over PEM bytes and a data dir; nothing here opens a socket."""

from controller.pki.ca import (
    CertificateAuthority,
    cert_not_after,
    cert_serial,
    host_id_from_cert,
    issue_server_certificate,
    load_or_create_ca,
    load_or_create_server_certificate,
    sign_host_csr,
)
from controller.pki.fingerprint import cert_fingerprint, fingerprints_match

__all__ = [
    "CertificateAuthority",
    "cert_fingerprint",
    "cert_not_after",
    "cert_serial",
    "fingerprints_match",
    "host_id_from_cert",
    "issue_server_certificate",
    "load_or_create_ca",
    "load_or_create_server_certificate",
    "sign_host_csr",
]
