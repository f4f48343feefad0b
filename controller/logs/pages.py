"""Reading a task's log in bounded pages, in the order the engine timestamped the lines.

A cursor is the last line sent, (ts_ns, stream, seq): the next page starts strictly after it, so a
page costs one indexed range query and the controller never holds more than a page per reader."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PAGE_LINES = 1000
PAGE_BYTES = 1024**2


@dataclass(frozen=True, order=True)
class LogCursor:
    ts_ns: int
    stream: int
    seq: int

    @classmethod
    def start(cls) -> LogCursor:
        return cls(-1, 0, -1)  # before every line

    @classmethod
    def since(cls, since_ns: int) -> LogCursor:
        """Before the first line stamped at or after since_ns (streams are >= 1, seqs >= 0)."""
        return cls(since_ns, 0, -1)

    @classmethod
    def before(cls, ts_ns: int, stream: int, seq: int) -> LogCursor:
        """Just before this line: a page from here includes it."""
        return cls(ts_ns, stream, seq - 1)


def take_page(
    rows: Iterable[tuple[int, int, int, bytes]], max_lines: int = PAGE_LINES, max_bytes: int = PAGE_BYTES
) -> tuple[list[tuple[int, int, int, bytes]], bool]:
    """Takes (stream, seq, ts_ns, data) rows until either bound is reached (a page has at least one
    line, however long). Returns the page and whether rows may remain after it."""
    page: list[tuple[int, int, int, bytes]] = []
    size = 0
    for row in rows:
        page.append(row)
        size += len(row[3])
        if len(page) >= max_lines or size >= max_bytes:
            return page, True
    return page, False


def cursor_after(row: tuple[int, int, int, bytes]) -> LogCursor:
    stream, seq, ts_ns, _ = row
    return LogCursor(ts_ns, stream, seq)
