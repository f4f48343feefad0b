"""A launch's join token presented by a registering host: the launch record when the host's
metadata names that launch's instance, ClaimRefused otherwise. The token names its launch by a
field (TokenRecord.launch_id), never by text parsed back."""

from __future__ import annotations

import logging

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.provisioning.context import BurstContext
from controller.statuses import InstanceStatus
from controller.store.records import InstanceRecord, TokenRecord

log = logging.getLogger("dstack.controller.provisioning")


class ClaimRefused(Exception):
    """A launch's join token presented by a host that is not (or not yet) that launch's instance."""

    def __init__(self, reason: str, retry: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry  # the launch is not recorded yet: the agent's next attempt may pass


class Claims:
    def __init__(self, ctx: BurstContext) -> None:
        self.ctx = ctx

    def claim(self, token: TokenRecord, facts: pb.HostFacts) -> InstanceRecord | None:
        """For a join token made for a launch: the launch record, or ClaimRefused saying why this
        host is not its instance. A copy of the user-data read off another machine is no use: the
        host's metadata must name the instance. None for a token made for no launch."""
        if not token.launch_id:
            return None
        record = self.ctx.store.get_instance(token.launch_id)
        if record is None or record.gone:
            raise ClaimRefused("this join token's launch is over")
        said = facts.cloud.instance_id if facts.HasField("cloud") else ""
        if not record.cloud_id:
            raise ClaimRefused("the launch is not recorded yet; retry", retry=True)
        if said != record.cloud_id or (facts.cloud.provider and facts.cloud.provider != record.backend):
            raise ClaimRefused(
                f"this join token is for {record.backend} instance {record.cloud_id}; "
                f"the host's metadata says {said or 'no instance'}"
            )
        return record

    def registered(self, record: InstanceRecord, host_id: str) -> None:
        record.status, record.host_id, record.registered_at = InstanceStatus.RUNNING, host_id, self.ctx.clock()
        self.ctx.store.put_instance(record)
        log.info("instance %s (launch %s) registered as host %s", record.cloud_id, record.id, host_id)
