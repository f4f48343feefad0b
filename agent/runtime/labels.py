"""Labels on every task container: how the agent finds its containers again after a restart."""

MANAGED = "dev.dstack-hybrid.managed"
TASK_ID = "dev.dstack-hybrid.task-id"
TASK_NAME = "dev.dstack-hybrid.task-name"
HOST_ID = "dev.dstack-hybrid.host-id"


def container_name(task_id: str) -> str:
    # Deterministic, so a create repeated after an agent restart hits a conflict instead of a twin.
    return f"dstack-{task_id}"
