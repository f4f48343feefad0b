"""How dstackctl shows a task's log lines: byte-exact (--raw), or escaped for a terminal.

A task's output is untrusted: an escape sequence in it could retitle the user's terminal, move the
cursor, rewrite what is on screen or, on some terminals, answer back as typed input. The default
view therefore shows every control character except newline, tab and carriage return (progress
bars rewrite their line with it) as `\\xNN`, and bytes that are not UTF-8 the same way. --raw
writes the bytes exactly as the task wrote them, for files and pipes."""

from __future__ import annotations

import calendar
import re
import sys
import time
from datetime import datetime, timezone

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.tokens import parse_duration

_KEPT_CONTROLS = frozenset("\n\t\r")


def escape_for_terminal(data: bytes) -> bytes:
    text = data.decode("utf-8", errors="backslashreplace")
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if (code < 0x20 and ch not in _KEPT_CONTROLS) or 0x7F <= code <= 0x9F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out).encode("utf-8")


def timestamp_prefix(ts_ns: int) -> bytes:
    """`2026-12-02T08:21:22.123456789Z `, as `docker logs -t` and `kubectl logs --timestamps` show it."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z ").encode()


_ABSOLUTE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?")


def since_ns(text: str, now: float) -> int:
    """--since as docker logs takes it: a duration back from now (`10m`, `2h`, `90s`) or a time
    (`2026-12-02`, `2026-12-02T08:00:00Z`, with an offset; no zone means UTC)."""
    text = text.strip()
    if _ABSOLUTE.fullmatch(text):
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"--since: {text!r} is not a valid time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return calendar.timegm(when.utctimetuple()) * 1_000_000_000 + when.microsecond * 1000
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ValueError(
            f"--since: {text!r} is neither a duration (10m, 2h) nor a time (2026-12-02T08:00:00Z)"
        ) from None
    return int((now - seconds) * 1_000_000_000)


class LogView:
    """Writes a task's lines to dstackctl's stdout/stderr (the task's streams), escaped unless raw."""

    def __init__(self, raw: bool = False, timestamps: bool = False) -> None:
        self.raw, self.timestamps = raw, timestamps

    def render(self, data: bytes, ts_ns: int) -> bytes:
        shown = data if self.raw else escape_for_terminal(data)
        return timestamp_prefix(ts_ns) + shown if self.timestamps else shown


def write_line(view: LogView, line: pb.LogLine) -> None:
    out = sys.stderr.buffer if line.stream == pb.LOG_STREAM_STDERR else sys.stdout.buffer
    out.write(view.render(line.data, line.ts_ns))
    out.flush()


def write_notice(text: str) -> None:
    """A line from the controller (not the task): on stderr, so stdout stays the task's bytes."""
    print(f"dstackctl: {text}", file=sys.stderr, flush=True)
