"""End-to-end placement at scale: simulated hosts (`dstack-agent simulate`, the real protocol
over mutual TLS) registered to one controller on this machine, then tasks with mixed
requirements submitted through the client API; prints placements per second (submitted ->
assigned to a host), how many stayed pending, and the controller's RSS.

    .venv/bin/python bench/placement_e2e.py [--hosts 5000] [--tasks 10000] [--concurrency 32]

Everything runs on loopback and stops when the script ends."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test harness drives the real programs

from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from tests.support.cluster import BIN, ControllerProcess, wait_for

ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c", "us-east-1a", "us-east-1b", "us-east-1c"]
TEMPLATE = Path(__file__).resolve().parents[1] / "tests/fixtures/sim/host.json"


def facts_files(root: Path) -> tuple[Path, Path]:
    plain = json.loads(TEMPLATE.read_text())
    gpu = dict(plain, gpus=[{"vendor": "nvidia", "name": "NVIDIA L4", "memory_bytes": 24 * 1024**3}] * 4)
    (root / "plain.json").write_text(json.dumps(plain))
    (root / "gpu.json").write_text(json.dumps(gpu))
    return root / "plain.json", root / "gpu.json"


def task_json(i: int, rng: random.Random) -> str:
    kind = rng.random()
    resources: dict[str, object] = {"cpu": "1..", "memory": "1GB.."}
    if kind < 0.3:
        resources["cpu"] = "arm:2.."
    elif kind < 0.4:
        resources["gpu"] = "L4:1"
    config: dict[str, object] = {
        "type": "task",
        "name": f"t-{i}",
        "image": "sim/none:1",
        "env": {"DSTACK_SIM_SECONDS": "3600"},
        "resources": resources,
    }
    if rng.random() < 0.3:
        config["availability_zones"] = [rng.choice(ZONES)]
    return json.dumps(config)


async def submit_all(controller: ControllerProcess, count: int, concurrency: int) -> tuple[float, int, int]:
    creds = grpc.ssl_channel_credentials(root_certificates=controller.ca_file.read_bytes())
    options = [("grpc.ssl_target_name_override", CONTROLLER_SAN)]
    metadata = (("authorization", f"Bearer {controller.admin_token}"),)
    rng = random.Random(7)
    configs = [task_json(i, rng) for i in range(count)]
    placed = pending = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for c in configs:
        queue.put_nowait(c)
    async with grpc.aio.secure_channel(controller.address, creds, options=options) as channel:
        stub = pb_grpc.ClientServiceStub(channel)

        async def worker() -> None:
            nonlocal placed, pending
            while not queue.empty():
                reply = await stub.Submit(pb.SubmitRequest(configuration_json=queue.get_nowait()), metadata=metadata)
                if reply.host:
                    placed += 1
                else:
                    pending += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, placed, pending


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def online_hosts(controller: ControllerProcess) -> int:
    out = controller.ctl("hosts", "--json", timeout=300)
    return sum(1 for h in json.loads(out.stdout) if h["status"] == "online") if out.returncode == 0 else 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, default=5000)
    p.add_argument("--tasks", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain, gpu = facts_files(root)
        # Thousands of submits from one token, as fast as it answers: the client limits are off.
        limits = ["--client-rate", "off", "--max-pending-per-token", "off"]
        controller = ControllerProcess(root / "controller", extra=["--heartbeat-interval", "10s", *limits])
        controller.start()
        sims: list[subprocess.Popen[bytes]] = []
        logs = []
        try:
            gpu_hosts = args.hosts // 10
            t0 = time.perf_counter()
            for prefix, count, facts in (("gpu", gpu_hosts, gpu), ("cpu", args.hosts - gpu_hosts, plain)):
                token = controller.token("--uses", str(count))
                logs.append(open(root / f"sim-{prefix}.log", "wb"))  # noqa: SIM115 - closed in finally
                sims.append(
                    subprocess.Popen(
                        [
                            str(BIN / "dstack-agent"),
                            "simulate",
                            "--count",
                            str(count),
                            "--facts",
                            str(facts),
                            "--zones",
                            ",".join(ZONES),
                            "--arches",
                            "amd64,arm64",
                            "--name-prefix",
                            prefix,
                            "--controller",
                            controller.address,
                            "--join-token",
                            token,
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=logs[-1],
                        env=dict(os.environ, DSTACK_AGENT_RECONNECT_MAX_S="5"),
                    )
                )
            wait_for(
                f"{args.hosts} hosts online", lambda: online_hosts(controller) >= args.hosts, timeout=900, interval=5
            )
            joined = time.perf_counter() - t0
            assert controller.proc is not None
            idle_rss = rss_mb(controller.proc.pid)
            elapsed, placed, pending = asyncio.run(submit_all(controller, args.tasks, args.concurrency))
            print(
                f"hosts: {args.hosts} simulated ({gpu_hosts} with 4 GPUs, 6 zones, amd64+arm64), "
                f"all online after {joined:.0f}s"
            )
            print(
                f"submitted {args.tasks} tasks in {elapsed:.1f}s: {placed} placed, {pending} pending; "
                f"{placed / elapsed:.0f} placements/s end to end (submit -> assigned)"
            )
            print(f"controller RSS: {idle_rss:.0f} MB with hosts only, {rss_mb(controller.proc.pid):.0f} MB after")
        finally:
            for sim in sims:
                sim.send_signal(signal.SIGTERM)
            for sim in sims:
                try:
                    sim.wait(60)
                except subprocess.TimeoutExpired:
                    sim.kill()
            controller.stop()
            for log in logs:
                log.close()


if __name__ == "__main__":
    main()
