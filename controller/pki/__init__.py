"""The controller's own CA: server certificates for its gRPC endpoint, host certificates from CSRs.

Reading certificates (fingerprints, validity) is shared with the agent: dstack_hybrid.shared.certs.

Pure functions over PEM bytes and a data dir; nothing here opens a socket."""

from controller.pki.ca import (
    CertificateAuthority,
    host_id_from_cert,
    issue_server_certificate,
    load_or_create_ca,
    load_or_create_server_certificate,
    sign_host_csr,
)

__all__ = [
    "CertificateAuthority",
    "host_id_from_cert",
    "issue_server_certificate",
    "load_or_create_ca",
    "load_or_create_server_certificate",
    "sign_host_csr",
]
