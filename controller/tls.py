"""The controller's TLS material: its CA and server certificate in <data-dir>/pki, made on
first start; and the names the server certificate must cover."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN

from controller.pki.ca import CertificateAuthority, load_or_create_ca, load_or_create_server_certificate


@dataclass(frozen=True)
class ServerTLS:
    ca: CertificateAuthority
    cert_pem: bytes  # the server certificate followed by the CA, so clients can discover and pin it
    key_pem: bytes


def pki_dir(data_dir: Path) -> Path:
    return data_dir / "pki"


def load_ca(data_dir: Path) -> tuple[CertificateAuthority, bool]:
    return load_or_create_ca(pki_dir(data_dir))


def server_names(listen_hosts: list[str], extra: list[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IPs) for the server certificate: loopback, this host's name, the listen
    addresses and whatever the operator adds with --tls-san (a load balancer's name, say)."""
    dns = {CONTROLLER_SAN, "localhost", socket.gethostname()}
    ips = {"127.0.0.1", "::1"}
    for name in [*listen_hosts, *extra]:
        name = name.strip("[]")
        if not name or name in ("0.0.0.0", "::"):
            continue
        try:
            ips.add(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.add(name)
    return sorted(dns), sorted(ips)


def load_server_tls(data_dir: Path, listen_hosts: list[str], extra_sans: list[str]) -> ServerTLS:
    ca, _ = load_ca(data_dir)
    dns, ips = server_names(listen_hosts, extra_sans)
    cert, key = load_or_create_server_certificate(pki_dir(data_dir), ca, dns, ips)
    return ServerTLS(ca, cert + ca.cert_pem, key)
