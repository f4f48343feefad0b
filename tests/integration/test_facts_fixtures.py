"""`dstack-agent facts --json` on fixture trees shaped like real machines, with loopback
metadata servers replaying the documented responses, compared key by key with what each
machine really has. On-prem machines must not touch the network at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.metadata_server import MetadataServer

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ROOT / "tests/fixtures/hosts"
AGENT = Path(sys.executable).parent / "dstack-agent"
NO_NETWORK = ROOT / "tests/support/no_network"
MACHINES = sorted(p.name for p in HOSTS.iterdir() if (p / "expected.json").exists())
COMPARED = ("arch", "arch_raw", "cpu", "memory_bytes", "gpus", "emulators", "cloud", "region", "zone", "labels")


def run_facts(machine: Path, tmp_path: Path, config_text: str = "{}\n") -> tuple[dict[str, Any], dict[str, Any]]:
    expected = json.loads((machine / "expected.json").read_text())
    network_log = tmp_path / "network.log"
    with ExitStack() as stack:
        # Every cloud's endpoint points at a loopback server; only the machine's own cloud has answers.
        servers = {}
        spec = machine / "metadata.json"
        for provider in ("aws", "azure", "gcp"):
            if spec.exists() and json.loads(spec.read_text())["provider"] == provider:
                servers[provider] = stack.enter_context(MetadataServer.from_file(spec))
            else:
                servers[provider] = stack.enter_context(MetadataServer(provider, {}))
        env = dict(
            os.environ,
            DSTACK_AGENT_SYSFS=str(machine / "sys"),
            DSTACK_AGENT_PROCFS=str(machine / "proc"),
            DSTACK_AGENT_UNAME_M=expected["arch_raw"],
            AWS_EC2_METADATA_SERVICE_ENDPOINT=servers["aws"].url,
            DSTACK_AGENT_AZURE_IMDS_ENDPOINT=servers["azure"].url,
            DSTACK_AGENT_GCP_METADATA_ENDPOINT=servers["gcp"].url,
            PATH=f"{machine / 'bin'}:{os.environ['PATH']}",
            PYTHONPATH=str(NO_NETWORK),
            DSTACK_TEST_NETWORK_LOG=str(network_log),
        )
        config = tmp_path / "agent.yaml"
        config.write_text(config_text)
        out = subprocess.run(
            [str(AGENT), "facts", "--json", "--config", str(config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        requests = {p: list(s.requests) for p, s in servers.items()}
    return json.loads(out.stdout), {
        "expected": expected,
        "requests": requests,
        "network": network_log.read_text() if network_log.exists() else "",
        "stderr": out.stderr,
    }


@pytest.mark.parametrize("name", MACHINES)
def test_facts_match_the_machine(name: str, tmp_path: Path) -> None:
    facts, seen = run_facts(HOSTS / name, tmp_path)
    expected = seen["expected"]
    for key in COMPARED:
        assert facts[key] == expected[key], f"{name}: {key}"
    got_nvme = [{k: d[k] for k in ("name", "model", "transport", "size_bytes", "kind")} for d in facts["nvme"]]
    assert got_nvme == expected["nvme"], f"{name}: nvme"
    assert all(d["serial"] for d in facts["nvme"]), f"{name}: every NVMe device has its serial"
    # Only the machine's own cloud was asked, and only when DMI named one.
    provider = expected["cloud"]["provider"]
    for other, requests in seen["requests"].items():
        if other != provider:
            assert requests == [], f"{name}: {other}'s metadata service was asked"
    if provider is None:
        assert seen["network"] == "", f"{name}: an on-prem host touched the network:\n{seen['network']}"
    else:
        assert seen["requests"][provider], f"{name}: {provider}'s metadata service was never asked"
        # The audit hook that proves on-prem hosts stay offline does see real connections.
        assert "socket.connect" in seen["network"]
    assert facts["warnings"] == [] and "Traceback" not in seen["stderr"]


def test_operator_overrides_win_and_are_marked(tmp_path: Path) -> None:
    overrides = "region: eu-lab\nzone: rack-7\nlabels:\n  team: ml\n"
    facts, _ = run_facts(HOSTS / "aws-c6id", tmp_path, overrides)
    assert (facts["region"], facts["zone"], facts["labels"]) == ("eu-lab", "rack-7", {"team": "ml"})
    assert facts["overridden"] == ["region", "zone", "labels"]
    assert facts["cloud"]["region"] == "eu-west-1"  # what the metadata said stays visible


def test_cloud_off_asks_no_metadata_service(tmp_path: Path) -> None:
    facts, seen = run_facts(HOSTS / "aws-c6id", tmp_path, "cloud: off\n")
    assert facts["cloud"]["provider"] is None
    assert all(requests == [] for requests in seen["requests"].values())
    assert seen["network"] == ""
