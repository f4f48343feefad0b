"""Token creation, printable form, hashing and duration parsing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from dstack_hybrid.shared.tokens import (
    PREFIXES,
    ParsedToken,
    TokenFormatError,
    format_token,
    hash_secret,
    parse_token,
    secrets_match,
)

from controller.store import Store, open_store
from controller.tokens import create_token, parse_duration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store("sqlite:///" + str(tmp_path / "tokens.db"))
    yield s
    s.close()


FP = "ab" * 32  # a CA sha256, as join tokens pin it


def test_create_token_stores_only_the_hash(store: Store) -> None:
    record, printable = create_token(
        store, "join", ttl_s=3600, uses=1, fleet="edge", description="rack 4", now=1000.0, ca_fingerprint=FP
    )
    parsed = parse_token(printable)
    assert parsed.kind == "join"
    assert parsed.id == record.id
    assert parsed.ca_fingerprint == FP
    assert printable == f"dstack1.{FP}.{record.id}.{parsed.secret}"
    assert re.fullmatch(r"[0-9a-f]{8}", record.id)
    assert len(parsed.secret) >= 43  # 32 random bytes, urlsafe base64
    assert record.secret_hash == hashlib.sha256(parsed.secret.encode()).hexdigest()
    assert parsed.secret not in record.secret_hash
    assert (record.created_at, record.expires_at, record.uses_left) == (1000.0, 4600.0, 1)
    assert (record.fleet, record.description, record.revoked) == ("edge", "rack 4", False)
    assert store.get_token(record.id) == record


def test_created_token_can_be_used_once_through_the_store(store: Store) -> None:
    record, printable = create_token(store, "join", ttl_s=60, uses=1, now=1000.0, ca_fingerprint=FP)
    parsed = parse_token(printable)
    got, why = store.use_token(parsed.id, hash_secret(parsed.secret), "join", now=1010.0)
    assert why == "" and got is not None and got.id == record.id
    assert store.use_token(parsed.id, hash_secret(parsed.secret), "join", now=1010.0)[1] == (
        f"token {record.id} is used up"
    )


def test_create_token_defaults_never_expire_unlimited(store: Store) -> None:
    record, printable = create_token(store, "api")
    assert printable.startswith("da1.")
    assert record.expires_at is None and record.uses_left is None and record.fleet == ""
    assert record.created_at > 1_600_000_000  # the real clock when `now` is not given


def test_tokens_are_distinct(store: Store) -> None:
    made = [create_token(store, "join", now=1.0, ca_fingerprint=FP) for _ in range(20)]
    assert len({r.id for r, _ in made}) == 20
    assert len({p for _, p in made}) == 20
    assert all("." not in parse_token(p).secret for _, p in made)


def test_format_token_prefixes() -> None:
    assert PREFIXES == {"join": "dstack1", "api": "da1", "host": "dh1"}
    assert format_token("join", "ab12", "s3cret", FP) == f"dstack1.{FP}.ab12.s3cret"
    assert format_token("api", "ab12", "s") == "da1.ab12.s"
    assert format_token("host", "ab12", "s") == "dh1.ab12.s"
    with pytest.raises(KeyError):
        format_token("other", "a", "b")


@pytest.mark.parametrize("kind", ["api", "host"])
def test_parse_token_roundtrips_format(kind: str) -> None:
    assert parse_token(format_token(kind, "id9", "se-cr_et")) == ParsedToken(kind, "id9", "se-cr_et")


def test_join_token_roundtrips_with_its_ca_pin() -> None:
    assert parse_token(format_token("join", "id9", "se-cr_et", FP.upper())) == ParsedToken(
        "join", "id9", "se-cr_et", FP
    )


@pytest.mark.parametrize(
    "text",
    [
        f"dstack1.{FP}.id",
        f"dstack1.{FP[:-2]}.id.s",
        f"dstack1.{'zz' * 32}.id.s",
        "dstack1.id.secret",
        f"dstack1.{FP}..s",
    ],
)
def test_malformed_join_tokens(text: str) -> None:
    with pytest.raises(TokenFormatError, match=r"^malformed join token$"):
        parse_token(text)


def test_join_tokens_need_a_ca_pin(store: Store) -> None:
    with pytest.raises(ValueError, match="CA's sha256 fingerprint"):
        create_token(store, "join")


def test_parse_token_strips_whitespace() -> None:
    assert parse_token("  dh1.abc.xyz\n") == ParsedToken("host", "abc", "xyz")


@pytest.mark.parametrize(
    "text",
    ["", "   ", "dj1", "dj1.abc", "dj1.abc.", "dj1..secret", ".abc.secret", "xx1.abc.secret", "dj1.a.b.c", "DJ1.a.b"],
)
def test_parse_token_rejects_malformed(text: str) -> None:
    with pytest.raises(TokenFormatError, match=r"^malformed token$"):
        parse_token(text)


def test_token_format_error_is_a_value_error() -> None:
    assert issubclass(TokenFormatError, ValueError)


def test_hash_secret_and_secrets_match() -> None:
    assert hash_secret("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    stored = hash_secret("right")
    assert secrets_match("right", stored) is True
    assert secrets_match("wrong", stored) is False
    assert secrets_match("right", stored.upper()) is False
    assert secrets_match("", hash_secret("")) is True


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("7d", 604800),
        ("2w", 1209600),
        ("1.5h", 5400),
        ("45", 45),
        ("0.5", 0.5),
        (" 1H ", 3600),
        ("30M", 1800),
    ],
)
def test_parse_duration_good(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid duration '': use e.g. 30m, 1h or 7d"),
        ("h", "invalid duration 'h': use e.g. 30m, 1h or 7d"),
        ("abc", "invalid duration 'abc': use e.g. 30m, 1h or 7d"),
        ("1y", "invalid duration '1y': use e.g. 30m, 1h or 7d"),
        ("1 hour", "invalid duration '1 hour': use e.g. 30m, 1h or 7d"),
        ("0", "invalid duration '0': must be positive"),
        ("0s", "invalid duration '0s': must be positive"),
        ("-1h", "invalid duration '-1h': must be positive"),
    ],
)
def test_parse_duration_bad(text: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_duration(text)
    assert str(exc.value) == message


@pytest.mark.parametrize("text", ["nan", "inf", "nanh"])
def test_parse_duration_rejects_non_finite(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
