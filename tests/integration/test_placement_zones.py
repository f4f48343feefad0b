"""Fleets, volumes, zones and regions through the real programs: agents with zone overrides,
fleet and volume files applied with dstackctl, multi-name volumes chosen per host zone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cluster import AgentProcess, ControllerProcess, wait_for, write_task
from tests.support.dockerd import DockerEngine

pytestmark = pytest.mark.docker


@dataclass
class Zoned:
    controller: ControllerProcess
    agents: dict[str, AgentProcess]
    root: Path


def zone_config(region: str, zone: str, fleet: str = "") -> str:
    return f"region: {region}\nzone: {zone}\n" + (f"fleet: {fleet}\n" if fleet else "")


@pytest.fixture(scope="module")
def zoned(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine, busybox_images: dict[str, str]
) -> Iterator[Zoned]:
    """Two hosts on this machine that say they are in different places."""
    root = tmp_path_factory.mktemp("zoned")
    controller = ControllerProcess(root / "controller")
    controller.start()
    agents = {
        "eu-host": AgentProcess(controller, root / "eu", controller.token(), "eu-host",
                                zone_config("eu-west-1", "eu-west-1a")),
        "us-host": AgentProcess(controller, root / "us", controller.token(), "us-host",
                                zone_config("us-east-1", "us-east-1b")),
    }  # fmt: skip
    for agent in agents.values():
        agent.start_and_wait_online()
    # Shared directories as an NFS mount would be, one per region, with a marker in each.
    for place in ("eu", "us", "ap"):
        (root / f"share-{place}").mkdir()
        (root / f"share-{place}" / "marker").write_text(f"{place}\n")
    yield Zoned(controller, agents, root)
    for agent in agents.values():
        agent.stop()
    controller.stop()


def apply(z: Zoned, name: str, text: str) -> str:
    path = write_task(z.root / f"{name}.yaml", text)
    out = z.controller.ctl("apply", "-f", str(path))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def volume(z: Zoned, name: str, region: str, zone: str, share: str) -> str:
    return apply(z, name, f"type: volume\nname: {name}\nbackend: local\nregion: {region}\n"
                          f"availability_zone: {zone}\npath: {z.root / share}\n")  # fmt: skip


def test_volumes_apply_list_and_reapply(zoned: Zoned) -> None:
    assert volume(zoned, "vol-eu", "eu-west-1", "eu-west-1a", "share-eu") == "volume vol-eu created"
    assert volume(zoned, "vol-eu", "eu-west-1", "eu-west-1a", "share-eu") == "volume vol-eu unchanged"
    assert volume(zoned, "vol-us", "us-east-1", "us-east-1b", "share-us") == "volume vol-us created"
    listing = zoned.controller.ctl("volume")
    assert listing.returncode == 0
    assert listing.stdout.splitlines()[0].split() == ["NAME", "BACKEND", "STATUS", "CREATED"]
    assert "local (eu-west-1)" in listing.stdout and "active" in listing.stdout
    rows = {v["name"]: v for v in zoned.controller.ctl_json("volume")}
    assert rows["vol-us"]["availability_zone"] == "us-east-1b" and rows["vol-us"]["attached"] == []


@pytest.mark.parametrize(("zone", "expected_host", "marker"), [("us-east-1b", "us-host", "us"),
                                                                ("eu-west-1a", "eu-host", "eu")])  # fmt: skip
def test_a_volume_list_mounts_the_first_volume_available_where_the_task_lands(
    zoned: Zoned, zone: str, expected_host: str, marker: str
) -> None:
    volume(zoned, "vol-eu", "eu-west-1", "eu-west-1a", "share-eu")
    volume(zoned, "vol-us", "us-east-1", "us-east-1b", "share-us")
    name = f"reads-{marker}"
    task = write_task(
        zoned.root / f"{name}.yaml",
        f"""\
type: task
name: {name}
image: dstack-test/busybox:amd64
commands: ["cat /data/marker"]
availability_zones: [{zone}]
volumes:
  - name: [vol-eu, vol-us]
    path: /data
""",
    )
    out = zoned.controller.ctl("submit", "-f", str(task))
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{marker}\n"
    assert zoned.controller.task(name)["host"] == expected_host


def test_offers_names_the_rule_that_rejected_each_host(zoned: Zoned) -> None:
    task = write_task(zoned.root / "offers.yaml", "type: task\nimage: dstack-test/busybox:amd64\n"
                      "availability_zones: [us-east-1b]\n")  # fmt: skip
    rows = zoned.controller.ctl_json("offers", "-f", str(task))
    by_host = {r["host"]: r for r in rows}
    assert by_host["us-host"]["chosen"] is True and by_host["us-host"]["reason"] == ""
    assert by_host["eu-host"]["chosen"] is False
    assert by_host["eu-host"]["reason"] == "zone eu-west-1a not in [us-east-1b]"
    table = zoned.controller.ctl("offers", "-f", str(task))
    assert table.stdout.startswith("would run on us-host (amd64, us-east-1b)")
    assert "zone eu-west-1a not in [us-east-1b]" in table.stdout
    assert "Cloud offers" not in table.stdout and table.stderr == ""  # no backend: nothing about clouds
    assert {r["kind"] for r in rows} == {"host"}
    assert zoned.controller.ctl_json("ps", "-a") == [t for t in zoned.controller.ctl_json("ps", "-a")]  # nothing made


def test_a_zone_nothing_has_is_refused_at_submit(zoned: Zoned) -> None:
    task = write_task(zoned.root / "typo.yaml", "type: task\nname: typo\nimage: dstack-test/busybox:amd64\n"
                      "availability_zones: [us-east-1x]\n")  # fmt: skip
    before = zoned.controller.ctl_json("ps", "-a")
    out = zoned.controller.ctl("submit", "-d", "-f", str(task))
    assert out.returncode == 2
    assert out.stderr.startswith("dstackctl: unknown availability zone 'us-east-1x' (known zones: ")
    assert "eu-west-1a" in out.stderr and "us-east-1b" in out.stderr
    assert zoned.controller.ctl_json("ps", "-a") == before


def test_volume_errors_as_dstack_gives_them(zoned: Zoned) -> None:
    volume(zoned, "vol-eu", "eu-west-1", "eu-west-1a", "share-eu")
    volume(zoned, "vol-us", "us-east-1", "us-east-1b", "share-us")
    cases = {
        "volumes: [{name: nope, path: /data}]": "volume nope does not exist",
        "volumes: ['vol-eu:/a', 'vol-eu:/b']": "volume vol-eu is mounted twice, at /a and /b",
        "volumes: ['vol-eu:/a', 'vol-us:/b']": "the task's volumes live in different places",
    }
    for i, (line, message) in enumerate(cases.items()):
        task = write_task(zoned.root / f"bad-{i}.yaml", f"type: task\nimage: dstack-test/busybox:amd64\n{line}\n")
        out = zoned.controller.ctl("submit", "-d", "-f", str(task))
        assert out.returncode == 2, line
        assert out.stderr.startswith(f"dstackctl: {message}"), out.stderr


def test_no_host_with_a_listed_volume_leaves_the_task_pending_with_the_places(zoned: Zoned) -> None:
    volume(zoned, "vol-ap", "ap-south-1", "ap-south-1a", "share-ap")
    volume(zoned, "vol-ap2", "ap-south-1", "ap-south-1b", "share-ap")
    task = write_task(zoned.root / "far.yaml", "type: task\nname: far-away\nimage: dstack-test/busybox:amd64\n"
                      "volumes: [{name: [vol-ap, vol-ap2], path: /data}]\n")  # fmt: skip
    out = zoned.controller.ctl("submit", "-f", str(task))
    assert out.returncode == 1
    reason = "no host where any of vol-ap, vol-ap2 is available (vol-ap: ap-south-1a, vol-ap2: ap-south-1b)"
    assert zoned.controller.task("far-away")["reason"] == reason
    # A host in that zone arrives: the task runs there, with that zone's volume.
    late = AgentProcess(zoned.controller, zoned.root / "ap", zoned.controller.token(), "ap-host",
                        zone_config("ap-south-1", "ap-south-1b"))  # fmt: skip
    late.start_and_wait_online()
    try:
        row = zoned.controller.wait_status("far-away", "done", timeout=60)
        assert row["host"] == "ap-host"
        in_use = zoned.controller.ctl("delete", "volume", "vol-ap2")
        assert in_use.returncode == 0  # the task is done, so nothing holds it
    finally:
        late.stop()


def test_fleets_narrow_placement_and_guard_their_deletion(zoned: Zoned) -> None:
    assert apply(zoned, "pool", "type: fleet\nname: pool\navailability_zones: [eu-west-1a, eu-west-1c]\n") == (
        "fleet pool created"
    )
    token = zoned.controller.token("--fleet", "pool", "--uses", "1")
    member = AgentProcess(zoned.controller, zoned.root / "pool-member", token, "pool-member",
                          zone_config("eu-west-1", "eu-west-1c"))  # fmt: skip
    member.start_and_wait_online()
    try:
        fleets = {f["name"]: f for f in zoned.controller.ctl_json("fleet")}
        assert [h["name"] for h in fleets["pool"]["hosts"]] == ["pool-member"]
        table = zoned.controller.ctl("fleet", "-v").stdout
        assert table.splitlines()[0].split()[:5] == ["NAME", "NODES", "RESOURCES", "ZONES", "STATUS"]
        assert "local (eu-west-1 (eu-west-1c))" in table
        task = write_task(zoned.root / "in-pool.yaml", "type: task\nname: in-pool\nimage: dstack-test/busybox:amd64\n"
                          "commands: [hostname]\nfleets: [pool]\n")  # fmt: skip
        out = zoned.controller.ctl("submit", "-f", str(task))
        assert out.returncode == 0, out.stderr
        assert zoned.controller.task("in-pool")["host"] == "pool-member"
        refused = zoned.controller.ctl("delete", "fleet", "pool")
        assert refused.returncode == 1 and "fleet pool is in use (host pool-member" in refused.stderr
        assert (
            apply(zoned, "pool", "type: fleet\nname: pool\navailability_zones: [eu-west-1c]\n") == "fleet pool updated"
        )
        assert zoned.controller.ctl("delete", "fleet", "pool", "--force").returncode == 0
        assert "pool" not in [f["name"] for f in zoned.controller.ctl_json("fleet")]
    finally:
        member.stop()


def test_a_token_for_one_fleet_cannot_join_another(zoned: Zoned) -> None:
    apply(zoned, "blue", "type: fleet\nname: blue\n")
    token = zoned.controller.token("--fleet", "blue")
    stray = AgentProcess(zoned.controller, zoned.root / "stray", token, "stray", "fleet: red\n")
    stray.start()
    assert stray.proc is not None and stray.proc.wait(timeout=30) == 1
    assert "the join token is for fleet blue, not red" in stray.log()
    wait_for("no stray host", lambda: "stray" not in [h["name"] for h in zoned.controller.ctl_json("hosts")])


def test_a_host_without_the_fleets_resources_cannot_join_and_keeps_its_token(zoned: Zoned) -> None:
    apply(zoned, "big", "type: fleet\nname: big\nresources:\n  cpu: 64..\n")
    token = zoned.controller.token("--fleet", "big")
    small = AgentProcess(zoned.controller, zoned.root / "small", token, "small")
    small.start()
    assert small.proc is not None and small.proc.wait(timeout=30) == 1
    assert "this host does not meet fleet big's resources: needs 64 CPUs" in small.log()
    # The fleet's bar is lowered: the same single-use token still works, it was not spent.
    assert apply(zoned, "big", "type: fleet\nname: big\nresources:\n  cpu: 1..\n") == "fleet big updated"
    again = AgentProcess(zoned.controller, zoned.root / "small-again", token, "small")
    again.start_and_wait_online()
    try:
        assert next(h for h in zoned.controller.ctl_json("hosts") if h["name"] == "small")["status"] == "online"
    finally:
        again.stop()
