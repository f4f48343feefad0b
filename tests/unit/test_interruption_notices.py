"""The interruption-notice parsers and watcher against the loopback metadata fake replaying the
documented documents (tests/fixtures/notices), with each service's header rules: IMDSv2 answers
401 without its session token, Azure 400 without `Metadata: true`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.facts.cloud.metadata import MAX_BODY_BYTES, MetadataClient, MetadataError
from agent.facts.sources import FactSources
from agent.notices import aws, azure
from agent.notices.model import Notice
from agent.notices.watcher import NoticeWatcher, watched_cloud
from tests.support.metadata_server import MetadataServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NOTICES = FIXTURES / "notices"
HOSTS = FIXTURES / "hosts"
URL = "http://127.0.0.1:9/x"  # where a parser says the document came from; nothing is asked there


def document(name: str) -> str:
    return (NOTICES / name).read_text()


def azure_instance() -> dict[str, Any]:
    return json.loads((HOSTS / "azure-d2s-v6" / "metadata.json").read_text())["responses"]["/metadata/instance"]


# --- AWS spot instance-action -------------------------------------------------------------------


def test_the_documented_spot_instance_action_is_a_spot_terminate_notice() -> None:
    notice = aws.spot_notice(URL, document("aws-instance-action.json"))
    assert notice == Notice("aws", "spot-terminate", 1505722920000, "spot terminate at 08:22:00 UTC")


@pytest.mark.parametrize("action", ["stop", "hibernate"])
def test_every_documented_spot_action_has_its_kind(action: str) -> None:
    notice = aws.spot_notice(URL, json.dumps({"action": action, "time": "2017-09-18T08:22:00Z"}))
    assert notice is not None and (notice.kind, notice.text) == (f"spot-{action}", f"spot {action} at 08:22:00 UTC")


def test_no_spot_instance_action_404_is_no_notice() -> None:
    assert aws.spot_notice(URL, None) is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("", "not JSON"),
        ("<html>busy</html>", "not JSON"),
        ('["terminate"]', "not a JSON object"),
        ('{"action": "reboot", "time": "2017-09-18T08:22:00Z"}', "unknown spot action 'reboot'"),
        ('{"action": "terminate"}', "no time"),
        ('{"action": "terminate", "time": "tomorrow"}', "unreadable time 'tomorrow'"),
    ],
)
def test_a_garbled_spot_instance_action_is_an_error_not_a_notice(body: str, why: str) -> None:
    with pytest.raises(MetadataError, match=why):
        aws.spot_notice(URL, body)


# --- AWS scheduled maintenance ------------------------------------------------------------------


def test_the_documented_scheduled_reboot_is_a_maintenance_notice() -> None:
    notice = aws.maintenance_notice(URL, document("aws-scheduled.json"))
    assert notice == Notice(
        "aws", "maintenance-reboot", 1548061243000, "scheduled system-reboot at 2019-01-21 09:00:43 UTC"
    )


@pytest.mark.parametrize("state", ["completed", "canceled"])
def test_a_completed_or_canceled_event_is_no_notice(state: str) -> None:
    events = json.loads(document("aws-scheduled.json"))
    events[0]["State"] = state
    assert aws.maintenance_notice(URL, json.dumps(events)) is None


def test_network_maintenance_and_unknown_codes_do_not_interrupt() -> None:
    events = json.loads(document("aws-scheduled.json"))
    events[0]["Code"] = "system-maintenance"
    events.append({**events[0], "Code": "instance-hug"})
    assert aws.maintenance_notice(URL, json.dumps(events)) is None


def test_of_several_events_the_earliest_counts() -> None:
    events = json.loads(document("aws-scheduled.json"))
    events.append({**events[0], "Code": "instance-retirement", "NotBefore": "20 Jan 2019 10:00:00 GMT"})
    notice = aws.maintenance_notice(URL, json.dumps(events))
    assert notice is not None and notice.kind == "maintenance-retirement"


@pytest.mark.parametrize("body", [None, "", "[]"])
def test_no_scheduled_events_is_no_notice(body: str | None) -> None:
    assert aws.maintenance_notice(URL, body) is None


@pytest.mark.parametrize("body", ["{}", "[[", '[{"Code": "system-reboot", "State": "active", "NotBefore": "soon"}]'])
def test_garbled_scheduled_events_are_an_error(body: str) -> None:
    with pytest.raises(MetadataError):
        aws.maintenance_notice(URL, body)


# --- Azure Scheduled Events ---------------------------------------------------------------------


def test_the_documented_preempt_of_this_vm_is_a_notice_and_the_freeze_and_the_other_vms_reboot_are_not() -> None:
    notice = azure.events_notice(URL, document("azure-scheduledevents.json"), "gpu-lab-01")
    assert notice == Notice("azure", "preempt", 1649716048000, "azure preempt at 2022-04-11 22:27:28 UTC")


def test_the_other_vm_sees_its_own_reboot() -> None:
    notice = azure.events_notice(URL, document("azure-scheduledevents.json"), "gpu-lab-02")
    assert notice is not None and (notice.kind, notice.text) == ("reboot", "azure reboot at 2022-04-11 22:20:00 UTC")


def test_an_event_that_has_started_has_no_time_and_comes_first() -> None:
    doc = json.loads(document("azure-scheduledevents.json"))
    doc["Events"].append({**doc["Events"][2], "EventType": "Terminate", "EventStatus": "Started", "NotBefore": ""})
    notice = azure.events_notice(URL, json.dumps(doc), "gpu-lab-01")
    assert notice == Notice("azure", "terminate", 0, "azure terminate started")


@pytest.mark.parametrize("body", ['{"DocumentIncarnation": 0, "Events": []}', "", None])
def test_no_azure_events_is_no_notice(body: str | None) -> None:
    assert azure.events_notice(URL, body, "gpu-lab-01") is None


@pytest.mark.parametrize("body", ["{", "[]", '{"Events": {}}'])
def test_garbled_azure_events_are_an_error(body: str) -> None:
    with pytest.raises(MetadataError):
        azure.events_notice(URL, body, "gpu-lab-01")


# --- through the fakes, with the real client ----------------------------------------------------


def test_aws_fetch_asks_with_an_imdsv2_token_and_finds_the_spot_notice() -> None:
    with MetadataServer("aws", {}) as fake:
        assert aws.fetch(fake.url, MetadataClient(1.0)) is None  # 404 and 404
        fake.responses[aws.INSTANCE_ACTION_PATH] = document("aws-instance-action.json")
        notice = aws.fetch(fake.url, MetadataClient(1.0))
    assert notice is not None and notice.kind == "spot-terminate"
    assert fake.requests[:3] == [
        ("PUT", "/latest/api/token"),
        ("GET", aws.INSTANCE_ACTION_PATH),
        ("GET", aws.SCHEDULED_PATH),
    ]


def test_aws_fetch_reads_scheduled_events_when_there_is_no_spot_notice() -> None:
    with MetadataServer("aws", {aws.SCHEDULED_PATH: document("aws-scheduled.json")}) as fake:
        notice = aws.fetch(fake.url, MetadataClient(1.0))
    assert notice is not None and notice.kind == "maintenance-reboot"


def test_a_huge_answer_is_refused_not_read_to_the_end() -> None:
    huge = {aws.INSTANCE_ACTION_PATH: " " * (MAX_BODY_BYTES + 1)}
    with MetadataServer("aws", huge) as fake, pytest.raises(MetadataError, match="larger than"):
        aws.fetch(fake.url, MetadataClient(1.0))


def test_azure_fetch_names_this_vm_from_the_instance_document() -> None:
    responses = {
        "/metadata/instance": azure_instance(),
        "/metadata/scheduledevents": document("azure-scheduledevents.json"),
    }
    with MetadataServer("azure", responses) as fake:
        client = MetadataClient(1.0)
        notice = azure.fetch(fake.url, client, azure.vm_name(fake.url, client))
    assert notice is not None and notice.kind == "preempt"
    assert ("GET", "/metadata/scheduledevents?api-version=2020-07-01") in fake.requests


# --- which hosts watch --------------------------------------------------------------------------


def test_only_a_host_whose_dmi_names_aws_or_azure_watches(tmp_path: Path) -> None:
    aws_sysfs = HOSTS / "aws-c6id" / "sys"
    azure_sysfs = HOSTS / "azure-d2s-v6" / "sys"
    assert watched_cloud(FactSources(sysfs=aws_sysfs), "auto") == "aws"
    assert watched_cloud(FactSources(sysfs=azure_sysfs), "auto") == "azure"
    assert watched_cloud(FactSources(sysfs=tmp_path), "auto") is None  # on-prem: no DMI of a cloud
    assert watched_cloud(FactSources(sysfs=aws_sysfs), "off") is None
    assert watched_cloud(FactSources(sysfs=tmp_path), "azure") == "azure"  # declared in agent.yaml
    assert watched_cloud(FactSources(sysfs=tmp_path), "gcp") is None  # no notices read there (yet)


# --- the watcher: once, again after a reconnect, withdrawn --------------------------------------


async def _watch(watcher: NoticeWatcher, polls: float) -> list[pb.HostNotice]:
    sent: list[pb.AgentMessage] = []
    task = asyncio.ensure_future(watcher.run(sent.append))
    await asyncio.sleep(watcher.interval_s * polls)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return [m.notice for m in sent]


def test_the_watcher_sends_a_notice_once_again_on_the_next_stream_and_its_withdrawal() -> None:
    with MetadataServer("aws", {aws.SCHEDULED_PATH: document("aws-scheduled.json")}) as fake:
        watcher = NoticeWatcher("aws", FactSources(aws_endpoint=fake.url), interval_s=0.05)
        first = asyncio.run(_watch(watcher, 6))
        assert [n.kind for n in first] == ["maintenance-reboot"]  # once, though polled several times
        again = asyncio.run(_watch(watcher, 2))  # a new stream: said again at once
        assert [n.kind for n in again][:1] == ["maintenance-reboot"] and len(again) == 1
        events = json.loads(document("aws-scheduled.json"))
        events[0]["State"] = "canceled"
        fake.responses[aws.SCHEDULED_PATH] = events
        withdrawn = asyncio.run(_watch(watcher, 4))
    assert [n.kind for n in withdrawn] == ["maintenance-reboot", ""]
    assert withdrawn[1].provider == "aws" and watcher.current is None


def test_a_failing_service_is_one_warning_and_no_notice(caplog: pytest.LogCaptureFixture) -> None:
    with MetadataServer("aws", {aws.INSTANCE_ACTION_PATH: "{"}) as fake:
        watcher = NoticeWatcher("aws", FactSources(aws_endpoint=fake.url), interval_s=0.05)
        with caplog.at_level("WARNING", logger="dstack.agent"):
            sent = asyncio.run(_watch(watcher, 5))
    assert sent == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "the answer is not JSON" in warnings[0], warnings


def test_without_a_notice_the_watcher_says_so_once_per_stream() -> None:
    # The controller keeps a notice across reconnects; this is how a fresh stream clears a stale one.
    with MetadataServer("aws", {}) as fake:
        watcher = NoticeWatcher("aws", FactSources(aws_endpoint=fake.url), interval_s=0.05)
        for _ in range(2):
            sent = asyncio.run(_watch(watcher, 5))
            assert [(n.provider, n.kind) for n in sent] == [("aws", "")]
