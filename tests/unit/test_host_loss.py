"""When a silent host is lost, and what the controller does then: the pure decision against a
clock, and the inventory and the loss check on a real SQLite store, restarted in the middle."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.inventory.inventory import Inventory
from controller.inventory.ledger import Share
from controller.placement import HostView
from controller.scheduler.host_loss import HostLoss
from controller.scheduler.journal import TaskJournal
from controller.scheduling.host_loss import LossSettings, LostHost, lost_hosts
from controller.statuses import TaskStatus
from controller.store import Store, open_store
from controller.store.records import HostRecord, TaskRecord

GRACE, LOST_AFTER = 5.0, 15.0
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def view(host_id: str, live: bool) -> HostView:
    return HostView(
        id=host_id, name=f"node-{host_id}", arch="amd64", live=live, cpu_total=4, memory_total_bytes=8 << 30
    )


# (name, live, last heard, now, controller started at, lost)
DECISIONS = [
    ("online is never lost, however old its stored time", True, T0 - 3600, T0, 0.0, False),
    ("offline inside the lost period keeps its tasks", False, T0 - 14.9, T0, 0.0, False),
    ("offline exactly the lost period is lost", False, T0 - 15, T0, 0.0, True),
    ("offline past the lost period is lost", False, T0 - 60, T0, 0.0, True),
    ("a restarted controller gives every host the grace to reconnect", False, T0 - 3600, T0, T0 - 4.9, False),
    ("... and then counts the stored time", False, T0 - 3600, T0, T0 - 5, True),
    ("a just-restarted controller does not extend the lost period", False, T0 - 14, T0, T0 - 6, False),
    ("a host never heard from is lost once the grace after the start passed", False, 0.0, T0, T0 - 5, True),
]


@pytest.mark.parametrize(
    ("live", "heard", "now", "started", "lost"), [d[1:] for d in DECISIONS], ids=[d[0] for d in DECISIONS]
)
def test_which_hosts_are_lost(live: bool, heard: float, now: float, started: float, lost: bool) -> None:
    settings = LossSettings(GRACE, LOST_AFTER, started_at=started)
    last = {"a": heard} if heard else {}
    expected = [LostHost("a", "node-a", heard)] if lost else []
    assert lost_hosts([view("a", live)], last, now, settings) == expected


def test_lost_hosts_come_in_name_order_and_only_the_offline_ones() -> None:
    views = [view("c", False), view("a", False), view("b", True)]
    got = lost_hosts(views, {"a": T0 - 20, "b": T0 - 20, "c": T0 - 20}, T0, LossSettings(GRACE, LOST_AFTER))
    assert [h.host_id for h in got] == ["a", "c"]


# ---------------------------------------------------------------- with the store and a clock
@dataclass
class Stream:
    last_seen: float


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'controller.db'}")
    yield s
    s.close()


def add_host_with_task(store: Store, heard: float) -> TaskRecord:
    store.add_host(HostRecord("h1", "node-1", "cred", "{}", "amd64", registered_at=T0 - 100, last_seen=heard))
    task = TaskRecord("t1", "train", "{}", "img", submitted_at=T0 - 50, status=TaskStatus.RUNNING, host_id="h1")
    store.add_task(task)
    return task


def start_inventory(store: Store, streams: dict[str, Stream], clock: Clock) -> Inventory:
    inventory = Inventory(store, streams, GRACE, clock, LOST_AFTER)
    inventory.load(lambda task: Share(2, 1 << 30))
    return inventory


def test_a_silent_host_goes_offline_then_lost_and_its_task_ends_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock, streams = Clock(T0), {"h1": Stream(T0)}
    add_host_with_task(store, T0)
    inventory = start_inventory(store, streams, clock)
    published: list[TaskRecord] = []
    loss = HostLoss(store, TaskJournal(store, lambda host_id: host_id, clock), inventory, published.append, clock)
    assert inventory.index.get("h1").live and inventory.ledger.on_host("h1").cpu == 2

    clock.now = T0 + 3  # it spoke 2 s ago: the stream's time is fresher than the stored one
    streams["h1"].last_seen = T0 + 1
    inventory.refresh_liveness()
    del streams["h1"]  # kill -9: the stream closes
    clock.now = T0 + 7
    with caplog.at_level(logging.WARNING, logger="dstack.controller"):
        inventory.refresh_liveness()
    assert not inventory.index.get("h1").live
    assert (
        "host node-1 is offline (last heard 22:13:21 UTC); its tasks train end as lost at 22:13:36 UTC" in caplog.text
    )

    clock.now = T0 + 14.9  # inside the lost period: kept
    loss.check()
    assert store.get_task("t1").status == TaskStatus.RUNNING and not published

    clock.now = T0 + 16
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dstack.controller"):
        loss.check()
    ended = store.get_task("t1")
    assert (ended.status, ended.reason, ended.finished_at) == (
        TaskStatus.FAILED,
        "host node-1 lost (last heard 22:13:21)",
        T0 + 16,
    )
    assert inventory.ledger.on_host("h1") == Share() and inventory.index.get("h1").cpu_used == 0
    assert [t.status for t in published] == [TaskStatus.FAILED]
    assert "host node-1 is lost (last heard 22:13:21 UTC, 15s ago): its tasks train ended" in caplog.text

    clock.now = T0 + 30
    loss.check()
    assert len(published) == 1  # once per loss


def test_a_restarted_controller_counts_from_the_stored_time_after_the_grace(store: Store) -> None:
    add_host_with_task(store, T0)  # the stored last word, written at the disconnect
    clock = Clock(T0 + 10)  # the controller restarts 10 s later, inside the lost period
    inventory = start_inventory(store, {}, clock)
    loss = HostLoss(store, TaskJournal(store, lambda host_id: host_id, clock), inventory, lambda task: None, clock)
    clock.now = T0 + 14.5
    loss.check()
    assert store.get_task("t1").status == TaskStatus.RUNNING
    clock.now = T0 + 15.5  # not reset by the restart: lost at the same moment
    loss.check()
    assert store.get_task("t1").reason == "host node-1 lost (last heard 22:13:20)"
    assert inventory.ledger.on_host("h1") == Share()


def test_a_host_back_inside_the_lost_period_keeps_its_task(store: Store) -> None:
    clock, streams = Clock(T0), {"h1": Stream(T0)}
    add_host_with_task(store, T0)
    inventory = start_inventory(store, streams, clock)
    loss = HostLoss(store, TaskJournal(store, lambda host_id: host_id, clock), inventory, lambda task: None, clock)
    del streams["h1"]
    clock.now = T0 + 10
    inventory.refresh_liveness()
    assert not inventory.index.get("h1").live
    streams["h1"] = Stream(T0 + 19)  # reconnected, and speaking
    clock.now = T0 + 20
    inventory.refresh_liveness()
    loss.check()
    assert inventory.index.get("h1").live
    assert store.get_task("t1").status == TaskStatus.RUNNING and inventory.ledger.on_host("h1").cpu == 2


def test_a_lost_host_whose_stream_is_still_open_has_it_ended_once(store: Store) -> None:
    """A frozen agent (SIGSTOP, a paused VM) keeps its TCP stream: when the host is lost, the
    attempts it had are released on that stream and the stream is ended, so the agent stops them
    as soon as it wakes, and must say hello again."""
    clock, streams = Clock(T0), {"h1": Stream(T0)}  # the stream stays: silent, not closed
    add_host_with_task(store, T0)
    inventory = start_inventory(store, streams, clock)
    ended: list[tuple[str, list[tuple[str, int]]]] = []
    journal = TaskJournal(store, lambda host_id: host_id, clock)
    loss = HostLoss(store, journal, inventory, lambda task: None, clock, end_stream=lambda h, r: ended.append((h, r)))
    clock.now = T0 + 10  # offline, not lost yet: the stream is left alone
    inventory.refresh_liveness()
    loss.check()
    assert ended == [] and store.get_task("t1").status == TaskStatus.RUNNING
    clock.now = T0 + 16
    inventory.refresh_liveness()
    loss.check()
    assert ended == [("h1", [("t1", 1)])] and store.get_task("t1").status == TaskStatus.FAILED
    clock.now = T0 + 30
    loss.check()
    assert len(ended) == 1  # once per loss
