"""Capped exponential backoff with jitter for dstackctl's reconnects.

The agent has its own (agent/backoff.py); dstackctl may not import the agent, so this small
copy of the idea lives here until a shared layer holds one for both."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base_s: float = 0.5, cap_s: float = 5.0, rng: random.Random | None = None) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError(f"backoff needs 0 < base ({base_s}) <= cap ({cap_s})")
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        # The exponent stops growing once the cap is reached, so it never overflows.
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        # Equal jitter: at least half the ceiling, so many clients of one restarted controller
        # spread out and none of them spins.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0
