"""What every part of the burst reconciler shares: the controller's port, the store, the config,
the backends, the clock and the offerings blocked after a failure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from controller.backends.config import ControllerFileConfig
from controller.backends.registry import Backends
from controller.provisioning.port import ControllerPort
from controller.store import Store


@dataclass
class BurstContext:
    port: ControllerPort
    store: Store
    config: ControllerFileConfig
    backends: Backends
    tag: str  # the controller's id on what it launches (TAG_CONTROLLER)
    clock: Callable[[], float]
    # Offering key -> until when it is not tried (a capacity error, a launch that never registered).
    # Memory only on purpose: after a restart every offering is worth one more try.
    blocked: dict[str, float] = field(default_factory=dict)

    def block(self, key: str, now: float) -> None:
        self.blocked[key] = now + self.config.burst.blocked_for
