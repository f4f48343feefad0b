"""Which controller CA dstackctl trusts, like SSH's known_hosts: a CA file given outright
(--ca-file / DSTACK_CA_FILE), a pinned fingerprint (--ca-fingerprint / DSTACK_CA_FINGERPRINT),
or the CA seen on first contact, remembered per address in ~/.dstack/known_controllers.json
and refused when it changes."""

from __future__ import annotations

import json
import os
import ssl
import sys
from pathlib import Path

from dstack_hybrid.shared.ca_discovery import CAMismatchError, discover_ca, fetch_presented_chain, presented_ca
from dstack_hybrid.shared.certs import cert_fingerprint, fingerprints_match

from controller.cli.errors import CommandError, UsageError


class UnreachableError(CommandError):
    """Nothing answered at the address: worth trying again later, unlike a CA that changed."""


def known_controllers_path() -> Path:
    return Path.home() / ".dstack" / "known_controllers.json"


def _known() -> dict[str, str]:
    try:
        data = json.loads(known_controllers_path().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {known_controllers_path()}: {exc}") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _remember(address: str, fingerprint: str) -> None:
    path = known_controllers_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    known = _known()
    known[address] = fingerprint
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def controller_ca(address: str, ca_file: str, pinned: str) -> bytes:
    """The CA PEM to verify the controller with."""
    if ca_file:
        try:
            return Path(ca_file).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read the CA file {ca_file}: {exc.strerror}") from None
    try:
        if pinned:
            return discover_ca(address, pinned)
        chain = fetch_presented_chain(address)
    except CAMismatchError as exc:
        raise CommandError(f"{exc}; not connecting") from None
    except ssl.SSLError as exc:
        raise CommandError(
            f"{address} does not speak TLS ({exc.reason}); for an --insecure controller pass --insecure"
        ) from None
    except OSError as exc:
        raise UnreachableError(f"cannot reach {address}: {exc.strerror or exc}") from None
    ca = presented_ca(chain)
    if ca is None:
        raise CommandError(f"the controller at {address} presents no CA certificate; not connecting")
    fingerprint = cert_fingerprint(ca)
    remembered = _known().get(address)
    if remembered is None:
        _remember(address, fingerprint)
        print(
            f"dstackctl: first contact with {address}: trusting its CA sha256 {fingerprint} "
            f"(remembered in {known_controllers_path()})",
            file=sys.stderr,
        )
    elif not fingerprints_match(remembered, fingerprint):
        raise CommandError(
            f"the controller at {address} now presents CA sha256 {fingerprint}, not the {remembered} you trusted "
            f"before; if it was really replaced, remove its entry from {known_controllers_path()}"
        )
    return ca
