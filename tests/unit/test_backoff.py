"""Reconnect backoff: equal jitter within [ceiling/2, ceiling], doubling up to the cap, reset."""

from __future__ import annotations

import itertools
import random

import pytest
from dstack_hybrid.shared.backoff import Backoff


def ceilings(base: float, cap: float, n: int) -> list[float]:
    return [min(cap, base * 2**k) for k in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
def test_delays_stay_within_half_ceiling_and_ceiling(seed: int) -> None:
    b = Backoff(base_s=0.5, cap_s=10.0, rng=random.Random(seed))
    for ceiling in ceilings(0.5, 10.0, 40):
        delay = b.next_delay()
        assert ceiling / 2 <= delay <= ceiling


def test_ceiling_doubles_then_caps() -> None:
    # With an rng that always returns the top of the range, the delay is the ceiling itself.
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    b = Backoff(base_s=0.5, cap_s=10.0, rng=Top())
    assert [b.next_delay() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert b.attempt == 8


def test_growth_is_exponential_on_average() -> None:
    b = Backoff(base_s=1.0, cap_s=1e6, rng=random.Random(3))
    delays = [b.next_delay() for _ in range(12)]
    for k, d in enumerate(delays):
        assert 2**k / 2 <= d <= 2**k
    # Below the cap, delay k+1 is at least ceiling(k+1)/2 = ceiling(k) >= delay k: never shrinks.
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    assert delays[-1] > 100 * delays[0]


def test_jitter_spreads_delays_at_the_cap() -> None:
    b = Backoff(base_s=1.0, cap_s=8.0, rng=random.Random(11))
    for _ in range(4):
        b.next_delay()
    at_cap = [b.next_delay() for _ in range(500)]
    assert min(at_cap) >= 4.0 and max(at_cap) <= 8.0
    assert min(at_cap) < 4.5 and max(at_cap) > 7.5
    assert len(set(at_cap)) > 400


def test_same_seed_same_delays() -> None:
    a = Backoff(rng=random.Random(5))
    b = Backoff(rng=random.Random(5))
    assert [a.next_delay() for _ in range(10)] == [b.next_delay() for _ in range(10)]


def test_reset_starts_from_base_again() -> None:
    b = Backoff(base_s=0.5, cap_s=10.0, rng=random.Random(9))
    for _ in range(10):
        b.next_delay()
    b.reset()
    assert b.attempt == 0
    first = b.next_delay()
    assert 0.25 <= first <= 0.5
    assert 0.5 <= b.next_delay() <= 1.0


def test_default_rng_and_settings() -> None:
    b = Backoff()
    assert (b.base_s, b.cap_s, b.attempt) == (0.5, 10.0, 0)
    assert 0.25 <= b.next_delay() <= 0.5


def test_base_above_cap_is_capped_from_the_start() -> None:
    b = Backoff(base_s=30.0, cap_s=10.0, rng=random.Random(1))
    assert all(5.0 <= b.next_delay() <= 10.0 for _ in range(5))


def test_many_attempts_stay_at_the_cap() -> None:
    b = Backoff(base_s=0.5, cap_s=10.0, rng=random.Random(2))
    for _ in range(1100):
        assert 0.0 < b.next_delay() <= 10.0
