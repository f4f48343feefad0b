"""A fleet's `nodes` range against its launched instances (controller/provisioning/nodes.py):
rows of (fleet file, instances, busy hosts) -> (launches, terminations), as dstack's fleet
consolidation decides: below min launch the missing ones, above max terminate idle ones only,
in between leave it to idle_duration. The fleets are parsed from the YAML a user writes."""

from __future__ import annotations

import textwrap

import pytest

from controller.configs import FleetConfiguration, parse_fleet_text
from controller.provisioning.nodes import nodes_step
from controller.scheduling.requirements import fleet_requirements
from controller.statuses import InstanceStatus
from controller.store.records import InstanceRecord


def fleet(nodes: str, name: str = "cloud") -> FleetConfiguration:
    text = f"type: fleet\nname: {name}\nbackends: [aws]\n" + (f"nodes: {nodes}\n" if nodes else "")
    return parse_fleet_text(text, "fleet.yaml")


def instance(n: int, status: str, host: str = "", fleet_name: str = "cloud") -> InstanceRecord:
    return InstanceRecord(
        id=f"l{n}",
        backend="aws",
        region="eu-west-1",
        zone="eu-west-1b",
        instance_type="m7g.large",
        fleet=fleet_name,
        created_at=float(n),
        status=InstanceStatus(status),
        host_id=host,
    )


L, R, T, GONE, F = "launching", "running", "terminating", "terminated", "failed"


@pytest.mark.parametrize(
    ("nodes", "instances", "busy", "launches", "terminated"),
    [
        # `nodes: 2` and nothing yet: two, with no task.
        ("2", [], set(), 2, []),
        ("1..", [], set(), 1, []),
        ("0..2", [], set(), 0, []),
        ("..3", [], set(), 0, []),
        # Launching and running (idle or busy) count; terminating, terminated and failed do not.
        ("2", [(1, L, "")], set(), 1, []),
        ("2", [(1, R, "h1"), (2, L, "")], set(), 0, []),
        ("2", [(1, R, "h1"), (2, GONE, "h2")], set(), 1, []),
        ("2", [(1, T, "h1"), (2, F, "")], set(), 2, []),
        # Lowered to 0..1 with two idle: the newest goes now, the other follows idle_duration.
        ("0..1", [(1, R, "h1"), (2, R, "h2")], set(), 0, ["l2"]),
        # Lowered to 1 with both busy: nothing is terminated under a task.
        ("1", [(1, R, "h1"), (2, R, "h2")], {"h1", "h2"}, 0, []),
        ("1", [(1, R, "h1"), (2, R, "h2")], {"h2"}, 0, ["l1"]),
        # A launching instance is not idle (it may be a task's): only registered idle ones go.
        ("0..1", [(1, L, ""), (2, L, ""), (3, R, "h3")], set(), 0, ["l3"]),
        # Within the range: nothing to do.
        ("1..3", [(1, R, "h1"), (2, R, "h2")], set(), 0, []),
        ("0", [(1, R, "h1")], set(), 0, ["l1"]),
    ],
)
def test_nodes_step(
    nodes: str, instances: list[tuple[int, str, str]], busy: set[str], launches: int, terminated: list[str]
) -> None:
    records = [instance(n, s, h) for n, s, h in instances]
    step = nodes_step({"cloud": fleet(nodes)}, records, frozenset(busy))
    assert step.launches.get("cloud", 0) == launches
    assert [t.launch_id for t in step.terminations] == terminated


def test_each_fleet_counts_only_its_own_instances() -> None:
    fleets = {"a": fleet("2", "a"), "b": fleet("1", "b"), "onprem": fleet("", "onprem")}
    records = [instance(1, R, "h1", "a"), instance(2, R, "h2", "b"), instance(3, R, "h3", "b")]
    step = nodes_step(fleets, records, frozenset())
    assert step.launches == {"a": 1}
    assert [(t.launch_id, t.fleet, t.reason) for t in step.terminations] == [
        ("l3", "b", "fleet b is above its nodes maximum (1)")
    ]


def test_a_fleet_without_nodes_provisions_nothing_and_keeps_its_instances() -> None:
    step = nodes_step({"cloud": fleet("")}, [instance(1, R, "h1"), instance(2, R, "h2")], frozenset())
    assert step.launches == {} and step.terminations == ()


def test_the_minimum_is_sized_by_the_fleets_resources() -> None:
    sized = parse_fleet_text(
        textwrap.dedent(
            """\
            type: fleet
            name: cloud
            nodes: 1
            backends: [aws]
            resources:
              cpu: arm:4..
              memory: 16GB..
            """
        ),
        "fleet.yaml",
    )
    req = fleet_requirements(sized)
    assert (req.arches, req.cpu, req.memory_bytes) == (frozenset({"arm64"}), 4.0, 16 * 1024**3)
    anything = fleet_requirements(fleet("1"))
    assert (anything.arches, anything.cpu, anything.memory_bytes) == (None, 0.0, 0)
