"""Labels on every task container: how the agent finds its containers again after a restart."""

MANAGED = "dev.dstack-hybrid.managed"
TASK_ID = "dev.dstack-hybrid.task-id"
TASK_NAME = "dev.dstack-hybrid.task-name"
HOST_ID = "dev.dstack-hybrid.host-id"
# Which attempt of the task the container runs (a retried task runs again in a new container).
# A container without it is from before attempts: the task's first.
ATTEMPT = "dev.dstack-hybrid.attempt"


def container_name(task_id: str, attempt: int = 1) -> str:
    # Deterministic, so a create repeated after an agent restart hits a conflict instead of a twin.
    # The first attempt keeps the name it had before attempts, so an upgraded agent finds it again;
    # later ones differ, so two attempts (two hosts on one engine, in tests) never share a name.
    return f"dstack-{task_id}" if attempt <= 1 else f"dstack-{task_id}-{attempt}"


def attempt_of(container_labels: dict[str, str]) -> int:
    try:
        return max(1, int(container_labels.get(ATTEMPT, "1")))
    except ValueError:
        return 1
