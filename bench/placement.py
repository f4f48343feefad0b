"""Placement decision time at fleet sizes, for the pure core (no I/O).

    .venv/bin/python bench/placement.py [--hosts 100,1000,5000] [--decisions 500] [--seed 7]

The fleet mixes amd64/arm64 hosts over 6 zones in 2 regions, 10% of them with GPUs (in their own
fleet), some offline and all partly used. Requests are typical ones: mostly CPU/memory, some pinned to
zones or an arch, some with a volume or GPUs. Each decision is timed twice: `place` (the full pass that
explains every host, `dstackctl offers`) and `HostIndex.place` (the scheduler's), then the chosen host's
share is reserved in the index (and released again later) as the scheduler would, so the index is
timed while it changes. The two must agree on every choice; a disagreement fails the run."""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import deque

from controller.placement import (
    GpuInfo,
    GpuReq,
    HostIndex,
    HostView,
    MountReq,
    Requirements,
    VolumeOption,
    place,
)

GIB = 1024**3
MIB = 1024**2
ZONES = {
    "eu-west-1": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
    "us-east-1": ["us-east-1a", "us-east-1b", "us-east-1c"],
}
GPU_MODELS = [
    GpuInfo("nvidia", "NVIDIA A100-SXM4-80GB", 80 * GIB),
    GpuInfo("nvidia", "NVIDIA H100 80GB HBM3", 81559 * MIB),
    GpuInfo("nvidia", "NVIDIA L4", 23034 * MIB),
]
VOLUMES = [
    VolumeOption("data-eu", "local", "eu-west-1", "eu-west-1a", "/srv/data"),
    VolumeOption("data-us", "local", "us-east-1", "us-east-1b", "/srv/data"),
    VolumeOption("cache-eu", "local", "eu-west-1", None, "/srv/cache"),
]
# Reservations held, per host, before the oldest is released: a steady state, not a filling fleet.
IN_FLIGHT_PER_HOST = 0.5


def fleet(n: int, rng: random.Random) -> list[HostView]:
    hosts = []
    for i in range(n):
        region = rng.choice(sorted(ZONES))
        gpu_host = rng.random() < 0.10
        cpus = rng.choice([32, 64, 96]) if gpu_host else rng.choice([2, 4, 8, 16, 64])
        mem = cpus * rng.choice([2, 4, 8]) * GIB
        gpus = rng.choice([1, 4, 8]) * (rng.choice(GPU_MODELS),) if gpu_host else ()
        hosts.append(
            HostView(
                id=f"h{i}",
                name=f"host-{i:05d}",
                arch="amd64" if gpu_host else rng.choice(["amd64", "amd64", "arm64"]),
                live=rng.random() > 0.05,
                cpu_total=cpus,
                memory_total_bytes=mem,
                cpu_used=rng.randint(0, cpus),
                memory_used_bytes=rng.randint(0, mem),
                region=region,
                zone=rng.choice(ZONES[region]),
                fleet="gpu" if gpu_host else "cpu",
                backend=rng.choice(["local", "local", "aws"]),
                gpus=gpus,
                gpus_used=rng.randint(0, len(gpus)),
                disk_bytes=rng.choice([100, 500, 2000]) * GIB,
                local_nvme=rng.random() < 0.3,
            )
        )
    return hosts


def request(rng: random.Random) -> Requirements:
    kind = rng.random()
    gpu = None
    zones = regions = None
    mounts: tuple[MountReq, ...] = ()
    if kind < 0.10:
        gpu = GpuReq(names=rng.choice([(), ("a100",), ("h100",), ("l4",)]), count_min=rng.choice([1, 1, 2]))
    elif kind < 0.30:
        zones = frozenset(rng.sample([z for zs in ZONES.values() for z in zs], 2))
    elif kind < 0.40:
        mounts = (MountReq("/data", (VOLUMES[0], VOLUMES[1])),)
    elif kind < 0.50:
        regions = frozenset({rng.choice(sorted(ZONES))})
    return Requirements(
        arches=rng.choice([None, None, frozenset({"arm64"}), frozenset({"amd64"})]) if gpu is None else None,
        cpu=rng.choice([0.5, 1, 2, 4, 8]),
        memory_bytes=rng.choice([1, 4, 16]) * GIB,
        gpu=gpu,
        zones=zones,
        regions=regions,
        mounts=mounts,
        disk_bytes=rng.choice([None, None, 200 * GIB]),
    )


def pct(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", default="100,1000,5000")
    p.add_argument("--decisions", type=int, default=500)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    rng = random.Random(args.seed)
    print(
        f"{'hosts':>6} {'place median ms':>16} {'p99 ms':>8} {'index median ms':>16} {'p99 ms':>8} "
        f"{'speedup':>8} {'placed':>9}"
    )
    for n in (int(x) for x in args.hosts.split(",")):
        index = HostIndex(fleet(n, rng))
        full_times: list[float] = []
        index_times: list[float] = []
        placed = 0
        held: deque[tuple[str, float, int, int]] = deque()
        for _ in range(args.decisions):
            req = request(rng)
            hosts = index.hosts()
            t0 = time.perf_counter()
            full = place(req, hosts)
            t1 = time.perf_counter()
            fast = index.place(req)
            t2 = time.perf_counter()
            full_times.append((t1 - t0) * 1000)
            index_times.append((t2 - t1) * 1000)
            if (fast.chosen, fast.volumes, fast.gpus) != (full.chosen, full.volumes, full.gpus):
                sys.exit(f"HostIndex.place and place disagree for {req}")
            if fast.chosen is None:
                continue
            placed += 1
            index.reserve(fast.chosen.id, req.cpu, req.memory_bytes, fast.gpus)
            held.append((fast.chosen.id, req.cpu, req.memory_bytes, fast.gpus))
            if len(held) > n * IN_FLIGHT_PER_HOST:
                index.release(*held.popleft())
        print(
            f"{n:>6} {statistics.median(full_times):>16.3f} {pct(full_times, 0.99):>8.3f} "
            f"{statistics.median(index_times):>16.3f} {pct(index_times, 0.99):>8.3f} "
            f"{statistics.median(full_times) / statistics.median(index_times):>7.0f}x "
            f"{placed:>5}/{args.decisions}"
        )


if __name__ == "__main__":
    main()
