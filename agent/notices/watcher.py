"""Polls the cloud's interruption notice while the agent is connected and sends what changes.

A background task of the session (SessionHooks.while_connected): the HTTP requests run in a
thread, so a slow metadata service never holds up heartbeats. The current notice outlives a stream
and is sent first on every new one, so a controller that restarted, or a stream that broke just
after the notice, learns it again. After its first poll on a stream the watcher states what it
found even when that is "no notice": the controller keeps a host's notice across reconnects (so a
new stream opens no window for new tasks), and only the agent can say that it is over."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.facts.cloud import dmi
from agent.facts.cloud.metadata import MetadataClient, MetadataError
from agent.facts.sources import FactSources
from agent.notices import aws, azure
from agent.notices.model import Notice, withdrawn

log = logging.getLogger("dstack.agent")

DEFAULT_POLL_S = 5.0  # what AWS recommends for the spot notice; Azure's is at least 15 minutes ahead
WATCHED = ("aws", "azure")

Send = Callable[[pb.AgentMessage], None]


def watched_cloud(sources: FactSources, cloud_mode: str) -> str | None:
    """The cloud whose notices this host polls: the one DMI names ("auto"), or the one agent.yaml
    declares; None (no request ever) on-prem, with `cloud: off`, or on a cloud without notices here."""
    if cloud_mode == "off":
        return None
    name = dmi.identify(sources.sysfs) if cloud_mode == "auto" else cloud_mode
    return name if name in WATCHED else None


class NoticeWatcher:
    def __init__(self, provider: str, sources: FactSources, interval_s: float = DEFAULT_POLL_S) -> None:
        self.provider = provider
        self.sources = sources
        self.interval_s = interval_s
        self.current: Notice | None = None
        self._vm_name = ""  # Azure: learned once
        self._failing = ""  # the last failure logged, so a dead service is one warning, not one per poll

    def poll(self) -> Notice | None:
        """One look at the metadata service (blocking). MetadataError when it cannot say."""
        client = MetadataClient(self.sources.metadata_timeout_s)
        if self.provider == "aws":
            return aws.fetch(self.sources.aws_endpoint, client)
        if not self._vm_name:
            self._vm_name = azure.vm_name(self.sources.azure_endpoint, client)
        return azure.fetch(self.sources.azure_endpoint, client, self._vm_name)

    async def run(self, send: Send) -> None:
        """Until cancelled (the stream ended): the current notice at once, what the first poll
        finds, then every change."""
        said: Notice | bool | None = False  # False: nothing said on this stream yet
        if self.current is not None:
            send(pb.AgentMessage(notice=self.current.to_proto()))
            said = self.current
        while True:
            try:
                notice = await asyncio.to_thread(self.poll)
            except MetadataError as exc:
                if exc.reason != self._failing:
                    log.warning("%s interruption notices: %s (asked %s); trying again", self.provider, exc.reason,
                                exc.url)  # fmt: skip
                    self._failing = exc.reason
            else:
                if self._failing:
                    log.info("%s interruption notices: the metadata service answers again", self.provider)
                    self._failing = ""
                if notice != self.current:
                    self._log_change(notice)
                    self.current = notice
                if said is False or notice != said:
                    send(pb.AgentMessage(notice=notice.to_proto() if notice else withdrawn(self.provider)))
                    said = notice
            await asyncio.sleep(self.interval_s)

    def _log_change(self, notice: Notice | None) -> None:
        if notice is not None:
            log.warning("%s interruption notice: %s", self.provider, notice.text)
        elif self.current is not None:
            log.warning("%s interruption notice withdrawn: %s", self.provider, self.current.text)
