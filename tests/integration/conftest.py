"""A controller and one agent on this machine's Docker engine, as real processes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cluster import AgentProcess, ControllerProcess
from tests.support.dockerd import DockerEngine
from tests.support.registry import Registry
from tests.support.task_containers import remove_task_containers


@dataclass
class Cluster:
    controller: ControllerProcess
    agent: AgentProcess
    root: Path


def start_cluster(root: Path, registry: Registry | None, agent_name: str = "local") -> Cluster:
    mirror = f"http://{registry.addr}" if registry else ""
    controller = ControllerProcess(root / "controller", registry_mirror=mirror)
    controller.start()
    agent = AgentProcess(controller, root / "agent", controller.token(), agent_name)
    agent.start_and_wait_online()
    return Cluster(controller, agent, root)


def stop_cluster(cluster: Cluster) -> None:
    cluster.agent.stop()
    cluster.controller.stop()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: DockerEngine,
    busybox_images: dict[str, str],
    registry: Registry,
) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("cluster"), registry)
    yield c
    stop_cluster(c)


@pytest.fixture
def fresh_cluster(
    tmp_path: Path, docker_engine: DockerEngine, busybox_images: dict[str, str], registry: Registry
) -> Iterator[Cluster]:
    """For tests that kill or restart the programs."""
    c = start_cluster(tmp_path, registry)
    yield c
    stop_cluster(c)


@pytest.fixture
def our_containers(docker_engine: DockerEngine) -> Iterator[list[str]]:
    """Task ids whose containers this test made: removed at the end, whatever happened."""
    task_ids: list[str] = []
    yield task_ids
    remove_task_containers(docker_engine, task_ids)


@pytest.fixture
def lost_fast(
    tmp_path: Path, docker_engine: DockerEngine, busybox_images: dict[str, str], registry: Registry
) -> Iterator[ControllerProcess]:
    """A controller that declares a silent host offline after 5 s and lost after 15 s."""
    controller = ControllerProcess(
        tmp_path / "controller",
        registry_mirror=f"http://{registry.addr}",
        extra=["--host-grace", "5s", "--host-lost-after", "15s"],
    )
    controller.start()
    yield controller
    controller.stop()
