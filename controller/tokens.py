"""Issuing tokens into the store (their printed forms: dstack_hybrid.shared.tokens)."""

from __future__ import annotations

import math
import secrets
import time

from dstack_hybrid.shared.tokens import format_token, hash_secret, is_fingerprint

from controller.roles import DEFAULT_API_ROLE, Role
from controller.store import Store
from controller.store.records import TokenKind, TokenRecord


def new_id() -> str:
    return secrets.token_hex(4)


def create_token(
    store: Store,
    kind: TokenKind,
    ttl_s: float | None = None,
    uses: int | None = None,
    fleet: str = "",
    description: str = "",
    now: float | None = None,
    ca_fingerprint: str = "",
    launch_id: str = "",
    role: Role | None = None,
) -> tuple[TokenRecord, str]:
    """Stores a new token and returns it with its one-time printable form (join tokens carry
    `ca_fingerprint`, the sha256 of the controller's CA certificate; one made for a cloud launch
    carries that launch's id, which registration checks the host against). An API token has a
    role, the least one unless `role` says otherwise; a join token has none."""
    if kind == "join" and not is_fingerprint(ca_fingerprint):
        raise ValueError("a join token needs the controller CA's sha256 fingerprint")
    if kind == "join" and role is not None:
        raise ValueError("a join token has no role: roles are for API tokens")
    if kind == "api" and role is None:
        role = DEFAULT_API_ROLE
    now = time.time() if now is None else now
    secret = secrets.token_urlsafe(32)
    record = TokenRecord(
        id=new_id(),
        kind=kind,
        secret_hash=hash_secret(secret),
        created_at=now,
        expires_at=None if ttl_s is None else now + ttl_s,
        uses_left=uses,
        fleet=fleet,
        description=description,
        launch_id=launch_id,
        role=role,
    )
    store.add_token(record)
    return record, format_token(kind, record.id, secret, ca_fingerprint)


def parse_duration(text: str) -> float:
    """`90s`, `15m`, `1h`, `7d`, or plain seconds."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise ValueError(f"invalid duration {text!r}: use e.g. 30m, 1h or 7d") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"invalid duration {text!r}: must be positive")
    return value
