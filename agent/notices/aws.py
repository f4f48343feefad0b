"""AWS: the spot instance-action and the scheduled maintenance events, from IMDSv2.

Documented answers (EC2 User Guide, "Spot Instance interruption notices" and "Scheduled events"):
- `latest/meta-data/spot/instance-action`: 404 until the instance is to be interrupted, then
  `{"action": "terminate", "time": "2017-09-18T08:22:00Z"}` (action terminate, stop or hibernate).
  The notice stays until the instance is gone: it never clears.
- `latest/meta-data/events/maintenance/scheduled`: a JSON list (`[]` when there is none) of
  `{"NotBefore": "21 Jan 2019 09:00:43 GMT", "Code": "system-reboot", "Description": "scheduled reboot",
  "EventId": "instance-event-0d59937288b749b32", "NotAfter": "21 Jan 2019 09:17:23 GMT", "State": "active"}`;
  completed and canceled events stay listed a while with State "completed" / "canceled"."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from agent.facts.cloud.aws import TOKEN_HEADER, TOKEN_PATH, TOKEN_TTL_HEADER, TOKEN_TTL_S
from agent.facts.cloud.metadata import MetadataClient, MetadataError, base_url
from agent.notices.model import Notice, at_text, earliest

INSTANCE_ACTION_PATH = "/latest/meta-data/spot/instance-action"
SCHEDULED_PATH = "/latest/meta-data/events/maintenance/scheduled"

SPOT_ACTIONS = ("terminate", "stop", "hibernate")

# The event codes that stop the instance's processes, and so the tasks: a reboot (of the host or of
# the instance), a stop, a retirement (stopped or terminated for good). `system-maintenance` is left
# out: network maintenance keeps the instance running, and the power kind cannot be told from it by
# the code alone; a task killed for nothing would be the worse mistake.
MAINTENANCE_KINDS = {
    "system-reboot": "maintenance-reboot",
    "instance-reboot": "maintenance-reboot",
    "instance-stop": "maintenance-stop",
    "instance-retirement": "maintenance-retirement",
}
PENDING_STATE = "active"  # "completed" and "canceled" events no longer interrupt anything


def fetch(endpoint: str, client: MetadataClient) -> Notice | None:
    """The notice this instance has now, or None. MetadataError when IMDS cannot say."""
    base = base_url(endpoint)
    token_url = base + TOKEN_PATH
    token = client.request("PUT", token_url, {TOKEN_TTL_HEADER: TOKEN_TTL_S})
    if not token or len(token) > 1024 or not all("!" <= c <= "~" for c in token):
        raise MetadataError(token_url, "unexpected token")
    headers = {TOKEN_HEADER: token}
    spot_url = base + INSTANCE_ACTION_PATH
    spot = spot_notice(spot_url, client.request("GET", spot_url, headers, missing_ok=True))
    if spot is not None:
        return spot  # two minutes away at most: nothing scheduled comes first
    scheduled_url = base + SCHEDULED_PATH
    return maintenance_notice(scheduled_url, client.request("GET", scheduled_url, headers, missing_ok=True))


def spot_notice(url: str, body: str | None) -> Notice | None:
    """The spot instance-action document (None: IMDS answered 404, no interruption)."""
    if body is None:
        return None
    document = _json(url, body)
    if not isinstance(document, dict):
        raise MetadataError(url, "the instance-action is not a JSON object")
    action = document.get("action")
    if action not in SPOT_ACTIONS:
        raise MetadataError(url, f"unknown spot action {str(action)[:40]!r}")
    at = _time(url, document.get("time"), "%Y-%m-%dT%H:%M:%SZ")
    return Notice("aws", f"spot-{action}", int(at * 1000), f"spot {action} at {at_text(at, with_date=False)}")


def maintenance_notice(url: str, body: str | None) -> Notice | None:
    """The earliest pending event that interrupts the instance (None: none, or 404 on an IMDS
    that has no such category)."""
    if body is None or body == "":
        return None
    events = _json(url, body)
    if not isinstance(events, list):
        raise MetadataError(url, "the scheduled events are not a JSON list")
    found = []
    for event in events:
        if not isinstance(event, dict) or event.get("State") != PENDING_STATE:
            continue
        code = event.get("Code")
        kind = MAINTENANCE_KINDS.get(code) if isinstance(code, str) else None
        if kind is None:
            continue
        at = _time(url, event.get("NotBefore"), "%d %b %Y %H:%M:%S GMT")
        found.append(Notice("aws", kind, int(at * 1000), f"scheduled {code} at {at_text(at, with_date=True)}"))
    return earliest(found)


def _json(url: str, body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise MetadataError(url, "the answer is not JSON") from None


def _time(url: str, value: object, fmt: str) -> float:
    if not isinstance(value, str):
        raise MetadataError(url, "the notice has no time")
    try:
        return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise MetadataError(url, f"unreadable time {value[:40]!r}") from None
