"""Engine log timestamps (RFC 3339, nanoseconds) to unix nanoseconds."""

from __future__ import annotations

import calendar
from datetime import datetime, timezone

import pytest

from agent.runtime.logstamps import parse_ns, split_timestamp

# 2026-11-24T21:12:20Z as unix seconds, computed independently of the module.
BASE_S = int(datetime(2026, 11, 24, 21, 12, 20, tzinfo=timezone.utc).timestamp())
BASE_NS = BASE_S * 1_000_000_000


def test_epoch_constant_is_right() -> None:
    assert BASE_S == calendar.timegm((2026, 11, 24, 21, 12, 20, 0, 0, 0)) == 1795554740


@pytest.mark.parametrize(
    ("stamp", "ns"),
    [
        ("2026-11-24T21:12:20.666792034Z", BASE_NS + 666_792_034),
        ("2026-11-24T21:12:20.000000001Z", BASE_NS + 1),
        ("2026-11-24T21:12:20.5Z", BASE_NS + 500_000_000),
        ("2026-11-24T21:12:20.05Z", BASE_NS + 50_000_000),
        ("2026-11-24T21:12:20.123456Z", BASE_NS + 123_456_000),
        ("2026-11-24T21:12:20Z", BASE_NS),
        ("2026-11-24T21:12:20.Z", BASE_NS),
        ("2026-11-24T21:12:20.1234567891234Z", BASE_NS + 123_456_789),  # beyond ns: truncated
        ("1970-01-01T00:00:00.000000007Z", 7),
    ],
)
def test_parse_ns(stamp: str, ns: int) -> None:
    assert parse_ns(stamp) == ns


def test_parse_ns_keeps_full_nanosecond_precision() -> None:
    a = parse_ns("2026-11-24T21:12:20.999999998Z")
    b = parse_ns("2026-11-24T21:12:20.999999999Z")
    c = parse_ns("2026-11-24T21:12:21.000000000Z")
    assert (b - a, c - b) == (1, 1)
    assert isinstance(a, int)


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-24T21:12:20.5",  # no zone
        "2026-11-24T21:12:20.5+00:00",
        "2026-11-24 21:12:20Z",
        "2026-13-24T21:12:20Z",
        "hello",
        "",
        "2026-11-24T21:12:20.abcZ",
    ],
)
def test_parse_ns_rejects_non_utc_or_garbage(stamp: str) -> None:
    with pytest.raises(ValueError):
        parse_ns(stamp)


def test_parse_ns_error_names_the_stamp() -> None:
    with pytest.raises(ValueError, match="not a UTC timestamp: 2026-11-24T21:12:20"):
        parse_ns("2026-11-24T21:12:20")


def test_split_timestamp_splits_at_the_first_space_only() -> None:
    frame = b"2026-11-24T21:12:20.666792034Z hello  world \n"
    assert split_timestamp(frame) == (BASE_NS + 666_792_034, b"hello  world \n")


def test_split_timestamp_empty_line_and_binary_data() -> None:
    assert split_timestamp(b"2026-11-24T21:12:20Z \n") == (BASE_NS, b"\n")
    assert split_timestamp(b"2026-11-24T21:12:20Z ") == (BASE_NS, b"")
    assert split_timestamp(b"2026-11-24T21:12:20.1Z \x00\xff\xfe") == (BASE_NS + 100_000_000, b"\x00\xff\xfe")


@pytest.mark.parametrize(
    "frame",
    [
        b"no-timestamp-at-all\n",
        b"plain words without a stamp\n",
        b"",
        b"2026-11-24T21:12:20Z",  # a stamp but no separator: treated as data
        b"\xff\xfe binary",
        b"2026-11-24T21:12:20+01:00 offset zone\n",
    ],
)
def test_split_timestamp_frames_without_timestamp_are_kept_whole(frame: bytes) -> None:
    assert split_timestamp(frame) == (0, frame)
