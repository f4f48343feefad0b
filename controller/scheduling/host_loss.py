"""Which offline hosts are lost now: pure, from the host views, when each was last heard, the
clock and the settings. The scheduler loop does the I/O (controller/scheduler/host_loss.py).

Nomad's `disconnect.lost_after` and Kubernetes' eviction toleration are the same idea: a host
that is silent for a short while keeps its tasks; one that stays silent gives them up."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.placement import HostView


@dataclass(frozen=True)
class LossSettings:
    grace_s: float  # silent this long: offline, no new tasks
    lost_after_s: float  # silent this long: lost, its tasks end
    # When this controller started: a restarted controller heard nobody while it was down, so every
    # host gets the grace period to reconnect before the stored last-heard times count against it.
    started_at: float = 0.0

    def deadline(self, last_heard: float) -> float:
        """When a host last heard at `last_heard` is lost, unless it speaks again."""
        return max(last_heard + self.lost_after_s, self.started_at + self.grace_s)


@dataclass(frozen=True)
class LostHost:
    host_id: str
    name: str
    last_heard: float  # epoch seconds; 0 when the host never spoke


def lost_hosts(
    views: Iterable[HostView], last_heard: Mapping[str, float], now: float, settings: LossSettings
) -> list[LostHost]:
    """The offline hosts whose deadline has passed, in name order."""
    lost = [
        LostHost(v.id, v.name, last_heard.get(v.id, 0.0))
        for v in views
        if not v.live and now >= settings.deadline(last_heard.get(v.id, 0.0))
    ]
    return sorted(lost, key=lambda h: h.name)


def clock_text(at: float) -> str:
    """HH:MM:SS in UTC, as the host-lost reason shows a time."""
    return time.strftime("%H:%M:%S", time.gmtime(at))
