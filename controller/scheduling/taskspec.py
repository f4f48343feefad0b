"""The task configuration model, read for what the controller needs: reservations,
the required arch and the agent's RunSpec. The only place that knows the model's shape."""

from __future__ import annotations

from functools import lru_cache

from dstack_hybrid.shared.bounded_input import check_json
from dstack_hybrid.v1 import hybrid_pb2 as pb
from pydantic import ValidationError

from controller.configs.task import TaskConfiguration


@lru_cache(maxsize=4096)
def parse(configuration_json: str) -> TaskConfiguration:
    """The task a client sent: InputRefused (a ValueError) past the bounds dstackctl applies to
    the YAML, so a client that skips dstackctl gets the same limits; ValueError when invalid."""
    check_json(configuration_json, "the task configuration")
    try:
        return TaskConfiguration.model_validate_json(configuration_json)
    except ValidationError as exc:
        raise ValueError(first_error(exc)) from None


def first_error(exc: ValidationError) -> str:
    """pydantic's first error as "resources.cpu: why", without its "Value error, " prefix."""
    error = exc.errors(include_url=False)[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {message}" if where else message


def explicit_arch(config: TaskConfiguration) -> str | None:
    return config.resources.cpu.arch


def reservation(config: TaskConfiguration) -> tuple[float, int]:
    """(CPUs, memory bytes) the task holds on its host: the lower bounds of its ranges."""
    cpu = config.resources.cpu.count.min or 1
    memory = config.resources.memory.min or 0
    return float(cpu), int(memory)


def run_spec(config: TaskConfiguration) -> pb.RunSpec:
    cpu, memory = reservation(config)
    cpu_max = config.resources.cpu.count.max
    mem_max = config.resources.memory.max
    shm = config.resources.shm_size
    return pb.RunSpec(
        image=config.image,
        commands=list(config.commands),
        env=dict(config.env),
        # The container may use up to the range's upper bound, or what it reserved when unbounded.
        cpu_limit=float(cpu_max) if cpu_max else cpu,
        memory_limit_bytes=int(mem_max) if mem_max else memory,
        working_dir=config.working_dir or "",
        privileged=config.privileged,
        shm_size_bytes=int(shm or 0),
    )


def resources_text(config: TaskConfiguration) -> str:
    r = config.resources
    parts = [f"cpu={r.cpu}", f"mem={r.memory}"]
    if r.gpu is not None:
        parts.append(f"gpu={r.gpu}")
    if r.disk is not None:
        parts.append(f"disk={r.disk}")
    return " ".join(parts)
