"""Put on PYTHONPATH of a program under test: every attempt to resolve a name or open a
network connection is written to $DSTACK_TEST_NETWORK_LOG, so a test can assert there was none."""

import os
import sys

_LOG = os.environ.get("DSTACK_TEST_NETWORK_LOG")
_EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.sendto"}


def _hook(event: str, args: tuple) -> None:
    if _LOG and event in _EVENTS:
        with open(_LOG, "a") as f:
            f.write(f"{event} {args!r}\n")


sys.addaudithook(_hook)
