"""How many calls one API token may make: a token bucket per token, refilled at a steady rate.

A client in a loop (a CI script polling `dstackctl ps`, a runaway retry) would otherwise hold the
controller's one event loop and its database for everyone. Each token gets `burst` calls at once
and then `rate` a second, so a person or a script working normally never notices, and a loop is
slowed to the rate instead of being cut off. A streaming call (logs -f) is one call however long
it streams. Pure: the clock is passed in, so the unit tests run without sleeping.

Buckets are per controller process: replicas sharing one database each allow the rate (a
client's calls spread across N replicas get N times it)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$")
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}
# Without a burst of its own: five seconds' worth of the rate, so a command that makes a few
# calls, or a handful of commands typed together, is never slowed.
DEFAULT_BURST_SECONDS = 5


@dataclass(frozen=True)
class ClientRate:
    per_second: float
    burst: int
    text: str  # as the operator wrote it ("20/s"), for the refusal's sentence

    def describe(self) -> str:
        return f"{self.text} with bursts of {self.burst}"


def parse_rate(text: str) -> float:
    """`20/s`, `600/m`, `1000/h` or a bare number (a second) -> calls a second; ValueError saying why."""
    found = _RATE.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a rate: write calls per second, minute or hour, e.g. 20/s, 600/m or off")
    per_second = float(found.group(1)) / _PER[found.group(2) or "s"]
    if per_second <= 0:
        raise ValueError(f"{text!r} allows no calls at all: write off to turn the limit off")
    return per_second


def client_rate(rate_text: str, burst: int | None) -> ClientRate | None:
    """The limit from the operator's words; None for `off`. ValueError saying what is wrong."""
    if rate_text.strip().lower() == "off":
        return None
    per_second = parse_rate(rate_text)
    if burst is None:
        burst = max(1, math.ceil(per_second * DEFAULT_BURST_SECONDS))
    if burst < 1:
        raise ValueError(f"a burst of {burst} admits no call: give at least 1")
    text = rate_text.strip().replace(" ", "")
    return ClientRate(per_second=per_second, burst=burst, text=text if "/" in text else f"{text}/s")


@dataclass
class TokenBucket:
    """`burst` calls at most, refilled at `per_second`; starts full."""

    per_second: float
    burst: int
    level: float
    updated: float

    @classmethod
    def full(cls, rate: ClientRate, now: float) -> TokenBucket:
        return cls(rate.per_second, rate.burst, float(rate.burst), now)

    def take(self, now: float) -> float:
        """Spends one call: 0.0 when admitted, else the seconds until one is (nothing is spent)."""
        # A clock that went back (it should not: callers pass a monotonic one) refills nothing.
        self.level = min(float(self.burst), self.level + max(0.0, now - self.updated) * self.per_second)
        self.updated = max(self.updated, now)
        if self.level >= 1.0:
            self.level -= 1.0
            return 0.0
        return (1.0 - self.level) / self.per_second


class RateLimiter:
    """One bucket per API token id. Only tokens that authenticated get one, so there are at most
    as many buckets as valid tokens."""

    def __init__(self, rate: ClientRate) -> None:
        self.rate = rate
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, token_id: str, now: float) -> float:
        """0.0 when `token_id` may make a call now, else how many seconds until it may."""
        bucket = self._buckets.get(token_id)
        if bucket is None:
            bucket = self._buckets[token_id] = TokenBucket.full(self.rate, now)
        return bucket.take(now)

    def refusal(self, wait_s: float) -> str:
        """The sentence a refused call gets."""
        return (
            f"this API token is over the controller's rate limit of {self.rate.describe()} calls: "
            f"try again in {max(wait_s, 0.1):.1f}s"
        )
