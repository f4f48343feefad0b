"""Mutual TLS between agents and the controller: a certificate speaks for its own host only,
removal revokes it, renewal keeps it alive, and plaintext exists only behind --insecure."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from tests.integration.conftest import Cluster, start_cluster, stop_cluster
from tests.support.cluster import AgentProcess, ControllerProcess, wait_for, write_task
from tests.support.dockerd import DockerEngine

pytestmark = pytest.mark.docker


def host_channel(controller: ControllerProcess, state_dir: Path) -> grpc.Channel:
    """A raw mutual-TLS channel to the agent port with the identity an agent keeps in its state dir."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=(state_dir / "ca.crt").read_bytes(),
        private_key=(state_dir / "host.key").read_bytes(),
        certificate_chain=(state_dir / "host.crt").read_bytes(),
    )
    return grpc.secure_channel(
        f"127.0.0.1:{controller.agent_port}", creds, options=[("grpc.ssl_target_name_override", "dstack-controller")]
    )


def connect(controller: ControllerProcess, state_dir: Path, messages: list[pb.AgentMessage]) -> list[str]:
    """Sends `messages` on a stream as that host; returns what kinds of answers came back."""
    with host_channel(controller, state_dir) as channel:
        answers = pb_grpc.AgentServiceStub(channel).Connect(iter(messages), timeout=10)
        return [a.WhichOneof("body") for a in answers]


def registered(cluster: Cluster, tmp_path: Path, name: str) -> tuple[AgentProcess, str]:
    agent = AgentProcess(cluster.controller, tmp_path / name, cluster.controller.token(), name)
    agent.start_and_wait_online()
    host_id = json.loads((tmp_path / name / "credential.json").read_text())["host_id"]
    return agent, host_id


def hello(host_id: str) -> pb.AgentMessage:
    return pb.AgentMessage(hello=pb.Hello(host_id=host_id, facts=pb.HostFacts(arch="amd64", arch_raw="x86_64")))


def test_state_dir_holds_a_local_key_and_a_certificate_naming_the_host(cluster: Cluster, tmp_path: Path) -> None:
    agent, host_id = registered(cluster, tmp_path, "keyed")
    try:
        state = tmp_path / "keyed"
        assert (state / "host.key").stat().st_mode & 0o777 == 0o600
        assert json.loads((state / "credential.json").read_text())["credential"] == ""  # no bearer secret with TLS
        from controller.pki.ca import host_id_from_cert

        assert host_id_from_cert((state / "host.crt").read_bytes()) == host_id
        assert (state / "ca.crt").read_bytes() == cluster.controller.ca_file.read_bytes()
    finally:
        agent.stop()


def test_a_certificate_cannot_claim_another_host(cluster: Cluster, tmp_path: Path) -> None:
    mallory, _ = registered(cluster, tmp_path, "mallory")
    mallory.stop()
    victim_id = next(h["id"] for h in cluster.controller.ctl_json("hosts") if h["name"] == "local")
    with pytest.raises(grpc.RpcError) as exc:
        connect(cluster.controller, tmp_path / "mallory", [hello(victim_id)])
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "this certificate belongs to host" in (exc.value.details() or "")
    assert "claimed to be host" in cluster.controller.log()
    # The victim is untouched: still online, with its own facts.
    victim = next(h for h in cluster.controller.ctl_json("hosts") if h["name"] == "local")
    assert victim["status"] == "online" and victim["facts"]["hostname"] != ""


def test_a_host_cannot_report_logs_or_status_for_another_hosts_task(cluster: Cluster, tmp_path: Path) -> None:
    task = write_task(
        tmp_path / "t.yaml",
        "type: task\nname: not-yours\nimage: dstack-test/busybox:amd64\ncommands: ['echo mine; sleep 20']\n",
    )
    assert cluster.controller.ctl("submit", "-d", "-f", str(task)).returncode == 0
    row = cluster.controller.wait_status("not-yours", "running")
    wait_for("the first line", lambda: cluster.controller.logs("not-yours").stdout == "mine\n")
    intruder, intruder_id = registered(cluster, tmp_path, "intruder")
    intruder.stop()
    forged_line = pb.LogLine(stream=pb.LOG_STREAM_STDOUT, seq=1, ts_ns=time.time_ns(), data=b"forged\n")
    forged_exit = pb.TaskEvent(task_id=row["id"], kind=pb.TASK_EVENT_KIND_EXITED, exit_code=0)
    connect(cluster.controller, tmp_path / "intruder", [
        hello(intruder_id),
        pb.AgentMessage(log=pb.LogChunk(task_id=row["id"], lines=[forged_line])),
        pb.AgentMessage(task_event=forged_exit),
    ])  # fmt: skip
    assert cluster.controller.logs("not-yours").stdout == "mine\n"
    assert cluster.controller.task("not-yours")["status"] == "running"
    assert "which is not its own: dropped" in cluster.controller.log()
    cluster.controller.ctl("stop", "--abort", "not-yours")
    cluster.controller.wait_status("not-yours", "stopped")


def test_removing_a_host_revokes_its_certificate(cluster: Cluster, tmp_path: Path) -> None:
    doomed, _ = registered(cluster, tmp_path, "doomed")
    out = cluster.controller.ctl("hosts", "rm", "doomed")
    assert out.returncode == 0 and out.stdout.strip() == "removed doomed; its certificate no longer connects"
    assert doomed.proc is not None
    assert doomed.proc.wait(timeout=30) == 1  # its reconnect was refused, so it stopped
    assert "the controller refused this host's credential" in doomed.log()
    assert "doomed" not in [h["name"] for h in cluster.controller.ctl_json("hosts")]
    with pytest.raises(grpc.RpcError) as exc:
        connect(cluster.controller, tmp_path / "doomed", [hello("")])
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    missing = cluster.controller.ctl("hosts", "rm", "doomed")
    assert missing.returncode == 2 and missing.stderr.strip() == "dstackctl: no host named 'doomed'"


def test_host_certificates_are_renewed_before_they_expire(
    tmp_path: Path, docker_engine: DockerEngine, busybox_images: dict[str, str]
) -> None:
    controller = ControllerProcess(tmp_path / "controller", extra=["--host-cert-validity", "6s"])
    controller.start()
    agent = AgentProcess(controller, tmp_path / "agent", controller.token(), "short-lived")
    try:
        agent.start_and_wait_online()
        first = (tmp_path / "agent/host.crt").read_bytes()
        wait_for("a renewed certificate", lambda: (tmp_path / "agent/host.crt").read_bytes() != first, timeout=20)
        assert "renewed the certificate of host short-lived" in controller.log()
        time.sleep(7)  # the first certificate has expired by now
        agent.kill()
        agent.start()  # a fresh handshake needs a valid certificate
        wait_for("host online again", agent.online, timeout=30)
    finally:
        agent.stop()
        controller.stop()


def test_plaintext_only_with_insecure(tmp_path: Path, docker_engine: DockerEngine,
                                      busybox_images: dict[str, str]) -> None:  # fmt: skip
    controller = ControllerProcess(tmp_path / "controller", insecure=True)
    controller.start()
    agent = AgentProcess(controller, tmp_path / "agent", controller.token(), "plain")
    try:
        assert "--insecure: plaintext gRPC" in controller.log()
        agent.start_and_wait_online()
        task = write_task(tmp_path / "t.yaml", "type: task\nimage: dstack-test/busybox:amd64\ncommands: [echo plain]\n")
        out = controller.ctl("submit", "-f", str(task), "--name", "plain")
        assert out.returncode == 0 and out.stdout == "plain\n"
        assert json.loads((tmp_path / "agent/credential.json").read_text())["credential"].startswith("dh1.")
    finally:
        agent.stop()
        controller.stop()


@pytest.fixture
def tls_cluster(tmp_path: Path, docker_engine: DockerEngine, busybox_images: dict[str, str]) -> Iterator[Cluster]:
    c = start_cluster(tmp_path, None)
    yield c
    stop_cluster(c)


def test_an_agent_does_not_speak_plaintext_to_a_tls_controller(tls_cluster: Cluster, tmp_path: Path) -> None:
    token = tls_cluster.controller.token()
    agent = AgentProcess(tls_cluster.controller, tmp_path / "plain-agent", token, "plain-agent", "insecure: true\n")
    agent.start()
    try:
        # It cannot get through: it retries as if the controller were down, and never registers.
        wait_for("a refused plaintext attempt", lambda: "cannot register with" in agent.log(), timeout=30)
        assert not (tmp_path / "plain-agent" / "credential.json").exists()
        assert "plain-agent" not in [h["name"] for h in tls_cluster.controller.ctl_json("hosts")]
    finally:
        agent.stop()
