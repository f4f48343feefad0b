"""systemd's notify protocol without libsystemd: one datagram to $NOTIFY_SOCKET.

Used by both daemons (the agent imports it from here, as it already imports
controller.pki). Outside systemd (NOTIFY_SOCKET unset) every call is a no-op."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("dstack.sdnotify")


def notify(state: str) -> bool:
    """Sends `state` (e.g. "READY=1\\nSTATUS=...") to the service manager. True if sent;
    False when not run by systemd or when sending failed. Never raises."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address[0] not in ("/", "@"):
        log.debug("sd_notify: unsupported NOTIFY_SOCKET %r", address)
        return False
    target = "\0" + address[1:] if address[0] == "@" else address  # "@" names an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), target)
        return True
    except OSError as exc:
        log.debug("sd_notify %r to %s failed: %s", state, address, exc)
        return False


def ready(status: str = "") -> bool:
    status = " ".join(status.split())  # one line: a newline would start another assignment
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def stopping() -> bool:
    return notify("STOPPING=1")
