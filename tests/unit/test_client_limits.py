"""What one API token may ask: the token bucket (a clock passed in, no sleeping), the rate's
spellings, and the pending-task cap with submits still in flight."""

from __future__ import annotations

import pytest

from controller.rate_limit import ClientRate, RateLimiter, TokenBucket, client_rate, parse_rate
from controller.server.pending_cap import PendingCap, PendingCapReached


def rate(per_second: float, burst: int) -> ClientRate:
    return ClientRate(per_second=per_second, burst=burst, text=f"{per_second:g}/s")


def test_a_full_bucket_admits_the_burst_then_refuses_with_the_wait() -> None:
    bucket = TokenBucket.full(rate(2, 3), now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)  # one call refills in 1/2 s
    assert bucket.take(100.25) == pytest.approx(0.25)  # a refused call spends nothing
    assert bucket.take(100.5) == 0.0
    assert bucket.take(100.5) == pytest.approx(0.5)


def test_refill_stops_at_the_burst() -> None:
    bucket = TokenBucket.full(rate(10, 2), now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    # An hour idle refills two calls, not 36000.
    assert [bucket.take(3600.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert bucket.take(3600.0) > 0


def test_the_steady_rate_holds_over_time() -> None:
    bucket = TokenBucket.full(rate(5, 5), now=0.0)
    admitted = sum(1 for step in range(1000) if bucket.take(step / 100) == 0.0)  # 100 asks a second for 10 s
    assert admitted in (54, 55)  # the burst of 5, then 5 a second for 10 s (the last one on the edge)


def test_a_clock_going_back_refills_nothing() -> None:
    bucket = TokenBucket.full(rate(1, 1), now=50.0)
    assert bucket.take(50.0) == 0.0
    assert bucket.take(10.0) > 0
    assert bucket.take(50.5) == pytest.approx(0.5)


def test_each_token_has_its_own_bucket() -> None:
    limiter = RateLimiter(rate(1, 2))
    assert [limiter.admit("a", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert limiter.admit("a", 0.0) > 0
    assert limiter.admit("b", 0.0) == 0.0  # another token is not slowed by the first
    assert limiter.refusal(0.42) == (
        "this API token is over the controller's rate limit of 1/s with bursts of 2 calls: try again in 0.4s"
    )


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("20/s", 20), ("20", 20), ("600/m", 10), ("1800 / h", 0.5), ("0.5/s", 0.5), ("3/minute", 0.05)],
)
def test_rate_spellings(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("fast", "'fast' is not a rate: write calls per second, minute or hour, e.g. 20/s, 600/m or off"),
        ("20/d", "'20/d' is not a rate"),
        ("-1/s", "'-1/s' is not a rate"),
        ("0/s", "'0/s' allows no calls at all: write off to turn the limit off"),
    ],
)
def test_rates_that_are_not(text: str, said: str) -> None:
    with pytest.raises(ValueError, match="^" + said.replace("(", r"\(").replace(")", r"\)")):
        parse_rate(text)


def test_client_rate_defaults_its_burst_to_five_seconds_and_off_is_none() -> None:
    assert client_rate("20/s", None) == ClientRate(20.0, 100, "20/s")
    assert client_rate("1/m", None) == ClientRate(pytest.approx(1 / 60), 1, "1/m")  # at least one call
    assert client_rate("20/s", 3) == ClientRate(20.0, 3, "20/s")
    assert client_rate(" 5 ", None) == ClientRate(5.0, 25, "5/s")  # said with its unit in the refusal
    assert client_rate("OFF", None) is None
    with pytest.raises(ValueError, match="a burst of 0 admits no call"):
        client_rate("20/s", 0)


def test_the_pending_cap_counts_the_store_and_submits_in_flight() -> None:
    stored = {"alice": 2, "bob": 0}
    cap = PendingCap(3, lambda token_id: stored[token_id])
    with cap.submitting("alice"):  # 2 stored + this one = 3: the last admitted
        # A concurrent submit, before the first is stored.
        with pytest.raises(PendingCapReached) as refused, cap.submitting("alice"):
            pass
        with cap.submitting("bob"):  # another token is not capped by alice's tasks
            pass
    assert str(refused.value) == (
        "this API token already has 3 tasks pending, the controller's cap of 3 per token "
        "(--max-pending-per-token): stop some or wait until they start, then submit again"
    )
    stored["alice"] = 3  # the first one stored, still pending
    with pytest.raises(PendingCapReached), cap.submitting("alice"):
        pass
    stored["alice"] = 2  # one of them started
    with cap.submitting("alice"):
        pass


def test_no_cap_admits_everything_and_never_counts() -> None:
    def never(token_id: str) -> int:
        raise AssertionError("counted without a cap")

    with PendingCap(None, never).submitting("alice"):
        pass


def test_request_sizes_past_the_plain_limit_are_named() -> None:
    from dstack_hybrid.v1 import hybrid_pb2 as pb

    from controller.server.request_size import MAX_PLAIN_BYTES, oversized

    assert oversized("GetTask", pb.GetTaskRequest(name="train-1")) == ""
    big = pb.GetTaskRequest(name="x" * MAX_PLAIN_BYTES)
    assert oversized("GetTask", big) == (
        f"the GetTask request takes {big.ByteSize()} bytes, past the 8 KiB limit for names and options"
    )
    # The configuration has its own cap and sentence, in the method: not counted here.
    assert oversized("Submit", pb.SubmitRequest(configuration_json="{" + " " * 900_000 + "}", name="a")) == ""
    named = pb.SubmitRequest(configuration_json="{}", name="n" * 10_000)
    assert oversized("Submit", named).startswith("the Submit request's fields besides the configuration take 100")
