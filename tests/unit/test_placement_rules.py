"""Placement rules added for fleets, backends, regions, zones, volumes, GPUs, disk and NVMe: each rule on
its own, its exact reason string (what `dstackctl offers` shows), the summaries, and the HostIndex API."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from controller.placement import (
    Decision,
    GpuInfo,
    GpuReq,
    HostIndex,
    HostView,
    MountReq,
    Rejection,
    Requirements,
    VolumeOption,
    explain,
    first_rejection,
    place,
)
from controller.placement.rules import RULES, STATIC_RULES, volume_matches
from controller.placement.rules.gpu import gpu
from controller.placement.rules.host import arch, platform_arches
from controller.placement.rules.location import backend, fleet, fleet_zone, region, zone
from controller.placement.rules.volumes import volumes

GIB = 1024**3
MIB = 1024**2

A100_80 = GpuInfo("nvidia", "NVIDIA A100-SXM4-80GB", 80 * GIB)
H100 = GpuInfo("nvidia", "NVIDIA H100 80GB HBM3", 81559 * MIB)  # what nvidia-smi reports for an "80GB" card
L4 = GpuInfo("nvidia", "NVIDIA L4", 24 * GIB)
MI300X = GpuInfo("amd", "AMD Instinct MI300X", 192 * GIB)


def host(name: str = "h", **kw: Any) -> HostView:
    base: dict[str, Any] = {
        "id": f"id-{name}",
        "name": name,
        "arch": "amd64",
        "live": True,
        "cpu_total": 8.0,
        "memory_total_bytes": 32 * GIB,
        "region": "eu-west-1",
        "zone": "eu-west-1b",
    }
    base.update(kw)
    return HostView(**base)


def req(**kw: Any) -> Requirements:
    base: dict[str, Any] = {"arches": None, "cpu": 1.0}
    base.update(kw)
    return Requirements(**base)


def vol(name: str, region: str, zone: str | None = None, backend: str = "local") -> VolumeOption:
    return VolumeOption(name, backend, region, zone, f"/srv/{name}")


def rule_of(r: Requirements, h: HostView) -> tuple[str, str] | None:
    rejection = first_rejection(r, h)
    return None if rejection is None else (rejection.rule, rejection.reason)


# ---------------------------------------------------------------- the rule table


def test_new_rules_follow_arch_in_order() -> None:
    names = [name for name, _ in RULES]
    assert names[names.index("arch") + 1 :] == [
        "policy",
        "fleet",
        "backend",
        "region",
        "zone",
        "fleet-zone",
        "volumes",
        "cpu",
        "memory",
        "gpu",
        "disk",
        "nvme",
    ]
    assert set(names) >= STATIC_RULES


def test_existing_callers_keep_working_positionally() -> None:
    # The scheduler built these positionally before the new fields existed.
    r = Requirements(frozenset({"amd64"}), "resources.cpu", 1.0, GIB, frozenset())
    h = HostView("id-a", "a", "amd64", True, 4, 8 * GIB)
    d = place(r, [h])
    assert d == Decision(h, (), "", (), 0)
    assert (h.fleet, h.backend, h.gpus, h.gpus_used, h.disk_bytes, h.local_nvme) == ("", "local", (), 0, 0, False)
    assert (r.gpu, r.mounts, r.fleets, r.nvme, r.image_platforms) == (None, (), None, False, None)


def test_dataclasses_stay_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        host().gpus_used = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        GpuReq().count_min = 2  # type: ignore[misc]


# ---------------------------------------------------------------- arch from the image


def test_arch_from_image_names_the_image_platforms() -> None:
    r = req(arches=frozenset({"arm64"}), arch_source="image", image_platforms=frozenset({"linux/arm64/v8"}))
    assert arch(r, host()) == "arch amd64 not in image platforms [arm64]"
    multi = req(
        arches=frozenset({"arm64", "s390x"}),
        image_platforms=frozenset({"linux/s390x", "linux/arm64", "linux/arm/v7"}),
    )
    assert arch(multi, host()) == "arch amd64 not in image platforms [arm, arm64, s390x]"


def test_arch_reason_stays_explicit_without_image_platforms() -> None:
    assert arch(req(arches=frozenset({"arm64"})), host()) == "arch amd64, task needs arm64"


def test_arch_the_image_has_but_we_do_not_run_is_not_called_missing() -> None:
    # riscv64 is in the image, yet only amd64/arm64 are run: "not in image platforms" would be false.
    r = req(arches=frozenset({"arm64"}), image_platforms=frozenset({"linux/arm64", "linux/riscv64"}))
    assert arch(r, host(arch="riscv64")) == "arch riscv64, task needs arm64"


def test_platform_arches_keep_other_oses_whole() -> None:
    assert platform_arches(frozenset({"linux/amd64", "windows/amd64", "linux/arm64/v8"})) == {
        "amd64",
        "windows/amd64",
        "arm64",
    }


def test_image_arch_summary_sentence_is_unchanged() -> None:
    r = req(arches=frozenset({"arm64"}), arch_source="image", image_platforms=frozenset({"linux/arm64"}))
    d = place(r, [host("x86-1")])
    assert d.reason == "no live host with arch arm64: 1 host is amd64"
    assert d.rejections == (Rejection("x86-1", "arch", "arch amd64 not in image platforms [arm64]"),)


# ---------------------------------------------------------------- fleet, backend, region, zone


def test_fleet() -> None:
    r = req(fleets=frozenset({"cpu-pool"}))
    assert fleet(r, host(fleet="gpu-pool")) == "fleet gpu-pool not in [cpu-pool]"
    assert fleet(req(fleets=frozenset({"a"})), host()) == "not in any fleet, task needs [a]"
    assert fleet(req(fleets=frozenset({"b", "a"})), host()) == "not in any fleet, task needs [a, b]"
    assert fleet(r, host(fleet="cpu-pool")) == ""
    assert fleet(req(), host(fleet="gpu-pool")) == ""


def test_backend_is_case_insensitive() -> None:
    r = req(backends=frozenset({"aws"}))
    assert backend(r, host()) == "backend local not in [aws]"
    assert backend(r, host(backend="AWS")) == ""
    assert backend(req(backends=frozenset({"gcp", "azure"})), host(backend="aws")) == "backend aws not in [azure, gcp]"


def test_region_is_case_insensitive() -> None:
    r = req(regions=frozenset({"us-east-1"}))
    assert region(r, host()) == "region eu-west-1 not in [us-east-1]"
    assert region(req(regions=frozenset({"EU-West-1"})), host()) == ""
    assert region(r, host(region="")) == "no region, task needs [us-east-1]"


def test_zone() -> None:
    r = req(zones=frozenset({"eu-west-1a"}))
    assert zone(r, host()) == "zone eu-west-1b not in [eu-west-1a]"
    assert zone(req(zones=frozenset({"EU-WEST-1B"})), host()) == ""
    assert zone(r, host(zone="")) == "no zone, task needs [eu-west-1a]"


def test_fleet_zone_keeps_a_fleets_hosts_inside_its_zones_for_every_task() -> None:
    inside = host(fleet="gpu-pool", fleet_zones=frozenset({"eu-west-1b"}))
    outside = host(fleet="gpu-pool", fleet_zones=frozenset({"eu-west-1a"}))
    assert fleet_zone(req(), inside) == ""
    assert fleet_zone(req(), outside) == "zone eu-west-1b not in fleet gpu-pool's zones [eu-west-1a]"
    wrong_region = host(fleet="gpu-pool", fleet_regions=frozenset({"us-east-1"}))
    assert fleet_zone(req(), wrong_region) == "region eu-west-1 not in fleet gpu-pool's regions [us-east-1]"
    assert fleet_zone(req(), host(zone="", fleet_zones=frozenset({"z"}))) == "no zone, its fleet's zones are [z]"
    assert fleet_zone(req(), host(fleet_regions=frozenset({"EU-WEST-1"}))) == ""
    assert rule_of(req(), outside) == ("fleet-zone", "zone eu-west-1b not in fleet gpu-pool's zones [eu-west-1a]")


def test_location_rules_report_in_order() -> None:
    h = host(fleet="gpu-pool", backend="aws")
    everything = req(
        fleets=frozenset({"cpu-pool"}),
        backends=frozenset({"gcp"}),
        regions=frozenset({"us-east-1"}),
        zones=frozenset({"us-east-1a"}),
    )
    assert rule_of(everything, h) == ("fleet", "fleet gpu-pool not in [cpu-pool]")
    assert rule_of(dataclasses.replace(everything, fleets=None), h) == ("backend", "backend aws not in [gcp]")
    no_backend = dataclasses.replace(everything, fleets=None, backends=None)
    assert rule_of(no_backend, h) == ("region", "region eu-west-1 not in [us-east-1]")
    assert rule_of(dataclasses.replace(no_backend, regions=None), h) == ("zone", "zone eu-west-1b not in [us-east-1a]")


# ---------------------------------------------------------------- volumes


def test_volume_matching() -> None:
    on_prem = host()
    assert volume_matches(vol("v", "eu-west-1"), on_prem)  # no zone: the region is enough
    assert volume_matches(vol("v", "EU-WEST-1", "EU-WEST-1B"), on_prem)
    assert not volume_matches(vol("v", "eu-west-1", "eu-west-1a"), on_prem)
    assert not volume_matches(vol("v", "us-east-1"), on_prem)
    # A cloud volume needs a host of that cloud; a local one does not care about the backend.
    assert not volume_matches(vol("v", "eu-west-1", "eu-west-1b", backend="aws"), on_prem)
    assert volume_matches(vol("v", "eu-west-1", "eu-west-1b", backend="aws"), host(backend="aws"))
    assert volume_matches(vol("v", "eu-west-1", "eu-west-1b"), host(backend="aws"))


def test_volumes_reason() -> None:
    r = req(mounts=(MountReq("/data", (vol("vol-eu", "eu-west-1", "eu-west-1a"), vol("vol-us", "us-east-1"))),))
    assert volumes(r, host()) == "none of vol-eu, vol-us is in eu-west-1 (eu-west-1b)"
    single = req(mounts=(MountReq("/data", (vol("vol-eu", "eu-west-1", "eu-west-1a"),)),))
    assert volumes(single, host()) == "vol-eu is not in eu-west-1 (eu-west-1b)"
    assert volumes(single, host(zone="")) == "vol-eu is not in eu-west-1"
    cloud = req(mounts=(MountReq("/data", (vol("ebs-1", "eu-west-1", "eu-west-1b", backend="aws"),)),))
    assert volumes(cloud, host()) == "ebs-1 is not in local eu-west-1 (eu-west-1b)"
    assert volumes(req(mounts=(MountReq("/data", ()),)), host()) == "no volume listed for /data"


def test_volumes_reason_names_the_first_unmet_mount() -> None:
    r = req(
        mounts=(
            MountReq("/a", (vol("vol-a", "eu-west-1"),)),
            MountReq("/b", (vol("vol-b", "us-east-1"),)),
            MountReq("/c", (vol("vol-c", "ap-south-1"),)),
        )
    )
    assert volumes(r, host()) == "vol-b is not in eu-west-1 (eu-west-1b)"


def test_decision_carries_the_first_matching_volume_per_mount() -> None:
    r = req(
        mounts=(
            MountReq("/data", (vol("vol-us", "us-east-1"), vol("vol-eu-a", "eu-west-1", "eu-west-1a"))),
            MountReq("/cache", (vol("c-any", "eu-west-1"), vol("c-b", "eu-west-1", "eu-west-1b"))),
        )
    )
    d = place(r, [host("b", zone="eu-west-1b"), host("a", zone="eu-west-1a", cpu_total=4)])
    assert d.chosen is not None and d.chosen.name == "a"
    assert d.volumes == (r.mounts[0].options[1], r.mounts[1].options[0])
    assert d.rejections == (Rejection("b", "volumes", "none of vol-us, vol-eu-a is in eu-west-1 (eu-west-1b)"),)


def test_volumes_summary_shows_where_the_volumes_are() -> None:
    r = req(
        mounts=(
            MountReq("/data", (vol("vol-eu", "eu-west-1", "eu-west-1a"), vol("vol-us", "us-east-1", "us-east-1b"))),
        )
    )
    d = place(r, [host("a"), host("b", region="us-east-1", zone="us-east-1a"), host("gone", live=False)])
    assert d.chosen is None
    assert d.reason == "no host where any of vol-eu, vol-us is available (vol-eu: eu-west-1a, vol-us: us-east-1b)"
    no_zone = req(mounts=(MountReq("/data", (vol("vol-ap", "ap-south-1"),)),))
    assert place(no_zone, [host("a")]).reason == "no host where vol-ap is available (vol-ap: ap-south-1)"


def test_volumes_summary_names_the_mount_no_host_has() -> None:
    r = req(
        mounts=(
            MountReq("/a", (vol("vol-a", "eu-west-1", "eu-west-1b"),)),  # host x has it
            MountReq("/b", (vol("vol-b", "ap-south-1"),)),  # nobody has it
        )
    )
    d = place(r, [host("x"), host("y", zone="eu-west-1c")])
    assert d.reason == "no host where vol-b is available (vol-b: ap-south-1)"


def test_volumes_summary_only_when_volumes_alone_kept_hosts_out() -> None:
    r = req(cpu=4, mounts=(MountReq("/data", (vol("vol-us", "us-east-1"),)),))
    d = place(r, [host("a"), host("small", region="us-east-1", cpu_total=2)])
    assert d.reason == (
        "no live host fits (1 volumes, 1 cpu): a: vol-us is not in eu-west-1 (eu-west-1b); "
        "small: needs 4 CPUs, 2 of 2 free"
    )
    # Each host misses a different mount: no single mount to blame, so the generic form.
    split = req(
        mounts=(
            MountReq("/a", (vol("vol-a", "eu-west-1", "eu-west-1b"),)),
            MountReq("/b", (vol("vol-b", "eu-west-1", "eu-west-1c"),)),
        )
    )
    d = place(split, [host("x"), host("y", zone="eu-west-1c")])
    assert d.reason.startswith("no live host fits (2 volumes): x: vol-b is not in eu-west-1 (eu-west-1b)")


# ---------------------------------------------------------------- GPUs


def test_gpu_any() -> None:
    r = req(gpu=GpuReq(count_min=2))
    assert gpu(r, host()) == "needs 2 GPU, has none"
    assert gpu(r, host(gpus=(L4,))) == "needs 2 GPU, 1 free"
    assert gpu(r, host(gpus=(L4, L4))) == ""
    assert gpu(r, host(gpus=(L4, L4, L4), gpus_used=2)) == "needs 2 GPU, 1 free"
    assert gpu(r, host(gpus=(L4, L4), gpus_used=5)) == "needs 2 GPU, 0 free"


def test_gpu_name_is_a_case_insensitive_substring() -> None:
    r = req(gpu=GpuReq(names=("a100",)))
    assert gpu(r, host(gpus=(A100_80,))) == ""
    assert gpu(r, host(gpus=(L4,))) == "needs A100 GPU, has none"
    assert gpu(req(gpu=GpuReq(names=("A100", "h100"))), host(gpus=(H100,))) == ""
    assert gpu(req(gpu=GpuReq(names=("a100", "h100"))), host(gpus=(L4,))) == "needs A100 or H100 GPU, has none"


def test_gpu_vendor() -> None:
    assert gpu(req(gpu=GpuReq(vendor="AMD")), host(gpus=(MI300X,))) == ""
    assert gpu(req(gpu=GpuReq(vendor="amd")), host(gpus=(L4,))) == "needs amd GPU, has none"
    assert gpu(req(gpu=GpuReq(vendor="nvidia", names=("a100",))), host(gpus=(MI300X,))) == (
        "needs nvidia A100 GPU, has none"
    )


def test_gpu_memory_minimum_is_met_at_95_percent() -> None:
    r = req(gpu=GpuReq(memory_min=80 * GIB))
    assert gpu(r, host(gpus=(H100,))) == ""  # 81559MiB is 99.6% of 80GiB
    assert gpu(r, host(gpus=(A100_80,))) == ""
    assert gpu(r, host(gpus=(GpuInfo("nvidia", "x", 76 * GIB),))) == ""  # exactly 95%
    assert gpu(r, host(gpus=(GpuInfo("nvidia", "x", 75 * GIB),))) == "needs 80GB GPU memory, has 75GB"
    assert gpu(r, host(gpus=(L4,))) == "needs 80GB GPU memory, has 24GB"


def test_gpu_memory_maximum_and_range() -> None:
    assert gpu(req(gpu=GpuReq(memory_max=40 * GIB)), host(gpus=(A100_80,))) == (
        "needs at most 40GB GPU memory, has 80GB"
    )
    ranged = req(gpu=GpuReq(memory_min=40 * GIB, memory_max=48 * GIB))
    assert gpu(ranged, host(gpus=(L4, A100_80))) == "needs 40GB..48GB GPU memory, has 24GB, 80GB"


def test_gpu_free_counts_only_matching_gpus() -> None:
    mixed = host(gpus=(A100_80, L4, L4))
    assert gpu(req(gpu=GpuReq(names=("a100",), count_min=2)), mixed) == "needs 2 GPU, 1 free"
    assert gpu(req(gpu=GpuReq(count_min=3)), mixed) == ""
    # Which GPU is in use is not tracked: assume the matching one, never overcommit it.
    assert gpu(req(gpu=GpuReq(names=("a100",))), dataclasses.replace(mixed, gpus_used=1)) == "needs 1 GPU, 0 free"


def test_gpu_rule_order_kind_then_memory_then_count() -> None:
    r = req(gpu=GpuReq(names=("a100",), memory_min=80 * GIB, count_min=2))
    assert gpu(r, host(gpus=(L4,))) == "needs A100 GPU, has none"
    assert gpu(r, host(gpus=(GpuInfo("nvidia", "A100-PCIE-40GB", 40 * GIB),))) == "needs 80GB GPU memory, has 40GB"
    assert gpu(r, host(gpus=(A100_80,))) == "needs 2 GPU, 1 free"


def test_gpu_decision_allocates_the_minimum_count() -> None:
    r = req(gpu=GpuReq(count_min=2, count_max=8))
    d = place(r, [host("g", gpus=(L4,) * 8)])
    assert d.chosen is not None and d.gpus == 2
    assert place(req(), [host("c")]).gpus == 0


def test_no_gpu_request_passes_gpu_hosts() -> None:
    assert gpu(req(), host(gpus=(L4,), gpus_used=1)) == ""


# ---------------------------------------------------------------- disk, NVMe


def test_disk() -> None:
    r = req(disk_bytes=100 * GIB)
    assert rule_of(r, host(disk_bytes=50 * GIB)) == ("disk", "needs 100GB disk, has 50GB")
    assert rule_of(r, host(disk_bytes=100 * GIB)) is None
    assert rule_of(req(), host()) is None


def test_nvme() -> None:
    assert rule_of(req(nvme=True), host()) == ("nvme", "needs a local NVMe device, has none")
    assert rule_of(req(nvme=True), host(local_nvme=True)) is None


def test_resource_rules_report_in_order() -> None:
    h = host(cpu_total=1.0, memory_total_bytes=GIB, disk_bytes=GIB)
    r = req(cpu=2, memory_bytes=2 * GIB, gpu=GpuReq(), disk_bytes=2 * GIB, nvme=True)
    assert rule_of(r, h) == ("cpu", "needs 2 CPUs, 1 of 1 free")
    assert rule_of(dataclasses.replace(r, cpu=1), h) == ("memory", "needs 2GB memory, 1GB of 1GB free")
    r = dataclasses.replace(r, cpu=1, memory_bytes=0)
    assert rule_of(r, h) == ("gpu", "needs 1 GPU, has none")
    assert rule_of(r, dataclasses.replace(h, gpus=(L4,))) == ("disk", "needs 2GB disk, has 1GB")
    assert rule_of(dataclasses.replace(r, disk_bytes=None), dataclasses.replace(h, gpus=(L4,))) == (
        "nvme",
        "needs a local NVMe device, has none",
    )


# ---------------------------------------------------------------- ranking


def test_bin_packing_prefers_fewer_free_gpus_after_cpu_and_memory() -> None:
    hosts = [host("many", gpus=(L4,) * 8), host("few", gpus=(L4,) * 2), host("none")]
    assert place(req(), hosts).chosen.name == "none"  # type: ignore[union-attr]
    assert place(req(gpu=GpuReq()), hosts).chosen.name == "few"  # type: ignore[union-attr]
    # CPU still comes first: a busier GPU host beats an idler one.
    busy = [host("many", gpus=(L4,) * 8, cpu_used=6), host("few", gpus=(L4,) * 2)]
    assert place(req(gpu=GpuReq()), busy).chosen.name == "many"  # type: ignore[union-attr]


def test_same_name_ties_are_broken_by_id() -> None:
    twins = [host("t", id="id-2"), host("t", id="id-1")]
    assert place(req(), twins).chosen.id == "id-1"  # type: ignore[union-attr]
    assert place(req(), twins[::-1]).chosen.id == "id-1"  # type: ignore[union-attr]


def test_explain_is_place() -> None:
    assert explain is place


# ---------------------------------------------------------------- HostIndex


def test_index_basic_operations() -> None:
    index = HostIndex([host("a"), host("b", cpu_total=2)])
    assert len(index) == 2 and "id-a" in index
    assert [h.name for h in index.hosts()] == ["a", "b"]
    assert index.place(req()).chosen.name == "b"  # type: ignore[union-attr]
    b = index.reserve("id-b", 2, GIB, 1)
    assert (b.cpu_used, b.memory_used_bytes, b.gpus_used) == (2, GIB, 1)
    assert index.get("id-b") == b
    assert index.place(req()).chosen.name == "a"  # type: ignore[union-attr]
    released = index.release("id-b", 5, 4 * GIB, 3)  # more than was reserved: clamped at zero
    assert (released.cpu_used, released.memory_used_bytes, released.gpus_used) == (0, 0, 0)
    assert index.remove("id-b") == released
    assert index.remove("id-b") is None and index.get("id-b") is None
    assert [h.name for h in index.hosts()] == ["a"]
    with pytest.raises(KeyError):
        index.reserve("id-missing", 1, 0)


def test_index_upsert_replaces_and_keeps_order() -> None:
    index = HostIndex([host("a"), host("b")])
    index.upsert(host("a", live=False))
    assert [(h.name, h.live) for h in index.hosts()] == [("a", False), ("b", True)]
    assert index.place(req()).chosen.name == "b"  # type: ignore[union-attr]


def test_index_without_a_fit_explains_like_place() -> None:
    hosts = [host("a", arch="amd64"), host("b", live=False)]
    index = HostIndex(hosts)
    r = req(arches=frozenset({"arm64"}))
    assert index.place(r) == place(r, hosts)
    assert HostIndex().place(r).reason == "no hosts are registered"


def test_index_fast_decision_carries_volumes_and_gpus() -> None:
    r = req(gpu=GpuReq(count_min=2), mounts=(MountReq("/d", (vol("x", "us-east-1"), vol("y", "eu-west-1"))),))
    hosts = [host("g", gpus=(L4,) * 4), host("c")]
    d = HostIndex(hosts).place(r)
    full = place(r, hosts)
    assert (d.chosen, d.volumes, d.gpus) == (full.chosen, full.volumes, full.gpus)
    assert d.volumes == (r.mounts[0].options[1],) and d.gpus == 2
    assert d.rejections == ()  # the fast path does not look at every host: `place` explains


def test_index_finds_a_host_that_fits_only_within_the_rounding_tolerance() -> None:
    # 0.6 - (0.1 + 0.2) is a hair below 0.3: the cpu rule lets it fit, and so must the index's bisect.
    hairline = host("hairline", cpu_total=0.6, cpu_used=0.1 + 0.2)
    hosts = [hairline, host("roomy")]
    assert HostIndex(hosts).place(req(cpu=0.3)).chosen == hairline == place(req(cpu=0.3), hosts).chosen


def test_index_compares_hosts_left_with_equal_free_cpu() -> None:
    # Same group (alike in every static field), same free CPU: memory, then GPUs, then name decide.
    hosts = [
        host("a", memory_used_bytes=0),
        host("b", memory_used_bytes=8 * GIB),
        host("c", memory_used_bytes=8 * GIB, zone="eu-west-1a"),  # another group, same leftovers as b
        host("d", memory_used_bytes=30 * GIB),  # least memory left, but too little for the task
    ]
    r = req(memory_bytes=4 * GIB)
    assert HostIndex(hosts).place(r).chosen.name == "b" == place(r, hosts).chosen.name  # type: ignore[union-attr]
    assert HostIndex(hosts[::-1]).place(r).chosen.name == "b"  # type: ignore[union-attr]


# ---------------------------------------------------------------- interruption notices


def test_a_host_with_an_interruption_notice_gets_no_task_and_says_why() -> None:
    noticed = host("h1", notice="spot terminate at 12:34:56 UTC")
    assert rule_of(req(), noticed) == ("notice", "host h1 has an interruption notice (spot terminate at 12:34:56 UTC)")
    assert rule_of(req(), host("h2")) is None
    d = place(req(), [noticed])
    assert d.chosen is None
    assert d.reason == (
        "no live host fits (1 notice): h1: host h1 has an interruption notice (spot terminate at 12:34:56 UTC)"
    )
    assert place(req(), [noticed, host("h2")]).chosen == host("h2")


def test_the_index_keeps_noticed_hosts_apart_from_alike_ones() -> None:
    # "notice" is a static rule: the index groups hosts by it, so a notice arriving must regroup.
    from controller.placement import HostIndex

    index = HostIndex()
    index.upsert(host("h1"))
    assert index.place(req()).chosen == host("h1")
    index.upsert(host("h1", notice="azure preempt at 2022-04-11 22:27:28 UTC"))
    decision = index.place(req())
    assert decision.chosen is None and "interruption notice" in decision.reason
