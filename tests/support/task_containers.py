"""The task containers a test made, found by the agent's task-id label (agent/runtime/labels.py):
listed for assertions, removed at the end by id, never by name."""

from __future__ import annotations

import contextlib
from typing import Any

import docker.errors

from agent.runtime import labels
from tests.support.dockerd import DockerEngine


def containers_of(engine: DockerEngine, task_id: str) -> list[Any]:
    """Every container of the task on the engine, running or not, of any attempt. Sparse: a full
    list inspects each container after listing it, and one removed in between (what tests wait
    for) fails the whole call with 404."""
    client = engine.client()
    try:
        return list(client.containers.list(all=True, sparse=True, filters={"label": f"{labels.TASK_ID}={task_id}"}))
    finally:
        client.close()


def remove_task_containers(engine: DockerEngine, task_ids: list[str]) -> None:
    for task_id in task_ids:
        for container in containers_of(engine, task_id):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
