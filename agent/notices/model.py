"""One interruption notice, as the agent reports it (HostNotice on the wire)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from dstack_hybrid.v1 import hybrid_pb2 as pb


@dataclass(frozen=True)
class Notice:
    provider: str  # aws | azure
    kind: str  # spot-terminate, spot-stop, spot-hibernate, maintenance-reboot, preempt, terminate, ...
    not_before_ms: int  # when the cloud acts, at the earliest; 0 when it did not say (already started)
    text: str  # one line for people: "spot terminate at 12:34:56 UTC"

    def to_proto(self) -> pb.HostNotice:
        return pb.HostNotice(provider=self.provider, kind=self.kind, not_before_ms=self.not_before_ms, text=self.text)


def withdrawn(provider: str) -> pb.HostNotice:
    """The message that takes a host's notice back (its maintenance event completed or was canceled)."""
    return pb.HostNotice(provider=provider)


def at_text(epoch_s: float, with_date: bool) -> str:
    """`12:34:56 UTC`, or `2019-01-21 09:00:43 UTC` for events that may be days away."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC" if with_date else "%H:%M:%S UTC", time.gmtime(epoch_s))


def earliest(notices: list[Notice]) -> Notice | None:
    """The notice to act on when there are several: the one that comes first (one that has started,
    not_before 0, comes before any scheduled one)."""
    return min(notices, key=lambda n: n.not_before_ms, default=None)
