"""What a cloud's API said, kept for a while: its regions, a region's sizes and prices, images.

Shared by the backends (aws/, azure/). Each part owns one cache; the reconciler calls the backend
from threads, hence the lock. A value is never None (a miss reads as None)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class TtlCache(Generic[Value]):
    def __init__(self, clock: Callable[[], float], ttl: float) -> None:
        self.clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Value]] = {}  # key -> (expires at, value)

    def get(self, key: str) -> Value | None:
        """The value while it is fresh; None when missing or expired."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or self.clock() >= entry[0]:
            return None
        return entry[1]

    def put(self, key: str, value: Value, ttl: float | None = None, since: float | None = None) -> Value:
        """Keeps `value` for `ttl` (default: the cache's) from `since` (default: now)."""
        start = self.clock() if since is None else since
        with self._lock:
            self._entries[key] = (start + (self.ttl if ttl is None else ttl), value)
        return value
