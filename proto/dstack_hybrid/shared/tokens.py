"""The printed forms of tokens, read by both sides: the agent parses the join token it is given,
the controller issues and checks all three kinds.

A join token is `dstack1.<ca-sha256>.<id>.<secret>`: like k3s's `K10<ca-hash>::` tokens it
pins the controller's CA, so an agent checks whom it talks to before it sends the secret.
API tokens are `da1.<id>.<secret>`; host credentials (only with --insecure, where there is no
TLS to carry a client certificate) are `dh1.<id>.<secret>`.

Only sha256(secret) is stored. Secrets are 256 random bits, so a plain hash is enough
(a slow password hash protects low-entropy secrets, which these are not)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

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


def format_token(kind: str, token_id: str, secret: str, ca_fingerprint: str = "") -> str:
    if kind == "join":
        return f"{PREFIXES[kind]}.{ca_fingerprint}.{token_id}.{secret}"
    return f"{PREFIXES[kind]}.{token_id}.{secret}"


def parse_token(text: str) -> ParsedToken:
    parts = text.strip().split(".")
    kinds = {prefix: kind for kind, prefix in PREFIXES.items()}
    kind = kinds.get(parts[0])
    if kind == "join":
        if len(parts) != 4 or not is_fingerprint(parts[1]) or not parts[2] or not parts[3]:
            raise TokenFormatError("malformed join token")
        return ParsedToken(kind, parts[2], parts[3], parts[1].lower())
    if kind is None or len(parts) != 3 or not parts[1] or not parts[2]:
        raise TokenFormatError("malformed token")
    return ParsedToken(kind, parts[1], parts[2])


def is_fingerprint(text: str) -> bool:
    return len(text) == FINGERPRINT_LEN and all(c in "0123456789abcdefABCDEF" for c in text)
