"""Capped exponential backoff with jitter, so a restarted controller is not hit by every agent (or
every attached dstackctl) at once."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base_s: float = 0.5, cap_s: float = 10.0, rng: random.Random | None = None) -> None:
        if not (base_s > 0 and cap_s > 0):  # also refuses NaN
            raise ValueError(f"backoff needs a positive base ({base_s}) and cap ({cap_s})")
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 62)))
        self.attempt += 1  # the exponent is bounded above: an agent may retry for days
        # "Equal jitter": at least half the ceiling, so retries never collapse to a busy loop.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0
