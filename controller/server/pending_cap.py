"""How many tasks one API token may have waiting for placement.

Every pending task is looked at again on each scheduling pass and listed by every `ps`, so a
generator submitting without end would slow placement and listing for everyone. The count comes
from the store (tasks record the token that submitted them), plus the submits of that token still
being handled, so concurrent submits cannot slip past the cap together."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class PendingCapReached(Exception):
    """A submit past the cap; `str()` is the sentence the caller gets."""


class PendingCap:
    def __init__(self, cap: int | None, pending_of: Callable[[str], int]) -> None:
        self.cap = cap  # None: no cap
        self._pending_of = pending_of  # token id -> its pending tasks in the store
        self._submitting: Counter[str] = Counter()

    @contextmanager
    def submitting(self, token_id: str) -> Iterator[None]:
        """Around one submit, from the check until the task is stored; PendingCapReached when
        the token already has `cap` tasks pending or being submitted."""
        if self.cap is not None:
            pending = self._pending_of(token_id) + self._submitting[token_id]
            if pending >= self.cap:
                raise PendingCapReached(refusal(pending, self.cap))
        self._submitting[token_id] += 1
        try:
            yield
        finally:
            self._submitting[token_id] -= 1
            if not self._submitting[token_id]:
                del self._submitting[token_id]


def refusal(pending: int, cap: int) -> str:
    return (
        f"this API token already has {pending} tasks pending, the controller's cap of {cap} per token "
        "(--max-pending-per-token): stop some or wait until they start, then submit again"
    )
