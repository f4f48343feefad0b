"""dstack's `retry` field of a task: `retry: true|false` or `{on_events: [...], duration: ...}`.

As dstack reads it (core/models/profiles.py ProfileRetry and server/services/profiles.py get_retry):
`retry: true` means every event for one hour; a mapping without `on_events` means every event; a
mapping without `duration` means one hour (dstack's DEFAULT_RETRY_DURATION, 3600 s); `on_events: []`
is an error; `retry: false` (or leaving it out) is no retry."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from controller.configs.common import ConfigModel, Duration

RetryEvent = Literal["no-capacity", "interruption", "error"]
ALL_EVENTS: tuple[RetryEvent, ...] = ("no-capacity", "interruption", "error")
DEFAULT_RETRY_DURATION_S = 3600  # dstack's DEFAULT_RETRY_DURATION


class RetryPolicy(ConfigModel):
    on_events: tuple[RetryEvent, ...] = ALL_EVENTS
    duration: Duration = DEFAULT_RETRY_DURATION_S

    @field_validator("on_events", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and not value:
            raise ValueError("on_events cannot be empty (leave retry out, or write retry: false, for no retry)")
        return value

    def __str__(self) -> str:
        return f"{','.join(self.on_events)} for {duration_text(self.duration)}"


def parse_retry(value: Any) -> Any:
    """`true` -> every event for an hour, `false`/None -> no retry; a mapping is validated as it is."""
    if value is True:
        return RetryPolicy()
    if value is False or value is None:
        return None
    if not isinstance(value, dict | RetryPolicy):
        raise ValueError("retry must be true, false or a mapping with on_events and duration")
    return value


def duration_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
