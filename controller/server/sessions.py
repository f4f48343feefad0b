"""Connected agents: one outbound queue per host's stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from dstack_hybrid.v1 import hybrid_pb2 as pb


@dataclass(eq=False)
class AgentSession:
    host_id: str
    last_seen: float
    outbox: asyncio.Queue[pb.ControllerMessage | None] = field(default_factory=asyncio.Queue)
    # Tasks whose reports the controller could not store (its storage failing): assigned again
    # once a write succeeds, so the agent re-adopts the container and reports it again.
    unsaved: set[str] = field(default_factory=set)
    # The cloud's interruption notice the agent sent on this stream: it lives as long as the stream
    # (an agent sends it again first thing on its next one, so a restarted controller learns it too).
    notice: pb.HostNotice | None = None

    @property
    def notice_text(self) -> str:
        return self.notice.text if self.notice is not None else ""

    def send(self, message: pb.ControllerMessage) -> None:
        self.outbox.put_nowait(message)

    def close(self) -> None:
        self.outbox.put_nowait(None)


class Sessions:
    def __init__(self) -> None:
        self._by_host: dict[str, AgentSession] = {}

    def attach(self, session: AgentSession) -> None:
        """A host has one stream: a newer one replaces (and ends) the older."""
        old = self._by_host.get(session.host_id)
        if old is not None:
            old.close()
        self._by_host[session.host_id] = session

    def detach(self, session: AgentSession) -> None:
        if self._by_host.get(session.host_id) is session:
            del self._by_host[session.host_id]

    def get(self, host_id: str) -> AgentSession | None:
        return self._by_host.get(host_id)

    def send(self, host_id: str, message: pb.ControllerMessage) -> bool:
        session = self._by_host.get(host_id)
        if session is None:
            return False
        session.send(message)
        return True
