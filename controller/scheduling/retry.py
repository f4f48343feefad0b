"""Whether a failed attempt of a task gets another one: pure, from the task's `retry` policy, the
cause, when the failed attempt was last heard of, and the clock.

dstack's rule (server/background/tasks/process_runs.py `_should_retry_job`): an event listed in
`on_events` is retried while the time since the failed attempt was last processed stays within
`duration`; for `no-capacity` the time counts from the run's submission instead. So an interrupted
or failed attempt is always retried at once, and `duration` bounds how long the next attempt may
wait for a place; a task that keeps failing is retried as long as each attempt gets to run."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from controller.configs.retry import RetryPolicy, duration_text


class RetryCause(enum.Enum):
    """dstack's RetryEvent, as the controller learns of it."""

    NO_CAPACITY = "no-capacity"  # no host or cloud offer fits
    INTERRUPTION = "interruption"  # the host was lost, or a spot/maintenance notice ended it
    ERROR = "error"  # a non-zero exit, or the container could not start


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    why_not: str = ""  # when not: what a user reads after the failure's own reason ("" without retry)


NO_RETRY = RetryDecision(False)


def decide(policy: RetryPolicy | None, cause: RetryCause, since: float, now: float) -> RetryDecision:
    """Another attempt for a failure by `cause`, the failed attempt last heard of at `since`
    (for NO_CAPACITY: the task's submission)?"""
    if policy is None or cause.value not in policy.on_events:
        return NO_RETRY
    if now - since > policy.duration:
        return RetryDecision(False, f"retry duration {duration_text(policy.duration)} exceeded")
    return RetryDecision(True)


def window_end(policy: RetryPolicy | None, retry_since: float | None, submitted_at: float) -> float | None:
    """Until when a pending task may wait for a place before it ends `failed`, or None (forever).

    A retried attempt waits `duration` from its failure (dstack's anchor for interruption and
    error). A first attempt waits forever, as every pending task here does (hosts join a running
    controller), unless the policy lists `no-capacity`: then `duration` from the submission, as
    dstack bounds a run that finds no offer."""
    if policy is None:
        return None
    if retry_since is not None:
        return retry_since + policy.duration
    if RetryCause.NO_CAPACITY.value in policy.on_events:
        return submitted_at + policy.duration
    return None
