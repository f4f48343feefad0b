"""Task logs: the cap's trimming decision, the page cursor, the terminal escaping, --since; and the
SQLite store keeping a cap, reading pages and purging by retention on a real database file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.cli.logview import LogView, escape_for_terminal, since_ns, timestamp_prefix
from controller.logs.cap import bytes_to_free, dropped_notice, format_cap, lines_to_drop, parse_cap
from controller.logs.pages import LogCursor, take_page
from controller.server.log_retention import purge_once
from controller.store import Store, open_store
from controller.store.records import StoredLogLine, TaskRecord


# ------------------------------------------------------------------ pure parts
@pytest.mark.parametrize(
    ("text", "size"),
    [("100MiB", 100 * 1024**2), ("100MB", 100 * 1024**2), ("100m", 100 * 1024**2), ("64KiB", 65536),
     ("65536", 65536), ("2GiB", 2 * 1024**3), (" 1 gib ", 1024**3)],
)  # fmt: skip
def test_parse_cap(text: str, size: int) -> None:
    assert parse_cap(text) == size


@pytest.mark.parametrize("text", ["", "0", "0MiB", "-1MiB", "1.5MiB", "lots", "100 XB"])
def test_parse_cap_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"size|more than zero"):
        parse_cap(text)


def test_format_cap_and_notice() -> None:
    assert format_cap(100 * 1024**2) == "100 MiB"
    assert format_cap(65536) == "64 KiB"
    assert format_cap(1000) == "1000 B"
    assert dropped_notice(7, 100 * 1024**2) == "7 lines dropped (log cap 100 MiB)"


def test_bytes_to_free_is_zero_under_the_cap_and_goes_a_step_below_it() -> None:
    cap = 100 * 1024**2
    assert bytes_to_free(0, cap) == 0
    assert bytes_to_free(cap, cap) == 0
    assert bytes_to_free(cap + 1, cap) == 1 + 1024**2  # a 1 MiB step below the cap
    assert bytes_to_free(2000, 1000) == 1100  # small caps step a tenth


def test_lines_to_drop_counts_the_oldest_lines_that_free_enough() -> None:
    assert lines_to_drop([10, 10, 10], 1) == 1
    assert lines_to_drop([10, 10, 10], 10) == 1
    assert lines_to_drop([10, 10, 10], 11) == 2
    assert lines_to_drop([10, 10, 10], 100) == 3
    assert lines_to_drop([], 5) == 0


def test_take_page_stops_at_either_bound_and_says_whether_more_may_follow() -> None:
    rows = [(1, i, i, b"x" * 10) for i in range(10)]
    assert take_page(rows, max_lines=3, max_bytes=1000) == (rows[:3], True)
    assert take_page(rows, max_lines=100, max_bytes=25) == (rows[:3], True)
    assert take_page(rows, max_lines=100, max_bytes=1000) == (rows, False)
    huge = [(1, 0, 0, b"x" * 5000)]
    assert take_page(huge, max_lines=10, max_bytes=100) == (huge, True)  # never an empty page
    assert take_page([], 10, 10) == ([], False)


def test_cursors_order_like_the_read_order() -> None:
    assert LogCursor.start() < LogCursor(0, 1, 0)
    assert LogCursor(5, 1, 3) < LogCursor(5, 2, 0) < LogCursor(6, 1, 0)
    assert LogCursor(4, 2, 99) < LogCursor.since(5) < LogCursor(5, 1, 0)
    assert LogCursor.before(5, 2, 7) < LogCursor(5, 2, 7)


def test_escaping_shows_control_sequences_and_keeps_text() -> None:
    assert escape_for_terminal(b"\x1b]0;pwned\x07title\n") == b"\\x1b]0;pwned\\x07title\n"
    assert escape_for_terminal(b"\x1b[2J\x9b") == b"\\x1b[2J\\x9b"  # 0x9b alone is not UTF-8
    assert escape_for_terminal("\u009b31m".encode()) == b"\\x9b31m"  # C1 CSI as UTF-8
    assert escape_for_terminal(b"tab\there\r50%\n") == b"tab\there\r50%\n"
    assert escape_for_terminal("grüße ✓\n".encode()) == "grüße ✓\n".encode()
    assert escape_for_terminal(b"\x7f\x00") == b"\\x7f\\x00"


def test_raw_view_is_the_bytes_and_timestamps_prefix_them() -> None:
    data = bytes(range(256))
    assert LogView(raw=True).render(data, 0) == data
    assert timestamp_prefix(1_764_663_682_123_456_789) == b"2025-12-02T08:21:22.123456789Z "
    assert LogView(raw=True, timestamps=True).render(b"x\n", 5) == b"1970-01-01T00:00:00.000000005Z x\n"


def test_since_takes_a_duration_or_a_time() -> None:
    now = 1_000_000.0
    assert since_ns("10m", now) == int((now - 600) * 1e9)
    assert since_ns("2025-12-02T08:21:22Z", now) == 1_764_663_682 * 10**9
    assert since_ns("2025-12-02T09:21:22+01:00", now) == 1_764_663_682 * 10**9
    assert since_ns("2025-12-02T08:21:22.5", now) == 1_764_663_682_500_000_000
    assert since_ns("2025-12-02", now) == 1_764_633_600 * 10**9
    for bad in ("yesterday", "2025-13-40", "-5m"):
        with pytest.raises(ValueError, match="--since"):
            since_ns(bad, now)


# ------------------------------------------------------------------ the store
@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        yield s
    finally:
        s.close()


def lines(stream: int, first: int, count: int, size: int = 100, ts0: int = 0) -> list[StoredLogLine]:
    # ts = i * 10 + stream (+ ts0): the streams interleave line by line.
    return [
        StoredLogLine(stream, i, ts0 + i * 10 + stream, b"%d" % i + b"x" * (size - 1))
        for i in range(first, first + count)
    ]


def test_the_cap_drops_the_oldest_lines_and_keeps_the_stored_log_under_it(store: Store) -> None:
    cap = 10_000
    for start in range(0, 1000, 50):
        store.append_logs("t", lines(1, start, 50), cap=cap)
        assert store.log_bytes("t") <= cap
    held = store.read_logs("t")
    assert sum(len(ln.data) for ln in held) == store.log_bytes("t") <= cap
    assert [ln.seq for ln in held] == list(range(held[0].seq, 1000))  # the newest, contiguous
    assert store.log_first_seqs("t") == {1: held[0].seq}
    assert store.log_counts("t") == {1: 1000}


def test_lines_the_cap_dropped_are_not_taken_back_from_a_resending_agent(store: Store) -> None:
    store.append_logs("t", lines(1, 0, 200), cap=5000)
    first = store.log_first_seqs("t")[1]
    assert first > 0
    assert store.append_logs("t", lines(1, 0, 200), cap=5000) == []
    assert store.read_logs("t")[0].seq == first


def test_a_stream_trimmed_away_keeps_its_count_for_the_agents_resume(store: Store) -> None:
    store.append_logs("t", lines(2, 0, 5, ts0=0))
    store.append_logs("t", lines(1, 0, 300, ts0=1000), cap=5000)
    assert all(ln.stream == 1 for ln in store.read_logs("t"))
    assert store.log_counts("t")[2] == 5  # not 0: the agent must not resend stderr from the start


def test_pages_read_the_whole_log_in_order_in_bounded_pieces(store: Store) -> None:
    store.append_logs("t", lines(1, 0, 25) + lines(2, 0, 25))
    cursor, got, pages = LogCursor.start(), [], 0
    while True:
        page, more = store.read_log_page("t", cursor, max_lines=7)
        assert len(page) <= 7
        got += page
        pages += 1
        if not more:
            break
        cursor = LogCursor(page[-1].ts_ns, page[-1].stream, page[-1].seq)
    assert got == store.read_logs("t")
    assert pages == 8
    page, _ = store.read_log_page("t", LogCursor.start(), max_bytes=250)
    assert len(page) == 3


def test_pages_honour_resume_offsets_and_since(store: Store) -> None:
    store.append_logs("t", lines(1, 0, 10) + lines(2, 0, 10))
    page, _ = store.read_log_page("t", LogCursor.start(), {1: 8, 2: 9})
    assert [(ln.stream, ln.seq) for ln in page] == [(1, 8), (1, 9), (2, 9)]
    page, _ = store.read_log_page("t", LogCursor.since(71))  # ts = i * 10 + stream
    assert [(ln.stream, ln.seq) for ln in page] == [(1, 7), (2, 7), (1, 8), (2, 8), (1, 9), (2, 9)]


def test_tail_cursor_starts_at_the_nth_last_line(store: Store) -> None:
    store.append_logs("t", lines(1, 0, 10) + lines(2, 0, 10))
    page, _ = store.read_log_page("t", store.tail_cursor("t", 3, LogCursor.start()))
    assert [(ln.stream, ln.seq) for ln in page] == [(2, 8), (1, 9), (2, 9)]
    page, _ = store.read_log_page("t", store.tail_cursor("t", 0, LogCursor.start()))
    assert page == []
    page, _ = store.read_log_page("t", store.tail_cursor("t", 100, LogCursor.start()))
    assert len(page) == 20
    page, _ = store.read_log_page("t", store.tail_cursor("t", 100, LogCursor.since(91)))
    assert [(ln.stream, ln.seq) for ln in page] == [(1, 9), (2, 9)]


def test_retention_purges_only_tasks_that_ended_long_enough_ago(store: Store) -> None:
    now = time.time()
    for name, finished in (("old", now - 8 * 86400), ("recent", now - 3600), ("running", None)):
        status = "done" if finished else "running"
        store.add_task(
            TaskRecord(id=name, name=name, configuration_json="{}", image="busybox", submitted_at=now - 9 * 86400,
                       status=status, finished_at=finished)  # type: ignore[arg-type]
        )  # fmt: skip
        store.append_logs(name, lines(1, 0, 12_000, size=10))
    assert purge_once(store, 7 * 86400, now) == 1
    assert store.read_logs("old") == [] and store.log_bytes("old") == 0
    assert len(store.read_logs("recent")) == len(store.read_logs("running")) == 12_000
    assert purge_once(store, 7 * 86400, now) == 0


def test_the_file_plateaus_under_a_cap_however_much_is_written(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    s = open_store(f"sqlite:///{path}")
    cap, chunk = 1024**2, lines(1, 0, 100, size=1000)
    sizes = []
    try:
        for round_ in range(60):  # 6 MB through a 1 MiB cap
            batch = [StoredLogLine(1, ln.seq + round_ * 100, ln.ts_ns + round_ * 10_000, ln.data) for ln in chunk]
            s.append_logs("t", batch, cap=cap)
            if round_ % 10 == 9:
                s._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
                sizes.append(path.stat().st_size)
    finally:
        s.close()
    assert sizes[-1] < 3 * cap, sizes
    assert sizes[-1] <= sizes[1] * 1.2, sizes  # no growth once the cap is reached
