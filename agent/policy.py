"""This host's policy for tasks (agent.yaml) and the agent's own check of an assignment against it,
made before anything is pulled or created: the controller checks the same policy when it places,
but only on the paths as written; here they are resolved on this host, so a symlink or `..` that
leads into a system path is caught, and a client that reaches the controller some other way gets
no further than the agent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from dstack_hybrid.shared.host_policy import (
    ALLOW_LIST,
    DENY_SYSTEM,
    HostPolicy,
    host_path_problem,
    privileged_problem,
)

from agent.config import AgentConfig

if TYPE_CHECKING:  # `dstack-agent facts` reads the policy without loading protobuf
    from dstack_hybrid.v1 import hybrid_pb2 as pb

DEFAULT_SOCKET = "/var/run/docker.sock"


def engine_socket(docker_host: str | None) -> str | None:
    """The engine's unix socket path (DOCKER_HOST / docker_host, else the default); None for tcp://."""
    address = docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    return address.removeprefix("unix://") if address.startswith("unix://") else None


def host_policy(config: AgentConfig, state_dir: Path) -> HostPolicy:
    """The policy agent.yaml sets, with what this host never lets a task mount, resolved here."""
    never = [os.path.realpath(state_dir)]
    socket = engine_socket(config.docker_host)
    if socket:
        never.append(os.path.realpath(socket))
    mode = config.host_paths.get("mode", DENY_SYSTEM)
    return HostPolicy(
        host_paths=mode,
        allow=tuple(config.host_paths.get("allow", ())) if mode == ALLOW_LIST else (),
        never=tuple(dict.fromkeys(never)),
        allow_privileged=config.allow_privileged,
    )


def refusal(spec: pb.RunSpec, policy: HostPolicy) -> str:
    """Why this host will not run `spec` ("" when it will): one sentence naming what it asked for."""
    problem = privileged_problem(spec.privileged, policy)
    if problem:
        return f"refused by this host's policy: {problem} (allow_privileged in agent.yaml)"
    for mount in spec.mounts:
        if mount.cloud_volume_id:
            continue  # the agent mounts the attached disk itself, under its state dir
        resolved = os.path.realpath(mount.source)
        problem = host_path_problem(resolved, policy)
        if problem:
            shown = mount.source if resolved == mount.source else f"{mount.source} (resolves to {resolved})"
            return f"refused by this host's policy: cannot mount {shown}: {problem} (host_paths in agent.yaml)"
    return ""
