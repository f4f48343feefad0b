"""The host policy's pure path check (shared by the controller, on paths as written, and the agent,
on paths resolved on its host), the placement rule and submit check built on it, and the agent's
own refusal on a real file system (a symlink only realpath reveals)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dstack_hybrid.shared.host_policy import (
    ALLOW_LIST,
    DEFAULT_POLICY,
    HostPolicy,
    from_proto,
    host_path_problem,
    to_proto,
)
from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.policy import engine_socket, refusal
from controller.configs.task import TaskConfiguration
from controller.placement import HostIndex, HostView, Requirements, place
from controller.scheduling.requirements import SubmitError, check_host_policy, requirements

STATE = HostPolicy(never=("/var/lib/dstack-agent", "/run/docker.sock"))

# (path as a task writes it, why the default policy refuses it: a fragment, or "" when it admits it)
DEFAULT_ROWS = [
    ("/", "the host's root file system"),
    ("//", "the host's root file system"),
    ("/etc", "/etc is a system path (/etc)"),
    ("/etc/", "/etc is a system path (/etc)"),
    ("//etc", "/etc is a system path (/etc)"),
    ("/etc/ssh/sshd_config", "/etc/ssh/sshd_config is a system path (/etc)"),
    ("/data/../etc", "/etc is a system path (/etc)"),
    ("/data/./../../etc/", "/etc is a system path (/etc)"),
    ("/usr/local", "system path (/usr)"),
    ("/bin", "system path (/bin)"),
    ("/sbin", "system path (/sbin)"),
    ("/lib", "system path (/lib*)"),
    ("/lib64", "system path (/lib*)"),
    ("/libx32/ld.so", "system path (/lib*)"),
    ("/boot", "system path (/boot)"),
    ("/dev/sda", "system path (/dev)"),
    ("/proc/1/root", "system path (/proc)"),
    ("/sys/fs/cgroup", "system path (/sys)"),
    ("/run/containerd", "system path (/run)"),
    ("/var/run", "system path (/var/run)"),
    ("/var/run/docker.sock", "system path (/var/run)"),
    ("/run/docker.sock", "system path (/run)"),
    ("/var/lib/docker/volumes", "system path (/var/lib/docker)"),
    # A directory above a system path exposes it.
    ("/var", "/var holds the system path /var/run"),
    ("/var/lib", "/var/lib holds the system path /var/lib/docker"),
    # The agent's state dir (credential, key), and what holds it.
    ("/var/lib/dstack-agent", "is the agent's state directory"),
    ("/var/lib/dstack-agent/credential.json", "inside the agent's state directory /var/lib/dstack-agent"),
    # Any Docker socket, wherever it was put.
    ("/srv/docker.sock", "Docker engine socket"),
    # What real dstack tasks mount.
    ("/checkpoints", ""),
    ("/checkpoints/", ""),
    ("/mnt/data/imagenet", ""),
    ("/root/.cache/huggingface", ""),
    ("/var/lib/other", ""),
    ("/varnish", ""),  # a prefix of a name is not the path
    ("/etcetera", ""),
    ("/library", "system path (/lib*)"),  # /lib* is a name pattern, as the issue writes it
    ("/usr2", ""),
    ("/srv/docker.sock.d/x", ""),
]


@pytest.mark.parametrize(("path", "why"), DEFAULT_ROWS, ids=[p for p, _ in DEFAULT_ROWS])
def test_default_policy_refuses_system_paths_and_admits_the_rest(path: str, why: str) -> None:
    problem = host_path_problem(path, STATE)
    if why:
        assert why in problem
    else:
        assert problem == ""


ALLOW = HostPolicy(host_paths=ALLOW_LIST, allow=("/data", "/checkpoints/"), never=STATE.never)
ALLOW_ROWS = [
    ("/data", True),
    ("/data/", True),
    ("/data/sets/imagenet", True),
    ("/checkpoints", True),
    ("/database", False),  # a prefix of the name, not of the path
    ("/data2", False),
    ("/dat", False),
    ("/", False),
    ("/srv", False),
    ("/data/../etc", False),
    ("/data/../database", False),
]


@pytest.mark.parametrize(("path", "allowed"), ALLOW_ROWS, ids=[p for p, _ in ALLOW_ROWS])
def test_allow_list_admits_exactly_the_listed_prefixes(path: str, allowed: bool) -> None:
    problem = host_path_problem(path, ALLOW)
    assert (problem == "") is allowed, problem
    if not allowed and "never" not in problem:
        assert "is not under the host's allowed paths (/data, /checkpoints/)" in problem


def test_allow_list_never_admits_the_socket_or_state_dir() -> None:
    everything = HostPolicy(host_paths=ALLOW_LIST, allow=("/",), never=("/var/lib/dstack-agent",))
    assert host_path_problem("/etc", everything) == ""  # the operator's choice
    assert "never mountable" in host_path_problem("/var/run/docker.sock", everything)
    assert "never mountable" in host_path_problem("/var/lib/dstack-agent", everything)
    assert "never mountable" in host_path_problem("/var", everything)
    assert "not under the host's allowed paths (none)" in host_path_problem("/data", HostPolicy(host_paths=ALLOW_LIST))


def test_policy_round_trips_the_wire_and_an_old_agent_gets_the_default() -> None:
    assert from_proto(to_proto(ALLOW)) == ALLOW
    assert from_proto(pb.HostPolicy()) == DEFAULT_POLICY
    # A mode this controller does not know: the strictest reading, not the default.
    assert from_proto(pb.HostPolicy(host_paths="deny-all")).host_paths == ALLOW_LIST


# ---------------------------------------------------------------- the controller's rule and submit check


def host(name: str, policy: HostPolicy = DEFAULT_POLICY, **kw: Any) -> HostView:
    return HostView(f"id-{name}", name, "amd64", True, 8.0, 32 * 2**30, policy=policy, **kw)


def task(text: dict[str, Any]) -> TaskConfiguration:
    return TaskConfiguration.model_validate({"image": "busybox:1", **text})


def test_rule_names_the_path_and_the_host_and_offers_list_it_per_host() -> None:
    hosts = [host("strict"), host("open", HostPolicy(host_paths=ALLOW_LIST, allow=("/etc",), allow_privileged=True))]
    req = requirements(task({"volumes": ["/etc/:/host-etc"], "privileged": True}), None, "", frozenset(), {})
    assert (req.host_paths, req.privileged) == (("/etc",), True)
    decision = place(req, hosts)
    assert decision.chosen is not None and decision.chosen.name == "open"
    (rejection,) = decision.rejections
    assert (rejection.host, rejection.rule) == ("strict", "policy")
    assert rejection.reason == "host strict refuses: privileged containers are not allowed"
    mounts_only = requirements(task({"volumes": ["/etc:/host-etc"]}), None, "", frozenset(), {})
    decision = place(mounts_only, hosts)
    assert decision.rejections[0].reason == "host strict does not allow mounting /etc: /etc is a system path (/etc)"
    root = place(requirements(task({"volumes": ["/:/host"]}), None, "", frozenset(), {}), hosts)
    assert [r.reason for r in root.rejections] == [
        "host strict does not allow mounting /: / is the host's root file system",
        "host open does not allow mounting /: / is not under the host's allowed paths (/etc)",
    ]
    # The scheduler's index chooses the same host (the rule is static: hosts group by policy).
    assert HostIndex(hosts).place(mounts_only).chosen == decision.chosen
    assert HostIndex(hosts[:1]).place(mounts_only).chosen is None


def test_submit_refuses_what_no_registered_host_allows_and_waits_with_none() -> None:
    socket = task({"volumes": ["/var/run/docker.sock:/docker.sock"]})
    with pytest.raises(SubmitError) as caught:
        check_host_policy(socket, [host("a"), host("b"), host("c")])
    assert str(caught.value) == (
        "no registered host allows this task: host a does not allow mounting /var/run/docker.sock: "
        "/var/run/docker.sock is a system path (/var/run) (and 2 other hosts)"
    )
    check_host_policy(socket, [])  # no host yet: it waits
    check_host_policy(task({"privileged": True}), [host("a"), host("b", HostPolicy(allow_privileged=True))])
    check_host_policy(task({"volumes": ["/checkpoints:/checkpoints"]}), [host("a")])
    with pytest.raises(SubmitError, match="privileged containers are not allowed"):
        check_host_policy(task({"privileged": True}), [host("a")])


def test_named_volumes_are_not_host_paths() -> None:
    assert requirements(task({"volumes": ["data:/data"]}), None, "", frozenset(), {"data": _vol()}).host_paths == ()


def _vol() -> Any:
    from controller.configs.volume import VolumeConfiguration
    from controller.scheduling.requirements import AppliedVolume

    config = VolumeConfiguration.model_validate({"name": "data", "backend": "local", "region": "r", "path": "/etc"})
    return AppliedVolume(config, "active")


# ---------------------------------------------------------------- the agent's own check, on this file system


def spec(*sources: str, privileged: bool = False) -> pb.RunSpec:
    mounts = [pb.Mount(source=s, target="/m") for s in sources]
    return pb.RunSpec(image="busybox:1", privileged=privileged, mounts=mounts)


def test_agent_refuses_a_symlink_into_a_system_path_that_the_controller_cannot_see(tmp_path: Path) -> None:
    link = tmp_path / "innocent"
    link.symlink_to("/etc")
    policy = HostPolicy(never=(str(tmp_path / "state"),))
    assert host_path_problem(str(link), policy) == ""  # as written: nothing wrong
    assert refusal(spec(str(link)), policy) == (
        f"refused by this host's policy: cannot mount {link} (resolves to /etc): /etc is a system path (/etc)"
        " (host_paths in agent.yaml)"
    )
    dots = f"{tmp_path}{'/..' * len(tmp_path.parts)}/etc/passwd"
    assert "/etc/passwd is a system path (/etc)" in refusal(spec(dots), policy)
    (tmp_path / "ckpt").mkdir()
    assert refusal(spec(str(tmp_path / "ckpt")), policy) == ""
    assert "privileged containers are not allowed" in refusal(spec(privileged=True), policy)


def test_agent_refuses_a_link_to_the_engine_socket_and_skips_cloud_volumes(tmp_path: Path) -> None:
    sock = tmp_path / "engine" / "docker.sock"
    sock.parent.mkdir()
    sock.touch()
    alias = tmp_path / "handy"
    alias.symlink_to(sock)
    policy = HostPolicy(never=(str(sock),))
    assert "Docker engine's socket" in refusal(spec(str(alias)), policy)
    assert "holds the Docker engine's socket" in refusal(spec(str(sock.parent)), policy)
    cloud = pb.RunSpec(image="x", mounts=[pb.Mount(target="/data", cloud_volume_id="vol-1", source="")])
    assert refusal(cloud, policy) == ""
    assert engine_socket("unix:///tmp/d.sock") == "/tmp/d.sock"
    assert engine_socket("tcp://127.0.0.1:2375") is None


def test_requirements_default_to_asking_nothing() -> None:
    assert (Requirements(arches=None).host_paths, Requirements(arches=None).privileged) == ((), False)
