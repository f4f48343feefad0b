"""Fixtures the PKI and agent-identity tests share."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from controller.pki.ca import CertificateAuthority, load_or_create_ca


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the umask a test changes."""
    old = os.umask(0o022)
    os.umask(old)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return load_or_create_ca(tmp_path_factory.mktemp("ca"))[0]


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return load_or_create_ca(tmp_path_factory.mktemp("other-ca"))[0]
