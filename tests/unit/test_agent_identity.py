"""The agent's key, CSR and certificate files, with real crypto and a real CA."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.identity import load_certificate, load_or_create_key, make_csr, needs_renewal, save_certificate
from controller.pki import CertificateAuthority, host_id_from_cert, sign_host_csr

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(hours=24)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def spki(key: object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def issue(ca: CertificateAuthority, state_dir: Path, valid_for: timedelta = DAY) -> bytes:
    return sign_host_csr(ca, make_csr(load_or_create_key(state_dir), "node-1"), "h-1", valid_for, now=NOW)


# -- the key --------------------------------------------------------------------------------------


def test_key_is_created_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = load_or_create_key(state)
    assert load_or_create_key(state) == first
    assert (state / "host.key").read_bytes() == first
    assert mode(state) == 0o700
    key = serialization.load_pem_private_key(first, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    assert [p.name for p in state.iterdir()] == ["host.key"]  # no temp file left behind


@pytest.mark.parametrize("mask", [0o000, 0o077])
def test_key_is_private_whatever_the_umask(tmp_path: Path, umask: None, mask: int) -> None:
    os.umask(mask)
    load_or_create_key(tmp_path)
    assert mode(tmp_path / "host.key") == 0o600


def test_existing_key_is_never_rewritten(tmp_path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    (tmp_path / "host.key").write_bytes(pem)
    assert load_or_create_key(tmp_path) == pem
    assert (tmp_path / "host.key").read_bytes() == pem


def test_corrupt_key_is_an_error_not_a_new_identity(tmp_path: Path) -> None:
    (tmp_path / "host.key").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"host\.key"):
        load_or_create_key(tmp_path)
    assert (tmp_path / "host.key").read_bytes() == b"garbage"


# -- the CSR --------------------------------------------------------------------------------------


def test_csr_proves_possession_of_the_key(tmp_path: Path) -> None:
    key_pem = load_or_create_key(tmp_path)
    csr = x509.load_pem_x509_csr(make_csr(key_pem, "node-1.example"))
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-1.example"
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert spki(csr.public_key()) == spki(key.public_key())


def test_csr_for_a_long_or_empty_hostname(tmp_path: Path) -> None:
    key_pem = load_or_create_key(tmp_path)
    long_cn = x509.load_pem_x509_csr(make_csr(key_pem, "n" * 100)).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert long_cn[0].value == "n" * 64
    empty_cn = x509.load_pem_x509_csr(make_csr(key_pem, "")).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert empty_cn[0].value == "dstack-agent"


# -- certificate files ----------------------------------------------------------------------------


def test_certificate_roundtrip(tmp_path: Path, ca: CertificateAuthority) -> None:
    assert load_certificate(tmp_path) is None
    cert = issue(ca, tmp_path)
    save_certificate(tmp_path, cert, ca.cert_pem)
    assert load_certificate(tmp_path) == (cert, ca.cert_pem)
    assert host_id_from_cert(cert) == "h-1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "host.crt", "host.key"]


def test_certificate_files_are_0644_whatever_the_umask(tmp_path: Path, ca: CertificateAuthority, umask: None) -> None:
    cert = issue(ca, tmp_path)
    os.umask(0o077)
    save_certificate(tmp_path, cert, ca.cert_pem)
    assert mode(tmp_path / "host.crt") == 0o644
    assert mode(tmp_path / "ca.crt") == 0o644
    assert mode(tmp_path / "host.key") == 0o600


def test_renewal_replaces_the_certificate_and_keeps_the_key(tmp_path: Path, ca: CertificateAuthority) -> None:
    key = load_or_create_key(tmp_path)
    first = issue(ca, tmp_path)
    save_certificate(tmp_path, first, ca.cert_pem)
    second = issue(ca, tmp_path)
    save_certificate(tmp_path, second, ca.cert_pem)
    assert load_certificate(tmp_path) == (second, ca.cert_pem)
    assert load_or_create_key(tmp_path) == key


def test_certificate_from_another_ca_is_refused(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    good = issue(ca, tmp_path)
    save_certificate(tmp_path, good, ca.cert_pem)
    with pytest.raises(ValueError, match="not issued by"):
        save_certificate(tmp_path, good, other_ca.cert_pem)
    assert load_certificate(tmp_path) == (good, ca.cert_pem)  # the working pair is untouched


def test_certificate_for_another_key_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    someone_else = issue(ca, tmp_path / "other")
    load_or_create_key(tmp_path)
    with pytest.raises(ValueError, match="not for the key"):
        save_certificate(tmp_path, someone_else, ca.cert_pem)
    assert load_certificate(tmp_path) is None


def test_garbage_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError):
        save_certificate(tmp_path, b"garbage", ca.cert_pem)


def test_half_saved_state_loads_as_none(tmp_path: Path, ca: CertificateAuthority) -> None:
    (tmp_path / "host.crt").write_bytes(issue(ca, tmp_path))
    assert load_certificate(tmp_path) is None


# -- renewal --------------------------------------------------------------------------------------


def test_needs_renewal_after_two_thirds(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert = issue(ca, tmp_path)  # valid NOW .. NOW + 24h
    assert not needs_renewal(cert, NOW)
    assert not needs_renewal(cert, NOW + DAY * 0.5)
    assert not needs_renewal(cert, NOW + timedelta(hours=15, minutes=59))
    assert needs_renewal(cert, NOW + timedelta(hours=16))
    assert needs_renewal(cert, NOW + DAY * 0.7)
    assert needs_renewal(cert, NOW + DAY * 2)  # expired
    assert needs_renewal(cert, (NOW + DAY * 0.7).replace(tzinfo=None))  # naive is UTC


def test_needs_renewal_with_another_fraction(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert = issue(ca, tmp_path)
    assert not needs_renewal(cert, NOW + DAY * 0.4, fraction=0.5)
    assert needs_renewal(cert, NOW + DAY * 0.5, fraction=0.5)
    for bad in (0.0, -1.0, 1.5):
        with pytest.raises(ValueError):
            needs_renewal(cert, NOW, fraction=bad)
