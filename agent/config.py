"""Agent settings: /etc/dstack/agent.yaml, then /etc/dstack/agent.d/*.yaml, then environment, then
flags (each wins over the one before).

The drop-in directory (`<config stem>.d/` beside the config file) is read in lexical order, each
file merged over the ones before, as systemd, sshd and sudo read theirs. It exists so that
cloud-init and configuration management can add settings without editing agent.yaml, which is a
conffile of the package: dpkg stops at a prompt when a file it ships was changed before it is
installed (cloud-init's write_files runs before the install), and later upgrades would ask again.

A plain dataclass with hand-written checks rather than a pydantic model: it has a dozen flat keys,
and building a pydantic schema costs `dstack-agent facts` about 60 ms of its 150 ms budget."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dstack_hybrid.shared.host_policy import ALLOW_LIST, HOST_PATH_MODES, normalise

DEFAULT_CONFIG = Path("/etc/dstack/agent.yaml")
DEFAULT_CONTROLLER = "127.0.0.1:7443"
ARCHES = ("amd64", "arm64")
CLOUD_MODES = ("auto", "off", "aws", "azure", "gcp")
# A spot notice comes two minutes ahead: polled less often than every minute, half of it is gone.
MIN_POLL_S, MAX_POLL_S = 0.1, 60.0


class AgentConfigError(Exception):
    """Bad configuration: one sentence, exit status 2."""


@dataclass(frozen=True)
class AgentConfig:
    controller: str = DEFAULT_CONTROLLER
    join_token: str | None = None
    fleet: str | None = None
    region: str | None = None
    zone: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    arch: str | None = None  # declared: the agent refuses to start when the host is another
    cloud: str = "auto"  # auto | off | aws | azure | gcp
    docker_host: str | None = None
    name: str | None = None
    insecure: bool = False  # plaintext to a controller started with --insecure
    # How often the cloud's interruption notice is asked for (AWS recommends 5 s); tests use less.
    notice_poll_s: float = 5.0
    # The host policy (agent/policy.py): which host directories a task may mount, as
    # {"mode": deny-system | allow-list, "allow": [prefixes]}, and whether it may run privileged.
    host_paths: dict[str, Any] = field(default_factory=dict)
    allow_privileged: bool = False


_STRINGS = ("controller", "join_token", "fleet", "region", "zone", "docker_host", "name")


def _validate(data: dict[Any, Any], file: Path | str) -> dict[str, Any]:
    """The settings `data` holds, checked and normalised; None values are left out (YAML `null`
    means "not set here", so a drop-in's `zone: null` keeps the zone a file before it set)."""
    known = {f.name for f in fields(AgentConfig)}
    for key in data:
        if key not in known:
            raise AgentConfigError(f"unknown key {str(key)!r} in {file}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        if key in _STRINGS:
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise AgentConfigError(f"invalid {key} in {file}: expected a string")
            values[key] = str(value)
        elif key == "arch":
            if value not in ARCHES:
                raise AgentConfigError(f"invalid arch in {file}: {value!r} is not one of {', '.join(ARCHES)}")
            values[key] = value
        elif key == "cloud":
            if value is False:  # YAML reads a bare `off` as false
                value = "off"
            if value not in CLOUD_MODES:
                raise AgentConfigError(f"invalid cloud in {file}: {value!r} is not one of {', '.join(CLOUD_MODES)}")
            values[key] = value
        elif key == "notice_poll_s":
            if isinstance(value, bool) or not isinstance(value, int | float) or not MIN_POLL_S <= value <= MAX_POLL_S:
                raise AgentConfigError(
                    f"invalid notice_poll_s in {file}: expected seconds from {MIN_POLL_S:g} to {MAX_POLL_S:g}"
                )
            values[key] = float(value)
        elif key in ("insecure", "allow_privileged"):
            if not isinstance(value, bool):
                raise AgentConfigError(f"invalid {key} in {file}: expected true or false")
            values[key] = value
        elif key == "host_paths":
            values[key] = _host_paths(value, file)
        elif key == "labels":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise AgentConfigError(f"invalid labels in {file}: expected a mapping of names to values")
            if any(isinstance(v, dict | list) or v is None for v in value.values()):
                raise AgentConfigError(f"invalid labels in {file}: label values must be plain strings")
            # YAML `true` is a bool; a label holds the word as written, lowercase like the fleet's.
            values[key] = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    return values


def _host_paths(value: Any, file: Path | str) -> dict[str, Any]:
    """`host_paths: {mode: deny-system | allow-list, allow: [/data, ...]}`, checked key by key."""
    if not isinstance(value, dict):
        raise AgentConfigError(f"invalid host_paths in {file}: expected a mapping with mode and allow")
    checked: dict[str, Any] = {}
    for key, item in value.items():
        if key == "mode":
            if item not in HOST_PATH_MODES:
                raise AgentConfigError(
                    f"invalid host_paths.mode in {file}: {item!r} is not one of {', '.join(HOST_PATH_MODES)}"
                )
            checked[key] = item
        elif key == "allow":
            if not isinstance(item, list) or not all(isinstance(p, str) for p in item):
                raise AgentConfigError(f"invalid host_paths.allow in {file}: expected a list of absolute paths")
            for path in item:
                if not path.startswith("/") or ".." in path.split("/"):
                    raise AgentConfigError(
                        f"invalid host_paths.allow in {file}: {path!r} is not an absolute path without '..'"
                    )
            checked[key] = [normalise(p) for p in item]
        else:
            raise AgentConfigError(f"unknown key {str(key)!r} under host_paths in {file} (known: mode, allow)")
    return checked


def running_as_service() -> bool:
    return bool(os.environ.get("INVOCATION_ID"))  # set by systemd for every unit


def default_state_dir() -> Path:
    return Path("/var/lib/dstack-agent") if running_as_service() else Path.home() / ".dstack-agent"


def drop_in_dir(file: Path) -> Path:
    """The drop-in directory of a config file: /etc/dstack/agent.yaml -> /etc/dstack/agent.d."""
    return file.with_name(file.stem + ".d")


def drop_in_files(directory: Path) -> list[Path]:
    """The directory's `*.yaml` files in lexical order; none when it does not exist. Other names
    (dpkg's `*.dpkg-old`, an editor's `*.yaml~`, `*.yml`) and hidden files are not read."""
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AgentConfigError(f"cannot read {directory}: {exc.strerror}") from None
    names = sorted(p.name for p in entries if p.name.endswith(".yaml") and not p.name.startswith(".") and p.is_file())
    return [directory / name for name in names]


def _read(file: Path) -> dict[Any, Any]:
    """One settings file, within the size, depth and alias bounds every user YAML is read with."""
    from dstack_hybrid.shared.bounded_input import InputRefused, load_settings_file  # only with a file to read

    try:
        return load_settings_file(file, "config")
    except InputRefused as exc:  # already a sentence naming the file
        raise AgentConfigError(str(exc)) from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over`'s settings win over `base`'s, key by key; `labels` are merged label by label (a
    later file adds labels and changes the ones it names, and cannot remove one)."""
    merged = {**base, **over}
    for nested in ("labels", "host_paths"):  # host_paths: `mode` and `allow` each win on their own
        if nested in base and nested in over:
            merged[nested] = {**base[nested], **over[nested]}
    return merged


def load_config(path: Path | None) -> AgentConfig:
    """Reads the file (a missing default file is fine, a missing named one is not), its drop-in
    directory and the environment."""
    file = path or DEFAULT_CONFIG
    values: dict[str, Any] = {}
    if file.exists():
        values = _validate(_read(file), file)
    elif path is not None:
        raise AgentConfigError(f"config file not found: {path}")
    for drop_in in drop_in_files(drop_in_dir(file)):
        values = merge(values, _validate(_read(drop_in), drop_in))
    env: dict[str, str] = {}
    for key, name in (("controller", "DSTACK_CONTROLLER"), ("join_token", "DSTACK_JOIN_TOKEN"),
                      ("docker_host", "DOCKER_HOST")):  # fmt: skip
        if os.environ.get(name):
            env[key] = os.environ[name]
    values = merge(values, _validate(env, "the environment"))
    paths = values.get("host_paths", {})
    if paths.get("allow") and paths.get("mode") != ALLOW_LIST:
        # Read only in allow-list mode: a list that would silently do nothing is refused instead.
        raise AgentConfigError(f"host_paths.allow is set, but host_paths.mode is not {ALLOW_LIST} in {file}")
    return AgentConfig(**values)
