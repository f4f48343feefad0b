"""What a task may ask of its host: the host operator's policy (agent.yaml) and the one pure check
both programs run on it.

The agent reports its policy in its facts and checks again before it creates a container, on the
path as the host resolves it (realpath: symlinks and `..` followed); the controller checks the
path as written (lexically normalised), to place and to explain. The same function answers both,
so the controller's reason and the agent's refusal never disagree on a path both can see.

Names follow Nomad's docker driver where it has one (`allow_privileged`); host directories are
`host_paths` because dstack's `volumes:` also holds named volumes, which the policy leaves alone."""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dstack_hybrid.v1 import hybrid_pb2 as pb

DENY_SYSTEM = "deny-system"
ALLOW_LIST = "allow-list"
HOST_PATH_MODES = (DENY_SYSTEM, ALLOW_LIST)

# A task mounting one of these (or anything inside one, or a directory holding one) can change the
# host's software or reach its kernel and devices. `/` is covered as the parent of them all. A
# component with `*` matches by its name (`/lib*`: /lib, /lib32, /lib64, /libx32).
SYSTEM_PATHS = (
    "/etc", "/usr", "/bin", "/sbin", "/lib*", "/boot", "/dev", "/proc", "/sys", "/run", "/var/run",
    "/var/lib/docker",
)  # fmt: skip

# The engine's socket where packages put it: a task holding it is root on the host in any mode.
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


@dataclass(frozen=True)
class HostPolicy:
    """The policy of one host. The default is what an agent.yaml without policy keys gives."""

    host_paths: str = DENY_SYSTEM  # deny-system | allow-list
    allow: tuple[str, ...] = ()  # allow-list mode: the prefixes (whole components) a mount may be under
    # Never mountable, in either mode: the agent's state dir (its credential, key and cloud volumes)
    # and the engine's socket, as this host resolves them. Reported so the controller can explain.
    never: tuple[str, ...] = ()
    allow_privileged: bool = False

    def summary(self) -> str:
        """One line for people: `host paths: deny-system; privileged: no`."""
        paths = self.host_paths if self.host_paths == DENY_SYSTEM else f"only {', '.join(self.allow) or 'none'}"
        return f"host paths: {paths}; privileged: {'yes' if self.allow_privileged else 'no'}"


DEFAULT_POLICY = HostPolicy()


def normalise(path: str) -> str:
    """Lexically normal: `..` and `.` folded, slashes collapsed (`//etc/` -> `/etc`). POSIX keeps
    a leading `//` apart; Linux does not, and neither may the check."""
    return posixpath.normpath("/" + path.lstrip("/")) if path.startswith("/") else posixpath.normpath(path)


def within(path: str, base: str) -> bool:
    """`path` is `base` or inside it, by whole components (`/database` is not inside `/data`)."""
    if base == "/":
        return path.startswith("/")
    return path == base or path.startswith(base + "/")


def _in_pattern(path: str, pattern: str) -> bool:
    """`path` is a path `pattern` names (a `*` in a component matches within that component) or is
    inside one."""
    want = pattern.strip("/").split("/")
    have = path.strip("/").split("/")
    return len(have) >= len(want) and all(fnmatch.fnmatchcase(h, w) for h, w in zip(have, want, strict=False))


def _holds(path: str, pattern: str) -> bool:
    """`path` is a directory above what `pattern` names (mounting it exposes that too)."""
    have = [] if path == "/" else path.strip("/").split("/")
    want = pattern.strip("/").split("/")
    return len(have) < len(want) and all(fnmatch.fnmatchcase(h, w) for h, w in zip(have, want, strict=False))


def host_path_problem(path: str, policy: HostPolicy) -> str:
    """Why `policy` forbids mounting host path `path` ("" when it allows it). `path` is checked as
    given, after lexical normalisation: the agent passes it resolved, the controller as written."""
    if not path.startswith("/"):
        return f"{path} is not an absolute path"
    p = normalise(path)
    if policy.host_paths == ALLOW_LIST:
        if not any(within(p, normalise(prefix)) for prefix in policy.allow):
            return f"{p} is not under the host's allowed paths ({', '.join(policy.allow) or 'none'})"
    elif p == "/":
        return "/ is the host's root file system"
    else:
        for system in SYSTEM_PATHS:
            if _in_pattern(p, system):
                return f"{p} is a system path ({system})"
            if _holds(p, system):
                return f"{p} holds the system path {system}"
    return _never_problem(p, policy)


def _never_problem(p: str, policy: HostPolicy) -> str:
    """The paths no mode admits: the engine's socket and the agent's state directory."""
    for never in (*DOCKER_SOCKETS, *(normalise(n) for n in policy.never)):
        what = "the Docker engine's socket" if never.endswith(".sock") else "the agent's state directory"
        if p == never:
            return f"{p} is {what}, which is never mountable"
        if within(p, never):
            return f"{p} is inside {what} {never}, which is never mountable"
        if within(never, p):
            return f"{p} holds {what} {never}, which is never mountable"
    if posixpath.basename(p) == "docker.sock":
        return f"{p} is a Docker engine socket, which is never mountable"
    return ""


def privileged_problem(privileged: bool, policy: HostPolicy) -> str:
    return "privileged containers are not allowed" if privileged and not policy.allow_privileged else ""


def to_proto(policy: HostPolicy) -> pb.HostPolicy:
    from dstack_hybrid.v1 import hybrid_pb2 as pb  # `dstack-agent facts` prints without protobuf

    return pb.HostPolicy(
        host_paths=policy.host_paths,
        allow=list(policy.allow),
        never=list(policy.never),
        allow_privileged=policy.allow_privileged,
    )


def from_proto(message: pb.HostPolicy) -> HostPolicy:
    """The policy a host reported; an agent older than policies reports none, and gets the default
    (the controller then places as if it enforced it, which is the safe side). A mode this side
    does not know is read as the strictest one, an allow-list of what the host listed."""
    mode = message.host_paths or DENY_SYSTEM
    return HostPolicy(
        host_paths=mode if mode in HOST_PATH_MODES else ALLOW_LIST,
        allow=tuple(message.allow),
        never=tuple(message.never),
        allow_privileged=message.allow_privileged,
    )
