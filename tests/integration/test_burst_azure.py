"""Bursting to Azure and `instance-types check`, through a real controller process, against the
loopback HTTPS Resource Manager fake (tests/support/azure_fake.py) and moto for AWS."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.azure_fake import AzureFake
from tests.support.canonical_images import NEWEST_NOBLE_SERVER
from tests.support.cluster import BIN, ControllerProcess, Process, wait_for, write_task
from tests.support.moto_server import MotoServer

FACTS = Path(__file__).parents[1] / "fixtures" / "sim" / "host.json"


@pytest.fixture(scope="module")
def azure() -> Iterator[AzureFake]:
    with AzureFake() as fake:
        yield fake


def azure_backend(fake: AzureFake) -> str:
    return f"""\
  - type: azure
    subscription_id: {fake.subscription_id}
    tenant_id: {fake.tenant_id}
    resource_group: {next(iter(fake.resource_groups.values()))}
    regions: [westeurope]
    base_url: {fake.url}
    prices_url: {fake.prices_url}
    ca_bundle: {fake.ca_file}
    creds:
      type: client
      client_id: {fake.client_id}
      client_secret: {fake.client_secret}
      authority_host: {fake.url}
"""


def start_controller(tmp_path: Path, backends: str) -> ControllerProcess:
    data = tmp_path / "ctl"
    data.mkdir()
    (data / "config.yaml").write_text(
        f"backends:\n{backends}burst:\n  controller_address: 192.0.2.10:7443\n  register_timeout: 10m\n"
    )
    controller = ControllerProcess(data)
    controller.start()
    return controller


def test_instance_types_check_asks_both_clouds(tmp_path: Path, azure: AzureFake, moto_server: MotoServer) -> None:
    azure.reset()
    moto_server.reset()
    moto_server.register_canonical_images("us-east-1")
    aws = f"""\
  - type: aws
    regions: [us-east-1]
    endpoint_url: {moto_server.url}
    creds: {{type: access_key, access_key: testing, secret_key: testing}}
"""
    controller = start_controller(tmp_path, aws + azure_backend(azure))
    try:
        names = ["Standard_D2s_v6", "Standard_A4_v2", "Standard_D2s_v3", "Standard_B2s", "Standard_D2ps_v6"]
        names += ["m7g.large", "m5.large", "m1.small"]
        out = controller.ctl("instance-types", "check", *names, "--json")
        assert out.returncode == 0, out.stderr
        checks = {c["name"]: c for c in json.loads(out.stdout)}
        assert set(checks) == set(names)

        d2s_v6 = checks["Standard_D2s_v6"]
        assert (d2s_v6["backend"], d2s_v6["arch"], d2s_v6["vcpus"]) == ("azure", "amd64", 2)
        assert d2s_v6["hyperv_generations"] == ["V2"] and d2s_v6["disk_controllers"] == ["NVMe"]
        assert (d2s_v6["generation"], d2s_v6["disk_controller"], d2s_v6["supported"]) == ("V2", "NVMe", True)
        assert d2s_v6["image"] == "Canonical:ubuntu-24_04-lts:server:latest"
        assert d2s_v6["lifecycle"] == "current"

        a4 = checks["Standard_A4_v2"]
        assert (a4["generation"], a4["disk_controller"], a4["supported"]) == ("V1", "SCSI", True)
        assert a4["image"] == "Canonical:ubuntu-24_04-lts:server-gen1:latest"

        d2s_v3 = checks["Standard_D2s_v3"]
        assert d2s_v3["supported"] and d2s_v3["generation"] == "V2" and d2s_v3["lifecycle"] == "retiring"
        assert "Microsoft Learn" in d2s_v3["lifecycle_note"]

        b2s = checks["Standard_B2s"]
        assert b2s["burstable"] and "burstable" in b2s["reason"]

        dpsv6 = checks["Standard_D2ps_v6"]
        assert dpsv6["arch"] == "arm64" and dpsv6["image"] == "Canonical:ubuntu-24_04-lts:server-arm64:latest"

        m7g = checks["m7g.large"]
        assert (m7g["backend"], m7g["arch"], m7g["raw_arch"], m7g["supported"]) == ("aws", "arm64", "arm64", True)
        assert m7g["image"] == NEWEST_NOBLE_SERVER["arm64"]  # Canonical's, found by the default filter
        assert m7g["memory_bytes"] == 8 * 2**30 and m7g["lifecycle"] == "current"
        m5 = checks["m5.large"]
        assert (m5["raw_arch"], m5["supported"], m5["image"]) == ("x86_64", True, NEWEST_NOBLE_SERVER["amd64"])
        m1 = checks["m1.small"]  # DescribeInstanceTypes says CurrentGeneration: false
        assert m1["lifecycle"] == "retiring" and "previous generation" in m1["lifecycle_note"]

        human = controller.ctl("instance-types", "check", "Standard_D2s_v6", "--backend", "azure")
        assert human.returncode == 0, human.stderr
        assert "Standard_D2s_v6 (azure westeurope)" in human.stdout and "NVMe" in human.stdout

        unknown = controller.ctl("instance-types", "check", "Standard_Nope_v9")
        assert unknown.returncode == 1
        assert "not offered" in unknown.stdout
    finally:
        controller.stop()


def test_a_urn_canonical_does_not_publish_is_named_by_instance_types_check_and_launches_nothing(
    tmp_path: Path, azure: AzureFake
) -> None:
    """The jammy offer's naming carried over to noble (server-gen2 is no SKU of ubuntu-24_04-lts):
    the check names the key and the image, and a burst never creates a NIC or VM."""
    azure.reset()
    backend = azure_backend(azure) + "    images: {gen2_arm64: 'Canonical:ubuntu-24_04-lts:server-gen2-arm64:latest'}\n"
    controller = start_controller(tmp_path, backend)
    try:
        out = controller.ctl("instance-types", "check", "Standard_D2ps_v6", "Standard_D2s_v6", "--json")
        assert out.returncode == 0, out.stderr
        checks = {c["name"]: c for c in json.loads(out.stdout)}
        arm = checks["Standard_D2ps_v6"]
        assert arm["supported"] is False
        assert (
            "image Canonical:ubuntu-24_04-lts:server-gen2-arm64:latest (images.gen2_arm64) "
            "is not published in westeurope"
            in arm["reason"]
        )
        assert checks["Standard_D2s_v6"]["supported"] is True  # the default gen2_amd64 is Canonical's

        (tmp_path / "fleet.yaml").write_text("type: fleet\nname: az\nnodes: 0..1\nbackends: [azure]\n")
        assert controller.ctl("apply", "-f", str(tmp_path / "fleet.yaml")).returncode == 0
        task = write_task(
            tmp_path / "arm.yaml",
            'type: task\nname: az-arm\nimage: busybox\ncommands: ["uname -m"]\nresources:\n  cpu: arm:2..\n',
        )
        assert controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
        wait_for(
            "the task told why",
            lambda: "is not published" in controller.task("az-arm")["reason"] or None,
            timeout=60,
        )
        assert not azure.calls("PUT", r"/(virtualMachines|networkInterfaces)/")
    finally:
        controller.stop()


def test_an_arm64_task_bursts_to_an_azure_arm64_size_with_the_arm64_image(tmp_path: Path, azure: AzureFake) -> None:
    azure.reset()
    controller = start_controller(tmp_path, azure_backend(azure))
    try:
        fleet = "type: fleet\nname: az\nnodes: 0..1\nbackends: [azure]\nidle_duration: 1h\n"
        (tmp_path / "fleet.yaml").write_text(fleet)
        assert controller.ctl("apply", "-f", str(tmp_path / "fleet.yaml")).returncode == 0
        task = write_task(
            tmp_path / "arm.yaml",
            'type: task\nname: az-arm\nimage: busybox\ncommands: ["uname -m"]\nenv:\n  DSTACK_SIM_SECONDS: "1"\n'
            "resources:\n  cpu: arm:2..\n",
        )
        assert controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
        vm = wait_for("a VM created", lambda: next(iter(azure.vms.values()), None), timeout=60)
        props = vm["properties"]
        assert props["hardwareProfile"]["vmSize"] == "Standard_D2ps_v6"
        assert props["storageProfile"]["imageReference"]["sku"] == "server-arm64"
        assert vm["tags"]["dstack-hybrid-fleet"] == "az"
        # ARM never returns customData; the PUT the controller sent has it.
        (put,) = [c for c in azure.calls("PUT", "/virtualMachines/") if c[3] and "hardwareProfile" in str(c[3])]
        assert put[3]["properties"]["storageProfile"]["imageReference"]["sku"] == "server-arm64"
        user_data = base64.b64decode(put[3]["properties"]["osProfile"]["customData"]).decode()
        assert user_data.startswith("#cloud-config\n") and '"192.0.2.10:7443"' in user_data
        token_line = next(ln for ln in user_data.splitlines() if ln.strip().startswith("join_token:"))
        token = json.loads(token_line.split(":", 1)[1].strip())

        sim = start_vm_agent(controller, tmp_path, vm, token)
        try:
            done = controller.wait_status("az-arm", "done", timeout=60)
            fleet = next(f for f in controller.ctl_json("fleet") if f["name"] == "az")
            (instance,) = fleet["instances"]
            assert (instance["backend"], instance["region"], instance["instance_id"], instance["host"]) == (
                "azure", "westeurope", props["vmId"], done["host"]
            )  # fmt: skip
        finally:
            sim.stop()
    finally:
        controller.stop()


def start_vm_agent(controller: ControllerProcess, tmp_path: Path, vm: dict[str, Any], token: str) -> Process:
    facts = json.loads(FACTS.read_text())
    zone = (vm.get("zones") or [""])[0]
    facts["cloud"] = {
        "provider": "azure", "region": vm["location"], "zone": zone, "zone_id": None,
        "instance_type": vm["properties"]["hardwareProfile"]["vmSize"], "instance_id": vm["properties"]["vmId"],
        "spot": False, "hyperv_generation": "V2",
    }  # fmt: skip
    facts["region"], facts["zone"] = vm["location"], zone
    template = tmp_path / "vm-facts.json"
    template.write_text(json.dumps(facts))
    (tmp_path / "no-agent.yaml").write_text("cloud: off\n")
    args = [str(BIN / "dstack-agent"), "simulate", "--count", "1", "--facts", str(template), "--arches", "arm64",
            "--keep-instance-id", "--name-prefix", "azvm", "--controller", controller.address, "--join-token", token,
            "--config", str(tmp_path / "no-agent.yaml")]  # fmt: skip
    sim = Process(args, tmp_path / "vm-agent.log", dict(os.environ, DSTACK_AGENT_RECONNECT_MAX_S="1"))
    sim.start()
    return sim


def test_a_restarted_controller_sends_the_disks_lun_to_a_reconnecting_agent(tmp_path: Path, azure: AzureFake) -> None:
    """The LUN Azure gave the data disk is kept in the store: an assignment built by a controller
    restarted after the attach (the agent's reconnect re-assigns its task) names it, not -1."""
    azure.reset()
    controller = start_controller(tmp_path, azure_backend(azure))
    sim: Process | None = None
    try:
        fleet = "type: fleet\nname: az\nnodes: 0..1\nbackends: [azure]\nidle_duration: 1h\n"
        (tmp_path / "fleet.yaml").write_text(fleet)
        assert controller.ctl("apply", "-f", str(tmp_path / "fleet.yaml")).returncode == 0
        volume = "type: volume\nname: disk-we\nbackend: azure\nregion: westeurope\nsize: 10GB\n"
        (tmp_path / "vol.yaml").write_text(volume)
        applied = controller.ctl("apply", "-f", str(tmp_path / "vol.yaml"))
        assert applied.returncode == 0, applied.stderr
        task = write_task(
            tmp_path / "arm.yaml",
            'type: task\nname: az-disk\nimage: busybox\ncommands: ["sleep 600"]\nenv:\n  DSTACK_SIM_SECONDS: "600"\n'
            "resources:\n  cpu: arm:2..\nvolumes:\n  - name: disk-we\n    path: /data\n",
        )
        assert controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
        vm = wait_for("a VM created", lambda: next(iter(azure.vms.values()), None), timeout=60)
        put = next(c for c in azure.calls("PUT", "/virtualMachines/") if c[3] and "osProfile" in str(c[3]))
        user_data = base64.b64decode(put[3]["properties"]["osProfile"]["customData"]).decode()
        token_line = next(ln for ln in user_data.splitlines() if ln.strip().startswith("join_token:"))
        sim = start_vm_agent(controller, tmp_path, vm, json.loads(token_line.split(":", 1)[1].strip()))
        controller.wait_status("az-disk", "running", timeout=60)
        vm = next(iter(azure.vms.values()))
        (disk,) = vm["properties"]["storageProfile"]["dataDisks"]
        lun = disk["lun"]
        assigned = "volume disk-we ("
        assert wait_for("the first assignment", lambda: [ln for ln in sim.log().splitlines() if assigned in ln])[0]
        assert f"LUN {lun}" in sim.log()

        # The same process arguments, so the same ports: the agent reconnects where it registered.
        controller.stop()
        controller.start()
        seen = len([ln for ln in sim.log().splitlines() if assigned in ln])
        again = wait_for(
            "the re-assignment after the reconnect",
            lambda: [ln for ln in sim.log().splitlines() if assigned in ln][seen:] or None,
            timeout=60,
        )
        assert again[0].endswith(f"LUN {lun}"), again[0]
        assert controller.task("az-disk")["status"] == "running"
    finally:
        if sim is not None:
            sim.stop()
        controller.stop()
