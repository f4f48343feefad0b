"""Credentials on calls: `authorization: Bearer <token>` metadata."""

from __future__ import annotations

import logging

import grpc
from dstack_hybrid.shared.tokens import TokenFormatError, parse_token, secrets_match

from controller.store import Store
from controller.store.records import HostRecord

log = logging.getLogger("dstack.controller.auth")


def bearer(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str) and value.lower().startswith("bearer "):
            return value[len("bearer ") :].strip()
    return ""


def api_token_ok(store: Store, token_text: str, now: float) -> bool:
    try:
        parsed = parse_token(token_text)
    except TokenFormatError:
        return False
    token = store.get_token(parsed.id) if parsed.kind == "api" else None
    if token is None or token.kind != "api" or token.revoked:
        return False
    if token.expires_at is not None and token.expires_at <= now:
        return False
    return secrets_match(parsed.secret, token.secret_hash)


def host_for_credential(store: Store, credential: str) -> HostRecord | None:
    try:
        parsed = parse_token(credential)
    except TokenFormatError:
        return None
    host = store.get_host(parsed.id) if parsed.kind == "host" else None
    if host is None or not secrets_match(parsed.secret, host.credential_hash):
        return None
    return host


async def require_api_token(store: Store, context: grpc.aio.ServicerContext, now: float) -> None:
    if not api_token_ok(store, bearer(context), now):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API token")
