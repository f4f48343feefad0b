"""dstack-agent: run (register, connect, run tasks) and facts (print this host's facts)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from dstack_hybrid.shared.version import VERSION

from agent.config import AgentConfigError, default_state_dir, load_config
from agent.facts import disks
from agent.facts.collect import collect
from agent.facts.overrides import apply_overrides
from agent.facts.sources import FactSources
from agent.policy import host_policy
from agent.sim import cli as sim_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dstack-agent", description="The dstack-hybrid host agent.")
    p.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="register with the controller and run its tasks")
    run.add_argument("--controller", default=None, help="HOST:PORT (default from agent.yaml or 127.0.0.1:7443)")
    run.add_argument("--join-token", default=None, help="needed once, for the first registration")
    run.add_argument("--config", type=Path, default=None, help="default /etc/dstack/agent.yaml")
    run.add_argument("--state-dir", type=Path, default=None)
    run.add_argument("--name", default=None, help="host name to register (default: the hostname)")
    facts = sub.add_parser("facts", help="detect and print this host's facts")
    facts.add_argument("--json", action="store_true")
    facts.add_argument("--config", type=Path, default=None)
    facts.add_argument("--state-dir", type=Path, default=None, help="never mountable by tasks (shown in the policy)")
    sim_cli.add_parser(sub)
    return p


def cmd_facts(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    root = disks.configured_docker_root()
    found = apply_overrides(collect(FactSources.from_env(), [root] if root else [], config.cloud), config)
    found.policy = host_policy(config, args.state_dir or default_state_dir())
    return print_facts(found.to_json_dict(), args.json)


def print_facts(facts: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(facts, indent=2))
        return 0
    cpu = facts["cpu"]
    print(f"arch:    {facts['arch']} ({facts['arch_raw']})")
    print(f"cpu:     {cpu['model'] or '?'} ({cpu['vendor'] or '?'}), {cpu['cores']} cores, {cpu['threads']} threads")
    print(f"memory:  {(facts['memory_bytes'] or 0) / 1024**3:.1f} GiB")
    for d in facts["disks"]:
        print(f"disk:    {d['path']} {d['size_bytes'] / 1024**3:.1f} GiB")
    for n in facts["nvme"]:
        print(f"nvme:    {n['name']} {n['model']} ({n['kind']}, {n['transport']}) {n['size_bytes'] / 1024**3:.1f} GiB")
    for g in facts["gpus"]:
        print(f"gpu:     {g['vendor']} {g['name']} {g['memory_bytes'] / 1024**3:.0f} GiB")
    print(f"emulate: {', '.join(facts['emulators']) or '-'} (emulated runs are refused regardless)")
    cloud = facts["cloud"]
    if cloud["provider"]:
        spot = " spot" if cloud["spot"] else ""
        print(f"cloud:   {cloud['provider']} {cloud['instance_type'] or '?'}{spot} ({cloud['instance_id'] or '?'})")
    marks = {k: " (agent.yaml)" for k in facts["overridden"]}
    print(f"region:  {facts['region'] or '-'}{marks.get('region', '')}")
    print(f"zone:    {facts['zone'] or '-'}{marks.get('zone', '')}")
    policy = facts["policy"]
    if policy:
        paths = policy["host_paths"]
        if paths == "allow-list":
            paths = f"only {', '.join(policy['allow']) or 'none'}"
        print(f"policy:  host paths {paths}; privileged {'allowed' if policy['allow_privileged'] else 'refused'}")
    for warning in facts["warnings"]:
        print(f"warning: {warning}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    # Imported here: grpc and the Docker SDK cost `facts` a tenth of a second it does not need.
    from agent.daemon import Agent

    config = load_config(args.config)
    updates = {
        k: v for k, v in (("controller", args.controller), ("join_token", args.join_token), ("name", args.name)) if v
    }
    config = dataclasses.replace(config, **updates)
    state_dir = args.state_dir or default_state_dir()
    cap = float(os.environ.get("DSTACK_AGENT_RECONNECT_MAX_S", "10"))
    agent = Agent(config, state_dir, FactSources.from_env(), reconnect_cap_s=cap)
    try:
        import asyncio

        asyncio.run(agent.run())
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    # Imported here, as in cmd_run: `facts` must not pay for grpc and cryptography.
    from agent.simulate import simulate

    return simulate(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        commands = {"facts": cmd_facts, "run": cmd_run, "simulate": cmd_simulate}
        return commands[args.command](args)
    except AgentConfigError as exc:
        print(f"dstack-agent: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # FatalError is one
        print(f"dstack-agent: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
