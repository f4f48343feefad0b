"""`dstack-agent simulate`'s flags checked and turned into settings (exit 2 for bad input)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from dstack_hybrid.shared.ca_discovery import split_address
from dstack_hybrid.shared.tokens import TokenFormatError, parse_token
from dstack_hybrid.v1 import hybrid_pb2 as pb

from agent.config import AgentConfigError, load_config
from agent.sim.facts import ARCH_RAW, template_from_json


@dataclass(frozen=True)
class SimSettings:
    count: int
    template: pb.HostFacts
    controller: str
    join_token: str | None
    insecure: bool = False
    name_prefix: str = "sim"
    zones: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    region: str | None = None
    state_dir: Path | None = None
    concurrency: int = 64
    reconnect_cap_s: float = 10.0
    keep_instance_id: bool = False  # one host that is the template's cloud instance (a launched VM)
    attempts_log: Path | None = None  # agent/sim/attempts_log.py


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def settings_from_args(args: argparse.Namespace) -> SimSettings:
    """Checks the flags and reads the template; AgentConfigError (exit 2) for bad input."""
    if args.count < 1:
        raise AgentConfigError("--count must be at least 1")
    if args.concurrency < 1:
        raise AgentConfigError("--concurrency must be at least 1")
    if args.keep_instance_id and args.count != 1:
        raise AgentConfigError("--keep-instance-id is for one host (--count 1): instance ids name one machine")
    if not args.name_prefix.strip():
        raise AgentConfigError("--name-prefix must not be empty")
    if args.attempts_log is not None and not args.attempts_log.strip():
        raise AgentConfigError("--attempts-log needs a file name")
    arches = _split(args.arches)
    for a in arches:
        if a not in ARCH_RAW:
            raise AgentConfigError(f"--arches: {a!r} is not one of {', '.join(ARCH_RAW)}")
    try:
        data = json.loads(args.facts.read_text())
    except OSError as exc:
        raise AgentConfigError(f"cannot read {args.facts}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise AgentConfigError(f"{args.facts} is not JSON: {exc}") from None
    try:
        template = template_from_json(data, str(args.facts))
    except ValueError as exc:
        raise AgentConfigError(str(exc)) from None
    if not arches and template.arch not in ARCH_RAW:
        raise AgentConfigError(
            f"{args.facts} has arch {template.arch or 'null'!r}: dstack-hybrid runs amd64 and arm64 hosts "
            "(or pass --arches)"
        )
    config = load_config(args.config)
    config = replace(
        config,
        **{k: v for k, v in (("controller", args.controller), ("join_token", args.join_token)) if v},
    )
    if config.join_token:
        try:
            parse_token(config.join_token)
        except TokenFormatError:
            raise AgentConfigError("the join token is malformed: expected dstack1.<ca-sha256>.<id>.<secret>") from None
    try:
        split_address(config.controller)
    except ValueError as exc:
        raise AgentConfigError(str(exc)) from None
    return SimSettings(
        count=args.count,
        template=template,
        controller=config.controller,
        join_token=config.join_token,
        insecure=args.insecure or config.insecure,
        name_prefix=args.name_prefix.strip(),
        zones=_split(args.zones),
        arches=arches,
        region=args.region or None,
        state_dir=args.state_dir,
        concurrency=args.concurrency,
        reconnect_cap_s=float(os.environ.get("DSTACK_AGENT_RECONNECT_MAX_S", "10")),
        keep_instance_id=args.keep_instance_id,
        attempts_log=Path(args.attempts_log) if args.attempts_log is not None else None,
    )
