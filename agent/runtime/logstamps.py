"""The engine's log timestamps (RFC 3339 with nanoseconds) as unix nanoseconds."""

from __future__ import annotations

import calendar
import time


def split_timestamp(frame: bytes) -> tuple[int, bytes]:
    """`2026-11-24T21:12:20.666792034Z hello\\n` -> (ns, b"hello\\n")."""
    stamp, sep, data = frame.partition(b" ")
    if not sep:
        return 0, frame
    try:
        return parse_ns(stamp.decode("ascii")), data
    except ValueError:
        return 0, frame


def parse_ns(stamp: str) -> int:
    if not stamp.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {stamp}")
    main, _, frac = stamp[:-1].partition(".")
    seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
