"""The `simulate` subcommand's flags. Kept apart from agent/simulate.py, which imports grpc and
cryptography: building the parser must stay cheap for `dstack-agent facts`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="register N simulated hosts from one process, through the real protocol (load tests)",
        description="Registers --count hosts with the join token (it must allow that many uses) and keeps one "
        "stream per host open. Their tasks run without Docker: one log line, then exit after the task's env "
        "DSTACK_SIM_SECONDS (default 1) with DSTACK_SIM_EXIT_CODE (default 0); stop gives 143, abort 137.",
    )
    p.add_argument("--count", type=int, required=True, help="how many hosts")
    p.add_argument("--facts", type=Path, required=True, help="template: what `dstack-agent facts --json` prints")
    p.add_argument("--zones", default="", help="comma-separated; host i is in zones[i %% len(zones)]")
    p.add_argument("--arches", default="", help="comma-separated amd64,arm64; host i is arches[i %% len(arches)]")
    p.add_argument("--region", default=None, help="region of every host (default: from an AWS/GCP zone name)")
    p.add_argument("--name-prefix", default="sim", help="hosts are named PREFIX-00000, PREFIX-00001, ...")
    p.add_argument("--controller", default=None, help="HOST:PORT (default from agent.yaml or 127.0.0.1:7443)")
    p.add_argument("--join-token", default=None, help="a join token allowing --count uses")
    p.add_argument("--config", type=Path, default=None, help="agent.yaml for controller, join_token, insecure")
    p.add_argument("--state-dir", type=Path, default=None, help="keep each host's key and certificate here")
    p.add_argument("--insecure", action="store_true", help="plaintext, to a controller started with --insecure")
    p.add_argument("--concurrency", type=int, default=64, help="registrations and stream openings in flight")
    p.add_argument(
        "--attempts-log",
        default=None,
        metavar="FILE",
        help="append one JSON line per attempt event (host, task_id, attempt, event: started|ended|released, "
        "at, exit_code), written as it happens (failure tests)",
    )
    p.add_argument(
        "--keep-instance-id",
        action="store_true",
        help="with --count 1: report the template's cloud instance id as it is (stand in for a launched VM)",
    )
