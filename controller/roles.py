"""What an API token may do: its role. One vocabulary for the store, the services and the
token commands (the word is what `token list` prints and the store's column holds).

admin: everything a user may do, and what changes the cluster for everyone: fleets, volumes,
backends' cloud calls, removing hosts. user: tasks (submit, stop, logs, ps, events) and reading
what they are placed on (hosts, fleets, volumes, offers). A new API token is a user unless its
maker asks for admin: least privilege, so a token handed to a CI job cannot reshape the cluster."""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    USER = "user"
    ADMIN = "admin"

    def __str__(self) -> str:  # the word, in f-strings too (see controller.statuses)
        return str(self.value)

    def covers(self, needed: Role) -> bool:
        """This role may make calls that need `needed` (admin covers user)."""
        return self == Role.ADMIN or needed == Role.USER


# `token create --kind api` without --role.
DEFAULT_API_ROLE = Role.USER
