"""Properties of placement over random hosts and requirements (hypothesis):

1. a chosen host passes every rule (restated here, independently of the rule code), its volumes are the
   first matching option per mount, and placing task after task never exceeds any host's capacity;
2. a task is left unplaced only when no host passes every rule;
3. the choice is the bin-pack minimum;
4. HostIndex.place chooses exactly what place does, across random upserts, reserves, releases, removes.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

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

T = TypeVar("T")

GIB = 1024**3
MIB = 1024**2

ARCHES = ["amd64", "arm64", "riscv64"]
ZONES = {"eu-west-1": ["eu-west-1a", "eu-west-1b"], "us-east-1": ["us-east-1a", "us-east-1b"], "": [""]}
REGIONS = ["eu-west-1", "us-east-1"]
ALL_ZONES = [z for zs in ZONES.values() for z in zs if z]
FLEETS = ["cpu", "gpu"]
BACKENDS = ["local", "aws", "gcp"]
GPUS = [
    GpuInfo("nvidia", "NVIDIA A100-SXM4-80GB", 80 * GIB),
    GpuInfo("nvidia", "NVIDIA A100-PCIE-40GB", 40 * GIB),
    GpuInfo("nvidia", "NVIDIA H100 80GB HBM3", 81559 * MIB),
    GpuInfo("nvidia", "NVIDIA L4", 23034 * MIB),
    GpuInfo("amd", "AMD Instinct MI300X", 192 * GIB),
]
CPUS = [0.1, 0.2, 0.25, 0.3, 0.5, 1.0, 2.0, 4.0]

# A catalogue of volumes, so that mounts share options and some hosts match them.
VOLUMES = [
    VolumeOption("v-eu", "local", "eu-west-1", None, "/srv/v-eu"),
    VolumeOption("v-eu-a", "local", "eu-west-1", "eu-west-1a", "/srv/v-eu-a"),
    VolumeOption("v-eu-b", "local", "EU-West-1", "EU-WEST-1B", "/srv/v-eu-b"),
    VolumeOption("ebs-eu-b", "aws", "eu-west-1", "eu-west-1b", "/srv/ebs"),
    VolumeOption("v-us", "local", "us-east-1", None, "/srv/v-us"),
    VolumeOption("pd-us-a", "gcp", "us-east-1", "us-east-1a", "/srv/pd"),
]


def subsets(items: list[str]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(items), min_size=1, max_size=2)


def rarely(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    """Mostly None: a fleet narrowed to zones is the exception, and most random hosts should be usable."""
    return st.integers(0, 9).flatmap(lambda k: strategy if k == 0 else st.none())


@st.composite
def host_fields(draw: st.DrawFn) -> dict[str, object]:
    """A host without id/name: lists of them get unique ids and often clashing names."""
    cpu_total = draw(st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0]))
    mem_total = draw(st.sampled_from([1, 2, 4, 8])) * GIB
    region = draw(st.sampled_from(["eu-west-1", "us-east-1", "EU-WEST-1", ""]))
    zone = draw(st.sampled_from(ZONES[region.lower()] + [""]))
    # Mostly one model per host, as real ones are; now and then a mix, which the free count must handle.
    gpus = draw(st.sampled_from([0, 0, 1, 2, 4])) * (draw(st.sampled_from(GPUS)),)
    odd = draw(rarely(st.sampled_from(GPUS)))
    gpus += (odd,) if odd else ()
    return {
        "arch": draw(st.sampled_from(ARCHES)),
        "live": draw(st.sampled_from([True, True, True, True, False])),
        "cpu_total": cpu_total,
        "memory_total_bytes": mem_total,
        "cpu_used": draw(st.sampled_from([0.0, 0.0, 0.1, 0.2, 0.5, 1.0, 2.0, cpu_total, cpu_total + 1])),
        "memory_used_bytes": draw(st.sampled_from([0, 0, GIB // 2, GIB, mem_total])),
        "region": region,
        "zone": zone,
        "fleet": draw(st.sampled_from(["", *FLEETS])),
        "backend": draw(st.sampled_from(BACKENDS)),
        "gpus": gpus,
        "gpus_used": draw(st.sampled_from([0, 0, 1, len(gpus), len(gpus) + 1])),
        "disk_bytes": draw(st.sampled_from([0, 50, 100, 200])) * GIB,
        "local_nvme": draw(st.booleans()),
        "fleet_regions": draw(rarely(subsets([*REGIONS, "EU-WEST-1"]))),
        "fleet_zones": draw(rarely(subsets(ALL_ZONES))),
    }


def make_host(i: int, name: int, fields: dict[str, object]) -> HostView:
    return HostView(id=f"id{i}", name=f"h{name}", **fields)  # type: ignore[arg-type]


@st.composite
def host_lists(draw: st.DrawFn) -> list[HostView]:
    items = draw(st.lists(st.tuples(st.integers(0, 6), host_fields()), min_size=1, max_size=12))
    # Near-twins: hosts alike in everything but usage and name, as racks of one model are. They land in
    # the same index group, often with equal free CPU, where memory, GPUs and name must decide.
    for _ in range(draw(st.integers(0, 4))):
        _, fields = draw(st.sampled_from(items))
        twin = dict(fields)
        if draw(st.booleans()):
            twin["memory_used_bytes"] = draw(st.sampled_from([0, GIB // 2, GIB]))
        if draw(st.booleans()):
            twin["gpus_used"] = draw(st.sampled_from([0, 1]))
        items.append((draw(st.integers(0, 6)), twin))
    return [make_host(i, name, fields) for i, (name, fields) in enumerate(items)]


hosts_strategy = host_lists()


@st.composite
def gpu_reqs(draw: st.DrawFn) -> GpuReq:
    count_min = draw(st.sampled_from([1, 1, 2, 3]))
    return GpuReq(
        vendor=draw(st.sampled_from([None, None, "nvidia", "NVIDIA", "amd"])),
        names=draw(st.sampled_from([(), (), ("a100",), ("H100",), ("l4",), ("a100", "h100"), ("mi300",)])),
        memory_min=draw(st.sampled_from([None, None, 24 * GIB, 40 * GIB, 80 * GIB])),
        memory_max=draw(st.sampled_from([None, None, 48 * GIB, 100 * GIB])),
        count_min=count_min,
        count_max=draw(st.sampled_from([None, count_min, count_min + 2])),
    )


mount_lists = st.lists(
    st.tuples(
        st.sampled_from(["/data", "/cache", "/models"]), st.lists(st.sampled_from(VOLUMES), min_size=1, max_size=4)
    ),
    min_size=1,
    max_size=2,
)
mounts_strategy = mount_lists.map(lambda ms: tuple(MountReq(path, tuple(options)) for path, options in ms))


CONSTRAINTS = ["arch", "refused", "fleets", "regions", "zones", "backends", "gpu", "disk", "nvme", "mounts"]


@st.composite
def requirements(draw: st.DrawFn, host_ids: list[str]) -> Requirements:
    # A few constraints at a time: with all of them at once almost no random task fits anywhere, and
    # the properties about the choice would rarely be exercised.
    kinds = draw(st.sets(st.sampled_from(CONSTRAINTS), max_size=3))
    if draw(st.integers(0, 3)) == 0:
        kinds.add("gpu")  # GPU tasks need GPU hosts as well: ask more often than the rest
    arches = draw(st.sampled_from([{"amd64"}, {"arm64"}, {"amd64", "arm64"}, set()])) if "arch" in kinds else None
    from_image = arches is not None and draw(st.booleans())
    refused = "refused" in kinds and host_ids
    return Requirements(
        arches=None if arches is None else frozenset(arches),
        arch_source="image" if from_image else "",
        cpu=draw(st.sampled_from(CPUS)),
        memory_bytes=draw(st.sampled_from([0, 0, 256 * MIB, GIB, 3 * GIB])),
        excluded_hosts=frozenset(draw(st.lists(st.sampled_from(host_ids), max_size=2))) if refused else frozenset(),
        gpu=draw(gpu_reqs()) if "gpu" in kinds else None,
        disk_bytes=draw(st.sampled_from([50 * GIB, 150 * GIB])) if "disk" in kinds else None,
        nvme="nvme" in kinds,
        fleets=draw(subsets(FLEETS)) if "fleets" in kinds else None,
        regions=draw(subsets(["eu-west-1", "US-EAST-1"])) if "regions" in kinds else None,
        zones=draw(subsets(ALL_ZONES)) if "zones" in kinds else None,
        backends=draw(subsets(BACKENDS)) if "backends" in kinds else None,
        mounts=draw(mounts_strategy) if "mounts" in kinds else (),
        image_platforms=frozenset(f"linux/{a}" for a in arches or ()) if from_image else None,
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Requirements, list[HostView]]:
    hosts = draw(hosts_strategy)
    return draw(requirements([h.id for h in hosts])), hosts


# ---------------------------------------------------------------- the rules, restated


def _lower(values: frozenset[str]) -> set[str]:
    return {v.lower() for v in values}


def _volume_ok(v: VolumeOption, h: HostView) -> bool:
    same_place = v.region.lower() == h.region.lower() and (v.zone is None or v.zone.lower() == h.zone.lower())
    return same_place and (v.backend == "local" or v.backend.lower() == h.backend.lower())


def _matching_gpus(r: Requirements, h: HostView) -> int:
    g = r.gpu
    assert g is not None
    n = 0
    for gpu in h.gpus:
        if g.vendor is not None and g.vendor.lower() != gpu.vendor.lower():
            continue
        if g.names and not any(name.lower() in gpu.name.lower() for name in g.names):
            continue
        if g.memory_min is not None and Fraction(gpu.memory_bytes) < Fraction(95, 100) * g.memory_min:
            continue
        if g.memory_max is not None and gpu.memory_bytes > g.memory_max:
            continue
        n += 1
    return n


def expected_rule(r: Requirements, h: HostView) -> str | None:
    """The first rule the host fails, by the spec rather than the code."""
    checks = [
        ("live", h.live),
        ("refused", h.id not in r.excluded_hosts),
        ("arch", r.arches is None or h.arch in r.arches),
        ("fleet", r.fleets is None or h.fleet in r.fleets),
        ("backend", r.backends is None or h.backend.lower() in _lower(r.backends)),
        ("region", r.regions is None or h.region.lower() in _lower(r.regions)),
        ("zone", r.zones is None or h.zone.lower() in _lower(r.zones)),
        (
            "fleet-zone",
            (h.fleet_regions is None or h.region.lower() in _lower(h.fleet_regions))
            and (h.fleet_zones is None or h.zone.lower() in _lower(h.fleet_zones)),
        ),
        ("volumes", all(any(_volume_ok(o, h) for o in m.options) for m in r.mounts)),
        ("cpu", r.cpu <= h.cpu_total - h.cpu_used + 1e-9),
        ("memory", r.memory_bytes <= h.memory_total_bytes - h.memory_used_bytes),
        ("gpu", r.gpu is None or _matching_gpus(r, h) - max(h.gpus_used, 0) >= r.gpu.count_min),
        ("disk", r.disk_bytes is None or r.disk_bytes <= h.disk_bytes),
        ("nvme", not r.nvme or h.local_nvme),
    ]
    return next((name for name, ok in checks if not ok), None)


def gpus_wanted(r: Requirements) -> int:
    return r.gpu.count_min if r.gpu else 0


def pack_key(r: Requirements, h: HostView) -> tuple[float, int, int, str, str]:
    gpus_free = max(len(h.gpus) - h.gpus_used, 0)
    return (h.cpu_free - r.cpu, h.memory_free_bytes - r.memory_bytes, gpus_free - gpus_wanted(r), h.name, h.id)


# ---------------------------------------------------------------- properties 1-3


@settings(max_examples=300, deadline=None)
@given(cases())
def test_place_chooses_the_bin_pack_minimum_of_the_hosts_passing_every_rule(
    case: tuple[Requirements, list[HostView]],
) -> None:
    r, hosts = case
    d = place(r, hosts)
    fitting = [h for h in hosts if expected_rule(r, h) is None]

    # Every other host is reported once, in input order, with its first failing rule.
    assert [(x.host, x.rule) for x in d.rejections] == [
        (h.name, expected_rule(r, h)) for h in hosts if expected_rule(r, h) is not None
    ]
    assert all(x.reason for x in d.rejections)

    if not fitting:  # (2) unplaced only when nothing passes every rule
        assert d.chosen is None and d.reason and d.volumes == () and d.gpus == 0
        return
    # (1) the chosen host passes every rule, gets the first matching volume per mount, and has room
    assert d.chosen is not None and d.reason == ""
    chosen = d.chosen
    assert expected_rule(r, chosen) is None
    assert d.volumes == tuple(next(o for o in m.options if _volume_ok(o, chosen)) for m in r.mounts)
    assert d.gpus == gpus_wanted(r)
    assert chosen.cpu_used + r.cpu <= chosen.cpu_total + 1e-9
    assert chosen.memory_used_bytes + r.memory_bytes <= chosen.memory_total_bytes
    if r.gpu is not None:
        assert chosen.gpus_used + d.gpus <= _matching_gpus(r, chosen)
    # (3) bin-packing
    assert pack_key(r, chosen) == min(pack_key(r, h) for h in fitting)
    # Deterministic whatever the order hosts arrive in.
    assert place(r, hosts[::-1]).chosen == chosen


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_placing_task_after_task_never_exceeds_capacity(data: st.DataObject) -> None:
    hosts = data.draw(hosts_strategy)
    # Hosts that start within capacity must stay there; overcommitted ones (usage reported above
    # capacity) must get nothing more.
    index = HostIndex(hosts)
    start = {h.id: h for h in hosts}
    for _ in range(data.draw(st.integers(1, 12))):
        r = data.draw(requirements([]))
        d = index.place(r)
        if d.chosen is None:
            assert all(expected_rule(r, h) is not None for h in index.hosts())
            continue
        assert expected_rule(r, d.chosen) is None
        index.reserve(d.chosen.id, r.cpu, r.memory_bytes, d.gpus)
    for h in index.hosts():
        s = start[h.id]
        if h.cpu_used != s.cpu_used:
            assert h.cpu_used <= max(h.cpu_total, s.cpu_used) + 1e-6
        if h.memory_used_bytes != s.memory_used_bytes:
            assert h.memory_used_bytes <= h.memory_total_bytes
        if h.gpus_used != s.gpus_used:
            assert h.gpus_used <= len(h.gpus)


# ---------------------------------------------------------------- property 4: the index


def assert_same_choice(index: HostIndex, r: Requirements) -> None:
    fast = index.place(r)
    full = place(r, index.hosts())
    assert (fast.chosen, fast.volumes, fast.gpus) == (full.chosen, full.volumes, full.gpus)
    if full.chosen is None:
        assert fast == full  # no fit: the index explains exactly as place does
    else:
        assert fast.reason == ""


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_index_places_like_place_through_updates(data: st.DataObject) -> None:
    initial = data.draw(hosts_strategy)
    index = HostIndex(initial)
    reference = {h.id: h for h in initial}
    next_id = len(initial)
    for _ in range(data.draw(st.integers(1, 25))):
        ids = sorted(reference)
        op = data.draw(st.sampled_from(["place", "place", "add", "replace", "reserve", "release", "remove", "bind"]))
        if op == "add" or (op in ("replace", "reserve", "release", "remove", "bind") and not ids):
            host = make_host(next_id, data.draw(st.integers(0, 6)), data.draw(host_fields()))
            next_id += 1
            index.upsert(host)
            reference[host.id] = host
        elif op == "replace":
            old = reference[data.draw(st.sampled_from(ids))]
            host = dataclasses.replace(make_host(0, 0, data.draw(host_fields())), id=old.id, name=old.name)
            index.upsert(host)
            reference[host.id] = host
        elif op in ("reserve", "release"):
            host_id = data.draw(st.sampled_from(ids))
            cpu, mem, gpus = (
                data.draw(st.sampled_from(CPUS)),
                data.draw(st.sampled_from([0, GIB])),
                data.draw(st.integers(0, 2)),
            )
            h = reference[host_id]
            sign = 1 if op == "reserve" else -1
            expected = dataclasses.replace(
                h,
                cpu_used=max(h.cpu_used + sign * cpu, 0.0),
                memory_used_bytes=max(h.memory_used_bytes + sign * mem, 0),
                gpus_used=max(h.gpus_used + sign * gpus, 0),
            )
            got = index.reserve(host_id, cpu, mem, gpus) if op == "reserve" else index.release(host_id, cpu, mem, gpus)
            assert got == expected
            reference[host_id] = expected
        elif op == "remove":
            host_id = data.draw(st.sampled_from(ids))
            assert index.remove(host_id) == reference.pop(host_id)
        elif op == "bind":  # the scheduler's step: place, then reserve what was chosen
            r = data.draw(requirements(ids))
            d = index.place(r)
            if d.chosen is not None:
                reference[d.chosen.id] = index.reserve(d.chosen.id, r.cpu, r.memory_bytes, d.gpus)
        else:
            assert_same_choice(index, data.draw(requirements(ids)))
        assert sorted(index.hosts(), key=lambda h: h.id) == sorted(reference.values(), key=lambda h: h.id)
    assert_same_choice(index, data.draw(requirements(sorted(reference))))
