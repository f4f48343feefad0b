"""Join tokens, API tokens and host credentials.

A join token is `dstack1.<ca-sha256>.<id>.<secret>`: like k3s's `K10<ca-hash>::` tokens it
pins the controller's CA, so an agent checks whom it talks to before it sends the secret.
API tokens are `da1.<id>.<secret>`; host credentials (only with --insecure, where there is no
TLS to carry a client certificate) are `dh1.<id>.<secret>`.

Only sha256(secret) is stored. Secrets are 256 random bits, so a plain hash is enough
(a slow password hash protects low-entropy secrets, which these are not)."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass

from controller.store import Store
from controller.store.records import TokenKind, TokenRecord

PREFIXES: dict[str, str] = {"join": "dstack1", "api": "da1", "host": "dh1"}
FINGERPRINT_LEN = 64  # hex sha256


@dataclass(frozen=True)
class ParsedToken:
    kind: str  # join | api | host
    id: str
    secret: str
    ca_fingerprint: str = ""  # join tokens only


class TokenFormatError(ValueError):
    pass


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secrets_match(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def new_id() -> str:
    return secrets.token_hex(4)


def format_token(kind: str, token_id: str, secret: str, ca_fingerprint: str = "") -> str:
    if kind == "join":
        return f"{PREFIXES[kind]}.{ca_fingerprint}.{token_id}.{secret}"
    return f"{PREFIXES[kind]}.{token_id}.{secret}"


def parse_token(text: str) -> ParsedToken:
    parts = text.strip().split(".")
    kinds = {prefix: kind for kind, prefix in PREFIXES.items()}
    kind = kinds.get(parts[0])
    if kind == "join":
        if len(parts) != 4 or not _is_fingerprint(parts[1]) or not parts[2] or not parts[3]:
            raise TokenFormatError("malformed join token")
        return ParsedToken(kind, parts[2], parts[3], parts[1].lower())
    if kind is None or len(parts) != 3 or not parts[1] or not parts[2]:
        raise TokenFormatError("malformed token")
    return ParsedToken(kind, parts[1], parts[2])


def _is_fingerprint(text: str) -> bool:
    return len(text) == FINGERPRINT_LEN and all(c in "0123456789abcdefABCDEF" for c in text)


def create_token(
    store: Store,
    kind: TokenKind,
    ttl_s: float | None = None,
    uses: int | None = None,
    fleet: str = "",
    description: str = "",
    now: float | None = None,
    ca_fingerprint: str = "",
) -> tuple[TokenRecord, str]:
    """Stores a new token and returns it with its one-time printable form (join tokens carry
    `ca_fingerprint`, the sha256 of the controller's CA certificate)."""
    if kind == "join" and not _is_fingerprint(ca_fingerprint):
        raise ValueError("a join token needs the controller CA's sha256 fingerprint")
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
