"""Cloud offer ranking: how long `rank_offers` takes over a realistic catalogue, and how long the
AWS backend takes to read one region's catalogue from moto's server on loopback.

    .venv/bin/python bench/offers.py [--regions 4] [--rounds 20] [--moto]

The synthetic catalogue has AWS's shape: ~900 instance types (amd64 and arm64 families, sizes
from 1 to 192 vCPUs, some burstable, some with GPUs or local NVMe) offered in 3 zones per region,
on-demand and spot, with prices. Each round ranks it for a mix of requests (arm64 2 CPU, amd64
16 CPU 64 GB, one GPU, a zone-pinned one, a volume-pinned one). `--moto` also times
AWSBackend.offerings() for one region against a ThreadedMotoServer (DescribeInstanceTypes of the
whole catalogue, the zone offerings and the spot price history), cold and then cached."""

from __future__ import annotations

import argparse
import random
import statistics
import time

from controller.backends.model import InstanceType, Offering
from controller.backends.offers import OfferPolicy, rank_offers
from controller.placement.model import GpuInfo, GpuReq, MountReq, Requirements, VolumeOption

GIB = 2**30
SIZES = [("medium", 1), ("large", 2), ("xlarge", 4), ("2xlarge", 8), ("4xlarge", 16), ("8xlarge", 32),
         ("12xlarge", 48), ("16xlarge", 64), ("24xlarge", 96), ("48xlarge", 192)]  # fmt: skip


def catalogue(rng: random.Random) -> list[InstanceType]:
    types = []
    for family_index in range(90):
        arch = "arm64" if family_index % 3 == 0 else "amd64"
        family = f"{'mcr'[family_index % 3]}{family_index // 3 + 4}{'g' if arch == 'arm64' else 'i'}"
        memory_per_cpu = (2, 4, 8)[family_index % 3]
        burstable = family_index % 15 == 0
        gpus = family_index % 20 == 1
        nvme = family_index % 7 == 2
        for size, vcpus in SIZES:
            types.append(
                InstanceType(
                    backend="aws",
                    name=f"{family}.{size}",
                    arch=arch,
                    raw_arch="arm64" if arch == "arm64" else "x86_64",
                    vcpus=vcpus,
                    memory_bytes=vcpus * memory_per_cpu * GIB,
                    gpus=tuple(GpuInfo("nvidia", "A10G", 24 * GIB) for _ in range(max(vcpus // 8, 1))) if gpus else (),
                    local_nvme_bytes=vcpus * 50 * 10**9 if nvme else 0,
                    burstable=burstable,
                    family=family,
                )
            )
    rng.shuffle(types)
    return types


def offerings(types: list[InstanceType], regions: int, rng: random.Random) -> list[Offering]:
    found = []
    for r in range(regions):
        region = f"region-{r}"
        for zone in "abc":
            for t in types:
                price = round(t.vcpus * 0.02 * rng.uniform(0.9, 1.1), 4)
                found.append(Offering(t, region, f"{region}{zone}", False, price))
                found.append(Offering(t, region, f"{region}{zone}", True, round(price * 0.3, 4)))
    return found


VOLUME_IN_2C = MountReq("/data", (VolumeOption("v", "aws", "region-2", "region-2c", ""),))
REQUESTS = [
    Requirements(arches=frozenset({"arm64"}), cpu=2, memory_bytes=4 * GIB),
    Requirements(arches=frozenset({"amd64"}), cpu=16, memory_bytes=64 * GIB),
    Requirements(arches=None, cpu=4, memory_bytes=16 * GIB, gpu=GpuReq(names=("A10G",), count_min=1)),
    Requirements(arches=None, cpu=2, zones=frozenset({"region-1b"})),
    Requirements(arches=None, cpu=2, mounts=(VOLUME_IN_2C,)),
]


def bench_ranking(regions: int, rounds: int) -> None:
    rng = random.Random(7)
    offers = offerings(catalogue(rng), regions, rng)
    policy = OfferPolicy(fleet="cloud", spot_policy="auto")
    times = []
    for _ in range(rounds):
        for req in REQUESTS:
            start = time.perf_counter()
            ranked = rank_offers(req, offers, policy)
            times.append(time.perf_counter() - start)
            assert ranked.fitting, req
    times.sort()
    print(f"rank_offers over {len(offers):,} offerings ({regions} regions x 3 zones x 2 markets):"
          f" median {statistics.median(times) * 1000:.1f} ms, p95 {times[int(len(times) * 0.95)] * 1000:.1f} ms,"
          f" {len(times)} rankings")  # fmt: skip


def bench_moto() -> None:
    from controller.backends.aws import AWSBackend
    from controller.backends.config import AWSBackendConfig
    from tests.support.moto_server import moto_server

    with moto_server() as server:
        backend = AWSBackend(
            AWSBackendConfig(
                type="aws",
                regions=["eu-west-1"],
                endpoint_url=server.url,
                creds={"type": "access_key", "access_key": "testing", "secret_key": "testing"},  # type: ignore[arg-type]
            )
        )
        start = time.perf_counter()
        found = backend.offerings("eu-west-1")
        cold = time.perf_counter() - start
        start = time.perf_counter()
        backend.offerings("eu-west-1")
        warm = time.perf_counter() - start
        print(f"AWSBackend.offerings(eu-west-1) against moto: {len(found):,} offerings,"
              f" cold {cold:.2f} s, cached {warm * 1000:.2f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--moto", action="store_true", help="also time the AWS backend against moto's server")
    args = parser.parse_args()
    bench_ranking(args.regions, args.rounds)
    if args.moto:
        bench_moto()


if __name__ == "__main__":
    main()
