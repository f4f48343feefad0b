"""The per-task log cap: parsing it, saying it, and how much to drop when a task passes it.

The oldest lines go. Trimming frees a little more than the excess (a step below the cap), so a
task writing steadily trims once per step, not on every chunk it sends."""

from __future__ import annotations

import re

DEFAULT_LOG_CAP = 100 * 1024**2
TRIM_STEP_MAX = 1024**2  # at most this far below the cap: one trim deletes at most ~1 MiB of rows

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_CAP_RE = re.compile(r"(\d+)\s*(?:([kmgt])(?:i?b)?|b)?")


def parse_cap(text: str) -> int:
    """Bytes from `100MiB`, `100MB`, `100M`, `65536` (binary multiples, as Docker's max-size)."""
    match = _CAP_RE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f'"{text}" is not a size (e.g. 100MiB, 512KiB, 2GiB)')
    size = int(match.group(1)) * _UNITS[match.group(2) or ""]
    if size <= 0:
        raise ValueError(f'"{text}" must be more than zero')
    return size


def format_cap(size: int) -> str:
    """`100 MiB`, `64 KiB`, `1000 B`: the largest unit that says it exactly."""
    for unit, name in ((1024**4, "TiB"), (1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} B"


def bytes_to_free(total: int, cap: int) -> int:
    """0 while the task's stored log fits; else how many bytes of its oldest lines to drop."""
    if total <= cap:
        return 0
    step = min(cap // 10, TRIM_STEP_MAX)
    return total - (cap - step)


def lines_to_drop(sizes_oldest_first: list[int], need: int) -> int:
    """How many of the oldest lines free at least `need` bytes (all of them if they cannot)."""
    freed = 0
    for count, size in enumerate(sizes_oldest_first, 1):
        freed += size
        if freed >= need:
            return count
    return len(sizes_oldest_first)


def dropped_notice(count: int, cap: int) -> str:
    return f"{count} lines dropped (log cap {format_cap(cap)})"
