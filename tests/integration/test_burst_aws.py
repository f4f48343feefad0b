"""Cloud bursting to AWS, end to end, against moto's server on loopback.

A real controller process with an `aws` backend in its config file bursts for tasks no host fits:
it discovers regions, picks an instance type from DescribeInstanceTypes/Offerings, launches it in
moto with cloud-init user-data, and places the task when an agent proving to be that instance (a
simulated agent whose metadata names the instance id) registers. Nothing leaves 127.0.0.1: the
user-data names a TEST-NET address (192.0.2.10) that nothing ever dials."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.canonical_images import CANONICAL_OWNER, NEWEST_NOBLE_SERVER
from tests.support.cluster import BIN, ControllerProcess, Process, wait_for, write_task
from tests.support.moto_server import MotoServer

FACTS = Path(__file__).parents[1] / "fixtures" / "sim" / "host.json"
REGION = "eu-west-1"


@pytest.fixture
def aws(moto_server: MotoServer) -> MotoServer:
    """moto with Canonical's images as Canonical publishes them; the controller's config names no
    image filter, so its default is what finds (or fails to find) them."""
    moto_server.reset()
    moto_server.register_canonical_images(REGION)
    return moto_server


def write_config(data_dir: Path, moto: MotoServer, register_timeout: str = "10m") -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "config.yaml").write_text(
        f"""\
backends:
  - type: aws
    regions: [{REGION}]
    endpoint_url: {moto.url}
    creds: {{type: access_key, access_key: testing, secret_key: testing}}
burst:
  controller_address: 192.0.2.10:7443
  package_url: https://packages.example.invalid/dstack-agent_{{arch}}.deb
  register_timeout: {register_timeout}
"""
    )


@pytest.fixture
def burst_controller(tmp_path: Path, aws: MotoServer) -> Iterator[ControllerProcess]:
    write_config(tmp_path / "ctl", aws)
    controller = ControllerProcess(tmp_path / "ctl")
    controller.start()
    yield controller
    controller.stop()


def apply(controller: ControllerProcess, path: Path, text: str) -> None:
    path.write_text(text)
    out = controller.ctl("apply", "-f", str(path))
    assert out.returncode == 0, out.stderr


def ec2_instances(moto: MotoServer, states: tuple[str, ...] = ("pending", "running")) -> list[dict[str, Any]]:
    ec2 = moto.client("ec2", REGION)
    found = []
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            if instance["State"]["Name"] in states:
                found.append(instance)
    return found


def tags_of(instance: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def user_data(moto: MotoServer, instance_id: str) -> str:
    attr = moto.client("ec2", REGION).describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return base64.b64decode(attr["UserData"]["Value"]).decode()


def join_token_in(user_data_text: str) -> str:
    line = next(ln for ln in user_data_text.splitlines() if ln.strip().startswith("join_token:"))
    return json.loads(line.split(":", 1)[1].strip())


def start_instance_agent(
    controller: ControllerProcess,
    tmp_path: Path,
    instance: dict[str, Any],
    token: str,
    arch: str,
    moto: MotoServer | None = None,
) -> Process:
    """A simulated agent whose cloud metadata is that of the launched instance; with `moto`, its
    CPUs and memory are the instance type's too (as DescribeInstanceTypes says)."""
    facts = json.loads(FACTS.read_text())
    if moto is not None:
        info = moto.client("ec2", REGION).describe_instance_types(InstanceTypes=[instance["InstanceType"]])
        size = info["InstanceTypes"][0]
        vcpus = size["VCpuInfo"]["DefaultVCpus"]
        facts["cpu"].update(cores=vcpus, threads=vcpus)
        facts["memory_bytes"] = int(size["MemoryInfo"]["SizeInMiB"] * 2**20 * 0.96)
    zone = instance["Placement"]["AvailabilityZone"]
    facts["cloud"] = {
        "provider": "aws", "region": REGION, "zone": zone, "zone_id": None,
        "instance_type": instance["InstanceType"], "instance_id": instance["InstanceId"], "spot": False,
        "hyperv_generation": None,
    }  # fmt: skip
    facts["region"], facts["zone"] = REGION, zone
    template = tmp_path / f"{instance['InstanceId']}.json"
    template.write_text(json.dumps(facts))
    (tmp_path / "no-agent.yaml").write_text("cloud: off\n")
    args = [str(BIN / "dstack-agent"), "simulate", "--count", "1", "--facts", str(template), "--arches", arch,
            "--keep-instance-id", "--name-prefix", instance["InstanceId"], "--controller", controller.address,
            "--join-token", token, "--config", str(tmp_path / "no-agent.yaml")]  # fmt: skip
    sim = Process(args, tmp_path / f"{instance['InstanceId']}.log", dict(os.environ, DSTACK_AGENT_RECONNECT_MAX_S="1"))
    sim.start()
    return sim


CLOUD_FLEET = """\
type: fleet
name: cloud
nodes: 0..2
backends: [aws]
availability_zones: [eu-west-1b]
idle_duration: 3s
"""

ARM_TASK = """\
type: task
name: arm-burst
image: busybox
commands: ["uname -m"]
env:
  DSTACK_SIM_SECONDS: "1"
resources:
  cpu: arm:2..
  memory: 4GB..
"""


def test_arm64_task_bursts_to_a_graviton_instance_in_the_allowed_zone_and_runs(
    burst_controller: ControllerProcess, aws: MotoServer, tmp_path: Path
) -> None:
    controller = burst_controller
    apply(controller, tmp_path / "fleet.yaml", CLOUD_FLEET)
    task = write_task(tmp_path / "arm.yaml", ARM_TASK)

    # `offers` lists the cloud offers after the (absent) hosts: arm64 types in eu-west-1b only.
    rows = controller.ctl_json("offers", "-f", str(task))
    cloud = [r for r in rows if r.get("backend") == "aws"]
    usable = [r for r in cloud if not r["reason"]]
    assert usable, rows
    assert {r["zone"] for r in usable} == {"eu-west-1b"}
    assert {r["arch"] for r in usable} == {"arm64"}
    assert any(r["chosen"] for r in usable)
    # Burstable types (t4g) are left out, saying why.
    assert not any(r["host"].startswith("t4g.") for r in usable)
    assert any(r["host"].startswith("t4g.") and "burstable" in r["reason"] for r in cloud), cloud

    assert controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    launched = wait_for("an instance launched", lambda: ec2_instances(aws) or None, timeout=60)
    assert len(launched) == 1
    instance = launched[0]
    assert instance["Placement"]["AvailabilityZone"] == "eu-west-1b"
    itype = aws.client("ec2", REGION).describe_instance_types(InstanceTypes=[instance["InstanceType"]])
    info = itype["InstanceTypes"][0]
    assert "arm64" in info["ProcessorInfo"]["SupportedArchitectures"]
    assert info["VCpuInfo"]["DefaultVCpus"] >= 2 and info["MemoryInfo"]["SizeInMiB"] * 0.94 >= 4000
    image = aws.client("ec2", REGION).describe_images(ImageIds=[instance["ImageId"]])["Images"][0]
    # Canonical's newest arm64 server image, not its newer pro, minimal or EKS ones.
    assert (image["Name"], image["OwnerId"], image["Architecture"]) == (
        NEWEST_NOBLE_SERVER["arm64"],
        CANONICAL_OWNER,
        "arm64",
    )
    subnet = aws.client("ec2", REGION).describe_subnets(SubnetIds=[instance["SubnetId"]])["Subnets"][0]
    assert subnet["AvailabilityZone"] == "eu-west-1b"
    tags = tags_of(instance)
    assert tags["dstack-hybrid-fleet"] == "cloud"
    assert tags["dstack-hybrid-task"] and tags["dstack-hybrid-launch"] and tags["dstack-hybrid-controller"]

    # The user-data: the cloud-init template with a single-use join token pinning the controller's CA.
    text = user_data(aws, instance["InstanceId"])
    assert text.startswith("#cloud-config\n")
    assert '"192.0.2.10:7443"' in text and '"dstack-agent_arm64.deb"' not in text
    assert "https://packages.example.invalid/dstack-agent_arm64.deb" in text
    token = join_token_in(text)
    assert token.startswith("dstack1.")
    if shutil.which("cloud-init"):
        path = tmp_path / "user-data.yaml"
        path.write_text(text)
        schema = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert schema.returncode == 0, schema.stdout + schema.stderr

    row = controller.task("arm-burst")
    assert row["status"] == "pending" and "waiting for its agent" in row["reason"], row

    # `fleet` shows the launching instance with its backend, region and zone.
    fleets = controller.ctl_json("fleet")
    instances = next(f for f in fleets if f["name"] == "cloud")["instances"]
    assert [(i["backend"], i["region"], i["zone"], i["instance_id"]) for i in instances] == [
        ("aws", REGION, "eu-west-1b", instance["InstanceId"])
    ]

    # Another machine with the token but not the instance's metadata is turned away.
    impostor = dict(instance, InstanceId="i-0000000000000beef")
    sim_bad = start_instance_agent(controller, tmp_path, impostor, token, "arm64")
    try:
        wait_for("the impostor refused", lambda: "i-0000000000000beef" in controller.log() or None, timeout=30)
        assert "this join token is for aws instance " + instance["InstanceId"] in controller.log()
    finally:
        sim_bad.stop()

    sim = start_instance_agent(controller, tmp_path, instance, token, "arm64")
    try:
        done = controller.wait_status("arm-burst", "done", timeout=60)
        host = next(h for h in controller.ctl_json("hosts") if h["name"] == done["host"])
        assert host["facts"]["cloud"]["instance_id"] == instance["InstanceId"]
        assert host["arch"] == "arm64"
        instances = next(f for f in controller.ctl_json("fleet") if f["name"] == "cloud")["instances"]
        assert [(i["instance_id"], i["host"]) for i in instances] == [(instance["InstanceId"], done["host"])]

        # Idle for longer than idle_duration: terminated in the cloud, the host forgotten.
        wait_for("the idle instance terminated", lambda: not ec2_instances(aws) or None, timeout=90)
        wait_for("the host forgotten", lambda: all(h["name"] != done["host"] for h in controller.ctl_json("hosts"))
                 or None, timeout=30)  # fmt: skip
    finally:
        sim.stop()
    assert len(ec2_instances(aws, ("pending", "running", "terminated", "shutting-down"))) == 1


X86_TASK = """\
type: task
name: x86-burst
image: busybox
commands: ["uname -m"]
env:
  DSTACK_SIM_SECONDS: "1"
resources:
  cpu: x86:2..
  memory: 4GB..
"""


def test_amd64_task_bursts_with_canonicals_amd64_image_and_runs(
    burst_controller: ControllerProcess, aws: MotoServer, tmp_path: Path
) -> None:
    """The default filter against Canonical's names: an x86_64 instance type boots the newest
    ubuntu-noble-24.04-amd64-server image (the name says amd64, the API says x86_64)."""
    controller = burst_controller
    apply(controller, tmp_path / "fleet.yaml", CLOUD_FLEET)
    task = write_task(tmp_path / "x86.yaml", X86_TASK)
    assert controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    instance = wait_for("an instance launched", lambda: ec2_instances(aws) or None, timeout=60)[0]
    info = aws.client("ec2", REGION).describe_instance_types(InstanceTypes=[instance["InstanceType"]])
    assert "x86_64" in info["InstanceTypes"][0]["ProcessorInfo"]["SupportedArchitectures"]
    image = aws.client("ec2", REGION).describe_images(ImageIds=[instance["ImageId"]])["Images"][0]
    assert (image["Name"], image["OwnerId"], image["Architecture"]) == (
        NEWEST_NOBLE_SERVER["amd64"],
        CANONICAL_OWNER,
        "x86_64",
    )
    text = user_data(aws, instance["InstanceId"])
    assert "https://packages.example.invalid/dstack-agent_amd64.deb" in text
    sim = start_instance_agent(controller, tmp_path, instance, join_token_in(text), "amd64")
    try:
        done = controller.wait_status("x86-burst", "done", timeout=60)
        host = next(h for h in controller.ctl_json("hosts") if h["name"] == done["host"])
        assert host["arch"] == "amd64" and host["facts"]["cloud"]["instance_id"] == instance["InstanceId"]
    finally:
        sim.stop()
    assert "no image matches" not in controller.log()


def test_a_region_without_the_image_says_which_filter_found_nothing(tmp_path: Path, moto_server: MotoServer) -> None:
    """Only the arm64 images published: the amd64 task stays pending with the filter named."""
    moto_server.reset()
    from tests.support.canonical_images import NOBLE_SERVER

    for ami in NOBLE_SERVER:
        if ami.architecture == "arm64":
            moto_server.register_image(REGION, ami.name, ami.architecture, ami.created, owner=CANONICAL_OWNER)
    write_config(tmp_path / "ctl", moto_server)
    controller = ControllerProcess(tmp_path / "ctl")
    controller.start()
    try:
        apply(controller, tmp_path / "fleet.yaml", CLOUD_FLEET)
        assert controller.ctl("submit", "-d", "-f", str(write_task(tmp_path / "x86.yaml", X86_TASK))).returncode == 0
        row = wait_for(
            "the task told why",
            lambda: next((t for t in controller.ctl_json("ps") if "no image matches" in t["reason"]), None),
            timeout=60,
        )
        assert row["status"] == "pending"
        assert (
            "name ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-* architecture x86_64" in row["reason"]
        ), row
        assert not ec2_instances(moto_server)
    finally:
        controller.stop()


def test_an_image_filter_with_an_unknown_word_stops_the_controller_with_one_sentence(tmp_path: Path) -> None:
    config = tmp_path / "controller.yaml"
    config.write_text("backends:\n  - type: aws\n    image: {name: 'ubuntu-noble-24.04-{architecture}-server-*'}\n")
    out = subprocess.run(
        [str(BIN / "dstack-controller"), "serve", "--config", str(config), "--data-dir", str(tmp_path / "d"),
         "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2, out
    assert "{architecture}" in out.stderr and "{arch} or {api_arch}" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def submit_and_wait_for_a_launch(controller: ControllerProcess, aws: MotoServer, tmp_path: Path) -> dict[str, Any]:
    """The cloud fleet applied and the arm64 task submitted: the instance the controller launched."""
    apply(controller, tmp_path / "fleet.yaml", CLOUD_FLEET)
    task = write_task(tmp_path / "arm.yaml", ARM_TASK)
    assert controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    instance: dict[str, Any] = wait_for("an instance launched", lambda: ec2_instances(aws) or None, timeout=60)[0]
    return instance


def test_a_controller_restart_mid_launch_neither_launches_twice_nor_forgets(tmp_path: Path, aws: MotoServer) -> None:
    data = tmp_path / "ctl"
    write_config(data, aws)
    controller = ControllerProcess(data)
    controller.start()
    try:
        instance = submit_and_wait_for_a_launch(controller, aws, tmp_path)
    finally:
        controller.kill()  # no clean shutdown: as if the machine died
    # The worst moment: the launch went through but its record did not reach the database.
    with sqlite3.connect(data / "controller.db") as db:
        db.execute("DELETE FROM instances")

    again = ControllerProcess(data)
    again.start()
    try:
        # The tags bring the instance back; the pending task waits for it instead of launching another.
        wait_for(
            "the instance adopted",
            lambda: [i for f in again.ctl_json("fleet") for i in f["instances"] if i["instance_id"]] or None,
            timeout=60,
        )
        row = again.task("arm-burst")
        assert row["status"] == "pending"
        assert len(ec2_instances(aws)) == 1
        token = join_token_in(user_data(aws, instance["InstanceId"]))
        sim = start_instance_agent(again, tmp_path, instance, token, "arm64")
        try:
            again.wait_status("arm-burst", "done", timeout=60)
        finally:
            sim.stop()
        assert len(ec2_instances(aws, ("pending", "running", "terminated", "shutting-down"))) == 1
    finally:
        again.stop()


def test_a_volume_in_a_zone_pulls_the_launch_into_that_zone(
    burst_controller: ControllerProcess, aws: MotoServer, tmp_path: Path
) -> None:
    controller = burst_controller
    apply(controller, tmp_path / "fleet.yaml", CLOUD_FLEET.replace("availability_zones: [eu-west-1b]\n", ""))
    apply(
        controller,
        tmp_path / "vol.yaml",
        f"type: volume\nname: data-b\nbackend: aws\nregion: {REGION}\navailability_zone: eu-west-1c\nsize: 10GB\n",
    )
    volumes = aws.client("ec2", REGION).describe_volumes()["Volumes"]
    created = [v for v in volumes if any(t["Value"] == "data-b" for t in v.get("Tags", []))]
    assert len(created) == 1 and created[0]["AvailabilityZone"] == "eu-west-1c"
    # Applying the same file again keeps the volume it made.
    again = controller.ctl("apply", "-f", str(tmp_path / "vol.yaml"))
    assert again.returncode == 0, again.stderr
    assert len(aws.client("ec2", REGION).describe_volumes()["Volumes"]) == len(volumes)

    task = write_task(tmp_path / "vol-task.yaml", ARM_TASK + "volumes:\n  - name: data-b\n    path: /data\n")
    assert controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    instance = wait_for("an instance launched", lambda: ec2_instances(aws) or None, timeout=60)[0]
    assert instance["Placement"]["AvailabilityZone"] == "eu-west-1c"

    # When its agent registers, the controller attaches the volume to that instance.
    sim = start_instance_agent(controller, tmp_path, instance, join_token_in(user_data(aws, instance["InstanceId"])),
                               "arm64")  # fmt: skip
    try:
        controller.wait_status("arm-burst", "done", "running", timeout=60)
        volume = wait_for(
            "the volume attached",
            lambda: next(
                (v for v in aws.client("ec2", REGION).describe_volumes(VolumeIds=[created[0]["VolumeId"]])["Volumes"]
                 if v["Attachments"]), None),
            timeout=30,
        )  # fmt: skip
        assert volume["Attachments"][0]["InstanceId"] == instance["InstanceId"]
    finally:
        sim.stop()


def test_a_capacity_error_moves_the_launch_to_the_next_offer(
    burst_controller: ControllerProcess, aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto never runs out of capacity; its server runs in this process, so RunInstances is made to
    answer the first call as AWS does when a zone has no capacity for the type."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models import EC2Backend

    refused: list[str] = []
    original = EC2Backend.run_instances

    def run_instances(self: Any, image_id: str, count: int, user_data: Any, security_group_names: Any,
                      **kwargs: Any) -> Any:  # fmt: skip
        if not refused:
            refused.append(kwargs.get("instance_type", ""))
            raise EC2ClientError(
                "InsufficientInstanceCapacity",
                "We currently do not have sufficient capacity in the Availability Zone you requested.",
            )
        return original(self, image_id, count, user_data, security_group_names, **kwargs)

    monkeypatch.setattr(EC2Backend, "run_instances", run_instances)
    controller = burst_controller
    apply(controller, tmp_path / "fleet.yaml", CLOUD_FLEET)
    assert controller.ctl("submit", "-d", "-f", str(write_task(tmp_path / "arm.yaml", ARM_TASK))).returncode == 0
    instance = wait_for("an instance launched", lambda: ec2_instances(aws) or None, timeout=60)[0]
    assert refused and instance["InstanceType"] != refused[0]
    assert "InsufficientInstanceCapacity" in controller.log()
    assert len(ec2_instances(aws)) == 1


def test_no_registration_within_the_timeout_terminates_and_blocks_the_offer(tmp_path: Path, aws: MotoServer) -> None:
    data = tmp_path / "ctl"
    write_config(data, aws, register_timeout="3s")
    controller = ControllerProcess(data)
    controller.start()
    try:
        first = submit_and_wait_for_a_launch(controller, aws, tmp_path)
        # Nobody registers: terminated, and the next launch is another offering (the first is blocked).
        wait_for("a second launch", lambda: [i for i in ec2_instances(aws) if i["InstanceId"] != first["InstanceId"]]
                 or None, timeout=60)  # fmt: skip
        states = {
            i["InstanceId"]: i["State"]["Name"]
            for i in ec2_instances(aws, ("pending", "running", "terminated", "shutting-down"))
        }
        assert states[first["InstanceId"]] in ("terminated", "shutting-down")
        second = next(i for i in ec2_instances(aws) if i["InstanceId"] != first["InstanceId"])
        assert second["InstanceType"] != first["InstanceType"] or (
            second["Placement"]["AvailabilityZone"] != first["Placement"]["AvailabilityZone"]
        )
        assert "no agent registered within" in controller.log()
    finally:
        controller.stop()


def test_a_cloud_fleet_naming_a_region_the_api_does_not_list_is_refused(
    burst_controller: ControllerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("type: fleet\nname: typo\nnodes: 0..1\nbackends: [aws]\nregions: [eu-wst-1]\n")
    out = burst_controller.ctl("apply", "-f", str(path))
    assert out.returncode == 2, out
    assert "region eu-wst-1 is not one of the regions aws lists (eu-west-1)" in out.stderr
    assert "Traceback" not in out.stderr
    assert all(f["name"] != "typo" for f in burst_controller.ctl_json("fleet"))
    path.write_text("type: fleet\nname: fine\nnodes: 0..1\nbackends: [aws]\nregions: [EU-WEST-1]\n")
    assert burst_controller.ctl("apply", "-f", str(path)).returncode == 0


def test_a_fleets_nodes_maximum_caps_the_instances(
    burst_controller: ControllerProcess, aws: MotoServer, tmp_path: Path
) -> None:
    controller = burst_controller
    apply(controller, tmp_path / "fleet.yaml", CLOUD_FLEET.replace("nodes: 0..2", "nodes: 0..1"))
    for name in ("first", "second"):
        task = write_task(tmp_path / f"{name}.yaml", ARM_TASK.replace("name: arm-burst", f"name: {name}"))
        assert controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    wait_for("an instance launched", lambda: ec2_instances(aws) or None, timeout=60)
    row = wait_for(
        "the second task told why",
        lambda: next((t for t in controller.ctl_json("ps") if "nodes maximum" in t["reason"]), None),
        timeout=30,
    )
    assert row["status"] == "pending" and "fleet cloud is at its nodes maximum" in row["reason"]
    assert len(ec2_instances(aws)) == 1
