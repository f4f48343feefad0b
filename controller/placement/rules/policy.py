"""The host's policy (its agent.yaml): may a task mount these host directories, run privileged.

Checked on the paths as the task wrote them (lexically normalised); the agent checks again with
the paths resolved on the host, where a symlink may lead elsewhere."""

from __future__ import annotations

from dstack_hybrid.shared.host_policy import host_path_problem, privileged_problem

from controller.placement.model import HostView, Requirements


def host_policy(req: Requirements, host: HostView) -> str:
    problem = privileged_problem(req.privileged, host.policy)
    if problem:
        return f"host {host.name} refuses: {problem}"
    for path in req.host_paths:
        problem = host_path_problem(path, host.policy)
        if problem:
            return f"host {host.name} does not allow mounting {path}: {problem}"
    return ""
