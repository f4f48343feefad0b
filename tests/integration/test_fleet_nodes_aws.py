"""A fleet's `nodes` minimum against moto's AWS on loopback: launched at apply with no task, kept
when an instance dies outside the controller, trimmed when `nodes` is lowered, removed with the
fleet; and its maximum caps launches for tasks. Real controller process, real EC2 API calls
(moto), simulated agents proving to be the launched instances (test_burst_aws.py's helpers)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.integration import test_burst_aws
from tests.integration.test_burst_aws import (
    ARM_TASK,
    REGION,
    apply,
    ec2_instances,
    join_token_in,
    start_instance_agent,
    user_data,
)
from tests.support.cluster import ControllerProcess, Process, wait_for, write_task
from tests.support.moto_server import MotoServer

# The bursting tests' fixtures: moto with Canonical's images, a controller with an aws backend.
aws = test_burst_aws.aws
burst_controller = test_burst_aws.burst_controller

# Instances are sized by the fleet's resources: arm64, 2 vCPUs, 4 GB, no burstable types.
NODES_FLEET = """\
type: fleet
name: cloud
nodes: {nodes}
backends: [aws]
availability_zones: [eu-west-1b]
idle_duration: 1h
resources:
  cpu: arm:2..
  memory: 4GB..
"""


def fleet_instances(controller: ControllerProcess) -> list[dict[str, Any]]:
    rows = controller.ctl_json("fleet")
    return next(f for f in rows if f["name"] == "cloud")["instances"]


def live_ids(moto: MotoServer) -> set[str]:
    return {i["InstanceId"] for i in ec2_instances(moto)}


def n_live(moto: MotoServer, n: int) -> Any:
    """For wait_for: the live instances once there are n of them (a one-item list when n is 0)."""

    def check() -> list[Any] | None:
        found = ec2_instances(moto)
        return (found or [None]) if len(found) == n else None

    return check


def test_a_nodes_minimum_is_launched_kept_trimmed_and_deleted(
    burst_controller: ControllerProcess, aws: MotoServer, tmp_path: Path
) -> None:
    controller = burst_controller
    fleet_file = tmp_path / "fleet.yaml"
    apply(controller, fleet_file, NODES_FLEET.format(nodes=2))

    # No task: two instances, tagged for the fleet and for no task, shown by `dstackctl fleet`.
    first = wait_for("two instances launched", n_live(aws, 2), timeout=60)
    for instance in first:
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["dstack-hybrid-fleet"] == "cloud" and "dstack-hybrid-task" not in tags
        assert instance["Placement"]["AvailabilityZone"] == "eu-west-1b"
    shown = fleet_instances(controller)
    assert sorted(i["instance_id"] for i in shown) == sorted(i["InstanceId"] for i in first)
    assert {i["status"] for i in shown} == {"launching"}
    # Stable: the next passes launch nothing more.
    time.sleep(6)  # a pass runs at least every 5 s
    assert len(ec2_instances(aws, ("pending", "running", "terminated", "shutting-down"))) == 2

    # One terminated outside the controller: replaced at the next inventory (every 30 s).
    gone = first[0]["InstanceId"]
    aws.client("ec2", REGION).terminate_instances(InstanceIds=[gone])
    again = wait_for(
        "a replacement launched",
        lambda: live_ids(aws) if len(live_ids(aws)) == 2 and gone not in live_ids(aws) else None,
        timeout=90,
    )
    assert first[1]["InstanceId"] in again
    wait_for("the fleet shows the replacement",
             lambda: {i["instance_id"] for i in fleet_instances(controller)} == again or None, timeout=30)  # fmt: skip

    # Their agents register: both idle, and kept (idle_duration 1h, and the minimum).
    agents: list[Process] = []
    try:
        for instance in ec2_instances(aws):
            token = join_token_in(user_data(aws, instance["InstanceId"]))
            agents.append(start_instance_agent(controller, tmp_path, instance, token, "arm64", aws))
        wait_for("both idle", lambda: [i["status"] for i in fleet_instances(controller)] == ["idle", "idle"] or None,
                 timeout=60)  # fmt: skip

        # Lowered to 0..1: one idle instance is terminated now; the other stays until idle_duration.
        apply(controller, fleet_file, NODES_FLEET.format(nodes="0..1"))
        left = wait_for("down to one", n_live(aws, 1), timeout=60)
        assert "above its nodes maximum (1)" in controller.log()
        wait_for("the fleet shows one", lambda: len(fleet_instances(controller)) == 1 or None, timeout=30)
        assert [i["instance_id"] for i in fleet_instances(controller)] == [left[0]["InstanceId"]]
        assert fleet_instances(controller)[0]["status"] == "idle"

        # Deleting the fleet terminates what it kept.
        out = controller.ctl("delete", "fleet", "cloud", "--force")
        assert out.returncode == 0, out.stderr
        wait_for("none left", n_live(aws, 0), timeout=60)
        assert "its fleet cloud was deleted" in controller.log()
    finally:
        for agent in agents:
            agent.stop()


def test_the_nodes_maximum_caps_launches_for_tasks_and_says_so(
    burst_controller: ControllerProcess, aws: MotoServer, tmp_path: Path
) -> None:
    controller = burst_controller
    apply(controller, tmp_path / "fleet.yaml", NODES_FLEET.format(nodes="1..1"))
    instance = wait_for("the minimum launched", n_live(aws, 1), timeout=60)[0]

    # Two tasks that each take a whole instance (2 vCPUs, sized as the fleet's resources).
    long_task = ARM_TASK.replace('DSTACK_SIM_SECONDS: "1"', 'DSTACK_SIM_SECONDS: "120"')
    for name in ("first", "second"):
        task = write_task(tmp_path / f"{name}.yaml", long_task.replace("name: arm-burst", f"name: {name}"))
        assert controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    token = join_token_in(user_data(aws, instance["InstanceId"]))
    agent = start_instance_agent(controller, tmp_path, instance, token, "arm64", aws)
    try:
        running = wait_for(
            "one task running",
            lambda: [t for t in controller.ctl_json("ps") if t["status"] == "running"] or None,
            timeout=60,
        )
        assert len(running) == 1
        waiting = next(t for t in controller.ctl_json("ps") if t["name"] != running[0]["name"])
        assert waiting["status"] == "pending"
        assert "fleet cloud is at its nodes maximum (1)" in waiting["reason"], waiting
        # Still one instance ever launched: the cap held for the tasks too.
        assert len(ec2_instances(aws, ("pending", "running", "terminated", "shutting-down"))) == 1
    finally:
        agent.stop()
