"""Which role each ClientService call needs: one table, read by the auth interceptor
(controller/server/auth.py) before any method runs, so no method checks roles itself.

Users run tasks and read what tasks are placed on; admins also change what everyone shares
(fleets, volumes, hosts) and spend the cloud accounts' API calls. A call missing here is refused
to every token (a unit test fails first: every RPC of the service must have a row)."""

from __future__ import annotations

from typing import NamedTuple

from controller.roles import Role


class Access(NamedTuple):
    role: Role  # the least role that may make the call
    # What the call does, as the denial names it: "applying fleets and volumes needs the admin
    # role; this API token has the user role".
    action: str


CLIENT_SERVICE = "dstack_hybrid.v1.ClientService"

CLIENT_RPCS: dict[str, Access] = {
    # Tasks: a user's own work.
    "Submit": Access(Role.USER, "submitting tasks"),
    "ListTasks": Access(Role.USER, "listing tasks"),
    "GetTask": Access(Role.USER, "reading a task"),
    "StreamLogs": Access(Role.USER, "reading task logs"),
    "StopTask": Access(Role.USER, "stopping tasks"),
    "TaskHistory": Access(Role.USER, "reading a task's events"),
    # Reading where tasks can run: users choose fleets, volumes and zones in their task files.
    "ListHosts": Access(Role.USER, "listing hosts"),
    "ListFleets": Access(Role.USER, "listing fleets"),
    "ListVolumes": Access(Role.USER, "listing volumes"),
    "Offers": Access(Role.USER, "listing offers"),
    # What changes the cluster for everyone, or asks the clouds' APIs.
    "RemoveHost": Access(Role.ADMIN, "removing hosts"),
    "Apply": Access(Role.ADMIN, "applying fleets and volumes"),
    "Delete": Access(Role.ADMIN, "deleting fleets and volumes"),
    "CheckInstanceTypes": Access(Role.ADMIN, "checking instance types with the cloud backends"),
}


def denial(rpc: str, role: Role) -> str:
    """Why a token of `role` may not call `rpc`, or "" when it may."""
    access = CLIENT_RPCS.get(rpc)
    if access is None:
        return f"{rpc} is not a call this controller grants to any token"
    if role.covers(access.role):
        return ""
    return f"{access.action} needs the {access.role} role; this API token has the {role} role"
