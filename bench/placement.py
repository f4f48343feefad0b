"""Placement decision time at fleet sizes, for the pure core (no I/O).

    .venv/bin/python bench/placement.py [--hosts 100,1000,5000] [--decisions 200]

Prints the median and p99 time of one decision over a mixed amd64/arm64 fleet with
some hosts offline and partly used; the README records the figures."""

from __future__ import annotations

import argparse
import random
import statistics
import time

from controller.placement import HostView, Requirements, place

GIB = 1024**3


def fleet(n: int, rng: random.Random) -> list[HostView]:
    hosts = []
    for i in range(n):
        cpus = rng.choice([2, 4, 8, 16, 64])
        mem = cpus * rng.choice([2, 4, 8]) * GIB
        hosts.append(
            HostView(
                id=f"h{i}",
                name=f"host-{i:05d}",
                arch=rng.choice(["amd64", "amd64", "arm64"]),
                live=rng.random() > 0.05,
                cpu_total=cpus,
                memory_total_bytes=mem,
                cpu_used=rng.randint(0, cpus),
                memory_used_bytes=rng.randint(0, mem),
            )
        )
    return hosts


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", default="100,1000,5000")
    p.add_argument("--decisions", type=int, default=200)
    args = p.parse_args()
    rng = random.Random(7)
    print(f"{'hosts':>6} {'median ms':>10} {'p99 ms':>8} {'placed':>7}")
    for n in (int(x) for x in args.hosts.split(",")):
        hosts = fleet(n, rng)
        times, placed = [], 0
        for _ in range(args.decisions):
            req = Requirements(
                arches=rng.choice([None, frozenset({"arm64"}), frozenset({"amd64"})]),
                cpu=rng.choice([1, 2, 4, 8]),
                memory_bytes=rng.choice([1, 4, 16]) * GIB,
            )
            t0 = time.perf_counter()
            decision = place(req, hosts)
            times.append((time.perf_counter() - t0) * 1000)
            placed += decision.chosen is not None
        times.sort()
        print(
            f"{n:>6} {statistics.median(times):>10.2f} {times[int(len(times) * 0.99) - 1]:>8.2f} "
            f"{placed:>4}/{args.decisions}"
        )


if __name__ == "__main__":
    main()
