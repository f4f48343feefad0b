"""Azure: Scheduled Events from the Instance Metadata Service.

Documented answer of `GET /metadata/scheduledevents?api-version=2020-07-01` (header `Metadata: true`):
`{"DocumentIncarnation": 1, "Events": [{"EventId": "...", "EventType": "Preempt", "ResourceType":
"VirtualMachine", "Resources": ["vm-name"], "EventStatus": "Scheduled", "NotBefore": "Mon, 19 Sep
2016 18:29:47 GMT", "Description": "...", "EventSource": "Platform", "DurationInSeconds": -1}]}`.
An event lists every VM of the availability set or scale set it touches, so only events whose
Resources name this VM count; an event leaves the document once it is over (NotBefore is "" once it
has started)."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from typing import Any

from agent.facts.cloud.azure import INSTANCE_PATH
from agent.facts.cloud.metadata import MetadataClient, MetadataError, base_url
from agent.notices.model import Notice, at_text, earliest

EVENTS_PATH = "/metadata/scheduledevents?api-version=2020-07-01"

# The event types that end the VM's processes, and so its tasks: Preempt (a Spot VM evicted),
# Terminate (the VM deleted), Reboot, Redeploy (moved to another host: a restart, and the temporary
# disk is lost). Freeze is left out: the VM is paused for seconds and resumes with its memory, so
# the tasks go on.
INTERRUPTING = {"Preempt": "preempt", "Terminate": "terminate", "Reboot": "reboot", "Redeploy": "redeploy"}


def vm_name(endpoint: str, client: MetadataClient) -> str:
    """This VM's compute name, the name Scheduled Events list in Resources."""
    url = base_url(endpoint) + INSTANCE_PATH
    document = _json(url, client.request("GET", url, {"Metadata": "true"}) or "")
    compute = document.get("compute") if isinstance(document, dict) else None
    name = compute.get("name") if isinstance(compute, dict) else None
    if not isinstance(name, str) or not name:
        raise MetadataError(url, 'the answer has no "compute.name"')
    return name


def fetch(endpoint: str, client: MetadataClient, name: str) -> Notice | None:
    url = base_url(endpoint) + EVENTS_PATH
    return events_notice(url, client.request("GET", url, {"Metadata": "true"}), name)


def events_notice(url: str, body: str | None, name: str) -> Notice | None:
    """The earliest event that interrupts the VM called `name`, or None."""
    if not body:
        return None
    document = _json(url, body)
    events = document.get("Events") if isinstance(document, dict) else None
    if not isinstance(events, list):
        raise MetadataError(url, 'the answer has no "Events" list')
    found = []
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = INTERRUPTING.get(event.get("EventType"))  # type: ignore[arg-type]
        resources = event.get("Resources")
        if kind is None or not isinstance(resources, list) or name not in resources:
            continue
        event_type = event["EventType"]
        not_before = event.get("NotBefore") or ""
        if not not_before or event.get("EventStatus") == "Started":
            found.append(Notice("azure", kind, 0, f"azure {event_type.lower()} started"))
            continue
        try:
            at = parsedate_to_datetime(str(not_before)).timestamp()
        except (TypeError, ValueError):
            raise MetadataError(url, f"unreadable NotBefore {str(not_before)[:40]!r}") from None
        found.append(
            Notice("azure", kind, int(at * 1000), f"azure {event_type.lower()} at {at_text(at, with_date=True)}")
        )
    return earliest(found)


def _json(url: str, body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise MetadataError(url, "the answer is not JSON") from None
