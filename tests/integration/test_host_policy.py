"""Host policy through real processes: what a host's agent.yaml forbids is refused at submit (exit 2,
nothing stored), shown per host by `offers`, and refused again by the agent itself on the path as
its host resolves it; what real tasks mount (a checkpoints directory) still runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from agent.runtime import labels
from tests.integration.conftest import Cluster
from tests.support.cluster import AgentProcess, ControllerProcess, wait_for, write_task
from tests.support.dockerd import DockerEngine

pytestmark = pytest.mark.docker

IMAGE = "dstack-test/busybox:amd64"


def task_file(tmp_path: Path, name: str, extra: str) -> Path:
    return write_task(
        tmp_path / f"{name}.yaml",
        f"type: task\nname: {name}\nimage: {IMAGE}\ncommands:\n  - echo ran\nresources:\n  memory: 32MB..\n{extra}",
    )


def containers_of(engine: DockerEngine, name: str) -> list[object]:
    return engine.client().containers.list(all=True, filters={"label": f"{labels.TASK_NAME}={name}"})


def task_names(controller: ControllerProcess) -> set[str]:
    return {t["name"] for t in controller.ctl_json("ps", "-a")}


REFUSED_AT_SUBMIT = [
    ("root", 'volumes: ["/:/host"]\n', "host local does not allow mounting /: / is the host's root file system"),
    (
        "socket",
        'volumes: ["/var/run/docker.sock:/docker.sock"]\n',
        "host local does not allow mounting /var/run/docker.sock: /var/run/docker.sock is a system path (/var/run)",
    ),
    ("etc-dots", "volumes:\n  - instance_path: /srv/../etc/\n    path: /e\n", None),  # the model refuses `..`
    ("privileged", "privileged: true\n", "host local refuses: privileged containers are not allowed"),
]


@pytest.mark.parametrize(("name", "extra", "reason"), REFUSED_AT_SUBMIT, ids=[r[0] for r in REFUSED_AT_SUBMIT])
def test_forbidden_task_is_refused_at_submit_with_nothing_stored(
    cluster: Cluster, docker_engine: DockerEngine, tmp_path: Path, name: str, extra: str, reason: str | None
) -> None:
    out = cluster.controller.ctl("submit", "-f", str(task_file(tmp_path, f"deny-{name}", extra)))
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr
    if reason is not None:
        assert f"no registered host allows this task: {reason}" in out.stderr
    assert f"deny-{name}" not in task_names(cluster.controller)
    assert containers_of(docker_engine, f"deny-{name}") == []


def test_offers_shows_the_policy_per_host(cluster: Cluster, tmp_path: Path) -> None:
    rows = cluster.controller.ctl_json("offers", "-f", str(task_file(tmp_path, "offers-root", 'volumes: ["/:/h"]\n')))
    (row,) = [r for r in rows if r["host"] == "local"]
    assert not row["chosen"]
    assert row["reason"] == "host local does not allow mounting /: / is the host's root file system"


def test_raw_grpc_submit_skipping_dstackctl_is_refused_too(cluster: Cluster) -> None:
    controller = cluster.controller
    credentials = grpc.ssl_channel_credentials(root_certificates=controller.ca_file.read_bytes())
    options = [("grpc.ssl_target_name_override", CONTROLLER_SAN)]
    config = f'{{"type": "task", "name": "raw-root", "image": "{IMAGE}", "volumes": ["/:/host"], "privileged": true}}'
    with grpc.secure_channel(controller.address, credentials, options=options) as channel:
        stub = pb_grpc.ClientServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            stub.Submit(
                pb.SubmitRequest(configuration_json=config),
                metadata=(("authorization", f"Bearer {controller.admin_token}"),),
                timeout=30,
            )
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "privileged containers are not allowed" in (failed.value.details() or "")
    assert "raw-root" not in task_names(controller)


def test_agent_refuses_a_symlink_into_etc_that_only_its_realpath_reveals(
    cluster: Cluster, docker_engine: DockerEngine, tmp_path: Path
) -> None:
    # As written the path is an ordinary directory, so the controller places it; on the host it is /etc.
    link = tmp_path / "looks-harmless"
    link.symlink_to("/etc")
    name = "deny-symlink"
    out = cluster.controller.ctl("submit", "-d", "-f", str(task_file(tmp_path, name, f'volumes: ["{link}:/e"]\n')))
    assert out.returncode == 0, out.stderr
    expected = f"cannot mount {link} (resolves to /etc): /etc is a system path (/etc)"
    row = wait_for(
        "the agent's refusal", lambda: (t := cluster.controller.task(name))["reason"] and expected in t["reason"] and t
    )
    assert row["status"] == "pending"  # the only host refused it: it never goes back there
    assert row["reason"].startswith("refused by this host's policy: ")
    assert row["reason"].endswith("(no live host fits (1 refused): local: refused this task before)")
    assert containers_of(docker_engine, name) == []
    assert "refused by this host's policy" in cluster.agent.log()
    assert cluster.controller.ctl("stop", name).returncode == 0


def test_a_checkpoints_directory_runs_under_the_default_policy(cluster: Cluster, tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "step-100").write_text("weights\n")
    task = write_task(
        tmp_path / "ckpt.yaml",
        f"type: task\nname: ckpt\nimage: {IMAGE}\nvolumes: ['{checkpoints}:/checkpoints']\n"
        "commands:\n  - cat /checkpoints/step-100\n  - echo saved > /checkpoints/step-200\n",
    )
    out = cluster.controller.ctl("submit", "-f", str(task))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "weights\n"
    assert (checkpoints / "step-200").read_text() == "saved\n"


@pytest.fixture
def allow_list_cluster(
    tmp_path: Path, docker_engine: DockerEngine, busybox_images: dict[str, str]
) -> Iterator[tuple[ControllerProcess, Path]]:
    """One host whose agent.yaml admits only <tmp>/data."""
    data = tmp_path / "data"
    data.mkdir()
    controller = ControllerProcess(tmp_path / "controller")
    controller.start()
    config = f"host_paths:\n  mode: allow-list\n  allow: [{data}]\n"
    agent = AgentProcess(controller, tmp_path / "agent", controller.token(), "listed", config=config)
    try:
        agent.start_and_wait_online()
        yield controller, data
    finally:
        agent.stop()
        controller.stop()


def test_an_allow_list_admits_exactly_the_listed_prefix(
    allow_list_cluster: tuple[ControllerProcess, Path], docker_engine: DockerEngine, tmp_path: Path
) -> None:
    controller, data = allow_list_cluster
    (host,) = controller.ctl_json("hosts")
    assert host["facts"]["policy"]["host_paths"] == "allow-list"
    assert host["facts"]["policy"]["allow"] == [str(data)]
    verbose = controller.ctl("hosts", "-v")
    assert f"host paths: only {data}; privileged: no" in verbose.stdout, verbose.stdout
    (data / "set").mkdir()
    inside = task_file(tmp_path, "inside", f"volumes: ['{data}/set:/d']\n")
    assert controller.ctl("submit", "-f", str(inside)).returncode == 0
    database = tmp_path / "database"  # `data` is a prefix of its name, not of its path
    database.mkdir()
    for name, path in (("beside", database), ("parent", tmp_path), ("other", Path("/srv"))):
        out = controller.ctl("submit", "-f", str(task_file(tmp_path, name, f"volumes: ['{path}:/d']\n")))
        assert out.returncode == 2, out.stderr
        assert f"host listed does not allow mounting {path}: {path} is not under the host's allowed paths ({data})" in (
            out.stderr
        )
        assert name not in task_names(controller)
        assert containers_of(docker_engine, name) == []
