"""dstack's `retry` field as the task file says it, and the pure decision whether a failed attempt
gets another one (controller/scheduling/retry.py), with a clock the test holds."""

from __future__ import annotations

import pytest

from controller.configs.loader import ConfigError, parse_task_text
from controller.configs.retry import RetryPolicy
from controller.scheduling.retry import RetryCause, decide, window_end

TASK = "type: task\nimage: alpine:3.20\ncommands: [echo hi]\n"


def policy_of(retry_yaml: str) -> RetryPolicy | None:
    return parse_task_text(TASK + retry_yaml, "task.yaml").retry


@pytest.mark.parametrize(
    ("yaml", "events", "duration"),
    [
        ("retry: true\n", ("no-capacity", "interruption", "error"), 3600),  # dstack: every event, 1h
        ("retry:\n  on_events: [interruption]\n", ("interruption",), 3600),  # duration defaults to 1h
        ("retry:\n  duration: 2h\n", ("no-capacity", "interruption", "error"), 7200),  # events default to all
        ("retry:\n  on_events: [error, no-capacity]\n  duration: 90\n", ("error", "no-capacity"), 90),
    ],
)
def test_retry_is_read_in_dstacks_forms_with_its_defaults(yaml: str, events: tuple[str, ...], duration: int) -> None:
    policy = policy_of(yaml)
    assert policy is not None and (policy.on_events, policy.duration) == (events, duration)


@pytest.mark.parametrize("yaml", ["retry: false\n", ""])
def test_no_retry(yaml: str) -> None:
    assert policy_of(yaml) is None


@pytest.mark.parametrize(
    ("yaml", "words"),
    [
        ("retry:\n  on_events: []\n", "on_events cannot be empty"),
        ("retry:\n  on_events: [preemption]\n", 'retry.on_events[0] "preemption"'),
        ("retry:\n  on_events: [error]\n  max_attempts: 3\n", "max_attempts"),
        ("retry:\n  duration: soon\n", 'invalid duration "soon"'),
        ("retry: often\n", "retry must be true, false or a mapping"),
    ],
)
def test_what_dstack_would_not_take_is_refused_naming_it(yaml: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_task_text(TASK + yaml, "task.yaml")
    assert words in str(err.value) and "\n" not in str(err.value).strip()


HOUR = RetryPolicy(on_events=("interruption", "error"), duration=3600)


@pytest.mark.parametrize(
    ("policy", "cause", "since", "now", "retry", "why_not"),
    [
        (HOUR, RetryCause.INTERRUPTION, 1000.0, 1015.0, True, ""),
        (HOUR, RetryCause.ERROR, 1000.0, 1000.0, True, ""),
        (HOUR, RetryCause.NO_CAPACITY, 1000.0, 1000.0, False, ""),  # not listed: as without retry
        (None, RetryCause.ERROR, 1000.0, 1000.0, False, ""),
        (HOUR, RetryCause.INTERRUPTION, 1000.0, 4600.0, True, ""),  # exactly the duration: still in
        (HOUR, RetryCause.INTERRUPTION, 1000.0, 4600.5, False, "retry duration 1h exceeded"),
    ],
)
def test_decide(
    policy: RetryPolicy | None, cause: RetryCause, since: float, now: float, retry: bool, why_not: str
) -> None:
    got = decide(policy, cause, since, now)
    assert (got.retry, got.why_not) == (retry, why_not)


def test_the_wait_for_a_place_is_bounded_from_the_failure_or_for_no_capacity_from_the_submission() -> None:
    no_capacity = RetryPolicy(on_events=("no-capacity",), duration=600)
    assert window_end(None, 50.0, 10.0) is None  # without retry a pending task waits, as today
    assert window_end(HOUR, None, 10.0) is None  # a first attempt without no-capacity waits too
    assert window_end(HOUR, 50.0, 10.0) == 3650.0  # a retried attempt: duration from the failure
    assert window_end(no_capacity, None, 10.0) == 610.0  # dstack's no-capacity: from the submission
