"""Human forms of times, sizes and reasons for dstackctl's tables and status lines."""

from __future__ import annotations

import time


def ago(ms: int, now: float | None = None) -> str:
    if not ms:
        return "-"
    seconds = max(0, int((now or time.time()) - ms / 1000))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def task_reason(placement: str, provisioning: str) -> str:
    """A task's two reasons on one line, as users have always read them: why no registered host
    fits, then what cloud bursting says ("<placement>; cloud: <provisioning>")."""
    if not provisioning:
        return placement
    return f"{placement}; cloud: {provisioning}" if placement else f"cloud: {provisioning}"


def submitter(token_id: str, description: str) -> str:
    """Who submitted a task: the API token's id, with its description ("3f9a0c1e (ci)"); "-" for a
    task stored before tasks recorded it."""
    if not token_id:
        return "-"
    return f"{token_id} ({description})" if description else token_id


def size(n: int) -> str:
    for unit, scale in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if value >= 10 else f"{value:.1f}{unit}"
    return f"{n}B"


def cpus(n: float) -> str:
    return str(int(n)) if n == int(n) else f"{n:.1f}"
