"""Placement core: rules in order, bin-packing, deterministic ties and the one-sentence summaries."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

import pytest

from controller.placement import Decision, HostView, Rejection, Requirements, first_rejection, place
from controller.placement.rules import RULES, format_bytes

GIB = 1024**3
MIB = 1024**2


def host(
    name: str,
    arch: str = "amd64",
    *,
    live: bool = True,
    cpu: float = 4,
    mem: int = 8 * GIB,
    cpu_used: float = 0.0,
    mem_used: int = 0,
) -> HostView:
    return HostView(
        id=f"id-{name}",
        name=name,
        arch=arch,
        live=live,
        cpu_total=cpu,
        memory_total_bytes=mem,
        cpu_used=cpu_used,
        memory_used_bytes=mem_used,
    )


def req(
    arches: set[str] | None = None,
    cpu: float = 1.0,
    mem: int = 0,
    excluded: Iterable[str] = (),
) -> Requirements:
    return Requirements(
        arches=None if arches is None else frozenset(arches),
        cpu=cpu,
        memory_bytes=mem,
        excluded_hosts=frozenset(excluded),
    )


# ---------------------------------------------------------------- summaries when nothing fits


def test_no_hosts_at_all() -> None:
    d = place(req({"arm64"}), [])
    assert d == Decision(None, (), "no hosts are registered")


def test_all_hosts_offline_plural_and_singular() -> None:
    two = place(req(), [host("a", live=False), host("b", live=False)])
    assert two.chosen is None
    assert two.reason == "no live host: 2 hosts offline"
    assert two.rejections == (Rejection("a", "live", "offline"), Rejection("b", "live", "offline"))
    one = place(req(), [host("a", live=False)])
    assert one.reason == "no live host: 1 host offline"


def test_arch_mismatch_single_host_exact_sentence() -> None:
    d = place(req({"arm64"}), [host("x86-1", "amd64")])
    assert d.chosen is None
    assert d.reason == "no live host with arch arm64: 1 host is amd64"
    assert d.rejections == (Rejection("x86-1", "arch", "arch amd64, task needs arm64"),)


def test_arch_mismatch_counts_arches_sorted_and_ignores_offline_hosts() -> None:
    hosts = [
        host("r1", "riscv64"),
        host("a1", "amd64"),
        host("a2", "amd64"),
        host("arm-off", "arm64", live=False),  # the only arm64 host is offline: not counted
    ]
    d = place(req({"arm64"}), hosts)
    assert d.chosen is None
    assert d.reason == "no live host with arch arm64: 2 hosts are amd64, 1 host is riscv64"
    assert [(r.host, r.rule) for r in d.rejections] == [
        ("r1", "arch"),
        ("a1", "arch"),
        ("a2", "arch"),
        ("arm-off", "live"),
    ]


def test_arch_summary_mentions_hosts_that_refused() -> None:
    hosts = [host("amd", "amd64"), host("arm", "arm64")]
    d = place(req({"arm64"}, excluded={"id-arm"}), hosts)
    assert d.chosen is None
    assert d.reason == "no live host with arch arm64: 1 host is amd64, 1 host refused it"
    only_refused = place(req({"arm64"}, excluded={"id-a", "id-b"}), [host("a", "arm64"), host("b", "arm64")])
    assert only_refused.reason == "no live host with arch arm64: 2 hosts refused it"


def test_several_acceptable_arches_are_joined_with_or() -> None:
    d = place(req({"arm64", "amd64"}), [host("p", "ppc64le")])
    assert d.reason == "no live host with arch amd64 or arm64: 1 host is ppc64le"
    assert d.rejections[0].reason == "arch ppc64le, task needs amd64 or arm64"


def test_empty_arch_set_fits_nowhere() -> None:
    d = place(Requirements(arches=frozenset()), [host("a", "amd64"), host("b", "arm64")])
    assert d.chosen is None
    assert {r.rule for r in d.rejections} == {"arch"}
    assert d.rejections[0].reason == "arch amd64, task needs an arch no host has"


def test_resource_summary_lists_first_three_and_counts_rules() -> None:
    hosts = [host(f"h{i}", cpu=1) for i in range(5)]
    d = place(req(cpu=2), hosts)
    assert d.chosen is None
    detail = "needs 2 CPUs, 1 of 1 free"
    assert d.reason == (f"no live host fits (5 cpu): h0: {detail}; h1: {detail}; h2: {detail} (and 2 more)")


def test_resource_summary_counts_each_rule() -> None:
    hosts = [host("small-cpu", cpu=1), host("small-mem", mem=1 * GIB)]
    d = place(req(cpu=2, mem=2 * GIB), hosts)
    assert d.reason == (
        "no live host fits (1 cpu, 1 memory): small-cpu: needs 2 CPUs, 1 of 1 free; "
        "small-mem: needs 2GB memory, 1GB of 1GB free"
    )


def test_no_arch_requirement_and_every_live_host_refused() -> None:
    d = place(req(None, excluded={"id-a"}), [host("a")])
    assert d.chosen is None
    assert d.reason == "no live host fits (1 refused): a: refused this task before"


def test_offline_and_too_small_hosts_are_both_explained() -> None:
    d = place(req(cpu=8), [host("gone", live=False), host("tiny", cpu=2)])
    assert d.chosen is None
    assert "gone: offline" in d.reason
    assert "tiny: needs 8 CPUs, 2 of 2 free" in d.reason
    assert d.reason.startswith("no live host fits (")


# ---------------------------------------------------------------- individual rules


def test_no_arch_requirement_accepts_any_arch() -> None:
    d = place(req(None), [host("odd", "s390x")])
    assert d.chosen is not None and d.chosen.name == "odd"
    assert d.reason == ""
    assert d.rejections == ()


def test_refused_is_by_host_id_not_name() -> None:
    h = host("n")
    assert first_rejection(req(excluded={"n"}), h) is None
    assert first_rejection(req(excluded={"id-n"}), h) == Rejection("n", "refused", "refused this task before")


def test_first_failing_rule_is_reported() -> None:
    # Fails every rule: offline comes first.
    everything_wrong = HostView("id-w", "w", "amd64", False, 1, GIB, cpu_used=1, memory_used_bytes=GIB)
    r = req({"arm64"}, cpu=2, mem=2 * GIB, excluded={"id-w"})
    assert first_rejection(r, everything_wrong) == Rejection("w", "live", "offline")
    live_now = HostView("id-w", "w", "amd64", True, 1, GIB, cpu_used=1, memory_used_bytes=GIB)
    assert first_rejection(r, live_now).rule == "refused"  # type: ignore[union-attr]
    assert first_rejection(req({"arm64"}, cpu=2, mem=2 * GIB), live_now).rule == "arch"  # type: ignore[union-attr]
    assert first_rejection(req({"amd64"}, cpu=2, mem=2 * GIB), live_now).rule == "cpu"  # type: ignore[union-attr]
    assert first_rejection(req({"amd64"}, cpu=0, mem=2 * GIB), live_now).rule == "memory"  # type: ignore[union-attr]
    # Location rules (fleet .. volumes) sit between arch and cpu; gpu, disk and nvme come last.
    assert [name for name, _ in RULES] == [
        "live",
        "notice",
        "refused",
        "arch",
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


def test_cpu_fit_uses_free_capacity() -> None:
    busy = host("busy", cpu=4, cpu_used=3)
    assert first_rejection(req(cpu=1), busy) is None
    assert first_rejection(req(cpu=2), busy) == Rejection("busy", "cpu", "needs 2 CPUs, 1 of 4 free")
    fractional = host("frac", cpu=2, cpu_used=1.5)
    assert first_rejection(req(cpu=0.5), fractional) is None
    assert first_rejection(req(cpu=1), fractional) == Rejection("frac", "cpu", "needs 1 CPU, 0.5 of 2 free")


def test_cpu_fit_tolerates_float_rounding() -> None:
    # 0.6 - (0.1 + 0.2) is a hair below 0.3 in binary floating point.
    h = host("f", cpu=0.6, cpu_used=0.1 + 0.2)
    assert first_rejection(req(cpu=0.3), h) is None


def test_overcommitted_host_reports_zero_free() -> None:
    h = host("over", cpu=4, cpu_used=6)
    assert first_rejection(req(cpu=1), h) == Rejection("over", "cpu", "needs 1 CPU, 0 of 4 free")
    m = host("over-mem", mem=4 * GIB, mem_used=5 * GIB)
    assert first_rejection(req(cpu=1, mem=1), m) == Rejection("over-mem", "memory", "needs 1B memory, 0B of 4GB free")


def test_memory_fit_uses_free_capacity_and_exact_fit_passes() -> None:
    h = host("m", mem=8 * GIB, mem_used=6 * GIB)
    assert first_rejection(req(mem=2 * GIB), h) is None  # exactly what is left
    assert first_rejection(req(mem=4 * GIB), h) == Rejection("m", "memory", "needs 4GB memory, 2GB of 8GB free")
    small = host("s", mem=GIB, mem_used=512 * MIB)
    assert first_rejection(req(mem=768 * MIB), small) == Rejection(
        "s", "memory", "needs 768MB memory, 512MB of 1GB free"
    )


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0B"), (1023, "1023B"), (MIB, "1MB"), (1536 * MIB, "1.5GB"), (GIB, "1GB"), (2 * 1024**4, "2TB")],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


# ---------------------------------------------------------------- choice among fitting hosts


def test_bin_packing_prefers_least_free_cpu_after_placement() -> None:
    hosts = [host("big", cpu=64), host("small", cpu=4), host("medium", cpu=16)]
    d = place(req(cpu=2), hosts)
    assert d.chosen is not None and d.chosen.name == "small"
    assert d.rejections == ()
    assert d.reason == ""


def test_bin_packing_accounts_for_used_capacity() -> None:
    hosts = [host("big-but-busy", cpu=64, cpu_used=62), host("small-idle", cpu=4)]
    assert place(req(cpu=2), hosts).chosen.name == "big-but-busy"  # type: ignore[union-attr]


def test_bin_packing_breaks_cpu_ties_by_memory() -> None:
    hosts = [host("roomy", mem=64 * GIB), host("tight", mem=8 * GIB), host("mid", mem=16 * GIB)]
    assert place(req(cpu=1, mem=4 * GIB), hosts).chosen.name == "tight"  # type: ignore[union-attr]


def test_ties_are_broken_by_name_whatever_the_input_order() -> None:
    hosts = [host("charlie"), host("alpha"), host("bravo")]
    for seed in range(10):
        shuffled = hosts[:]
        random.Random(seed).shuffle(shuffled)
        assert place(req(), shuffled).chosen.name == "alpha"  # type: ignore[union-attr]


def test_chosen_host_comes_with_rejections_of_the_others() -> None:
    hosts = [host("amd"), host("arm", "arm64"), host("arm-off", "arm64", live=False), host("arm-tiny", "arm64", cpu=1)]
    d = place(req({"arm64"}, cpu=2), hosts)
    assert d.chosen is not None and d.chosen.name == "arm"
    assert d.reason == ""
    assert [(r.host, r.rule) for r in d.rejections] == [("amd", "arch"), ("arm-off", "live"), ("arm-tiny", "cpu")]


def test_place_accepts_any_iterable() -> None:
    d = place(req(), (h for h in [host("b"), host("a")]))
    assert d.chosen is not None and d.chosen.name == "a"


# ---------------------------------------------------------------- property-style check


def _expected_rule(r: Requirements, h: HostView) -> str | None:
    """An independent restatement of the rules, in order."""
    if not h.live:
        return "live"
    if h.id in r.excluded_hosts:
        return "refused"
    if r.arches is not None and h.arch not in r.arches:
        return "arch"
    if r.cpu > h.cpu_total - h.cpu_used + 1e-9:
        return "cpu"
    if r.memory_bytes > h.memory_total_bytes - h.memory_used_bytes:
        return "memory"
    return None


def _random_case(rng: random.Random) -> tuple[Requirements, list[HostView]]:
    arches = ["amd64", "arm64", "riscv64"]
    hosts = []
    for i in range(rng.randint(0, 25)):
        cpu_total = rng.choice([1, 2, 4, 8, 16, 0.5])
        mem_total = rng.choice([1, 2, 4, 8, 16]) * GIB
        hosts.append(
            HostView(
                id=f"id{i}",
                name=f"h{rng.randint(0, 40):02d}-{i}",
                arch=rng.choice(arches),
                live=rng.random() > 0.2,
                cpu_total=cpu_total,
                memory_total_bytes=mem_total,
                cpu_used=rng.choice([0, 0, 0.5, 1, 2, cpu_total]),
                memory_used_bytes=rng.choice([0, 0, GIB // 2, GIB, mem_total]),
            )
        )
    arch_choice = rng.choice([None, {"amd64"}, {"arm64"}, {"amd64", "arm64"}])
    excluded = {h.id for h in hosts if rng.random() < 0.1}
    r = Requirements(
        arches=None if arch_choice is None else frozenset(arch_choice),
        cpu=rng.choice([0.25, 0.5, 1, 2, 4]),
        memory_bytes=rng.choice([0, 256 * MIB, GIB, 3 * GIB]),
        excluded_hosts=frozenset(excluded),
    )
    return r, hosts


@pytest.mark.parametrize("chunk", range(10))
def test_random_cases_choose_a_fitting_host_with_minimal_leftover(chunk: int) -> None:
    for seed in range(chunk * 50, chunk * 50 + 50):
        _check_random_case(seed)


def _check_random_case(seed: int) -> None:
    rng = random.Random(seed)
    r, hosts = _random_case(rng)
    d = place(r, hosts)
    expected = {h.name: _expected_rule(r, h) for h in hosts}
    fitting = [h for h in hosts if expected[h.name] is None]

    # Every rejection names the first failing rule; every non-fitting host is rejected exactly once.
    assert [(x.host, x.rule) for x in d.rejections] == [
        (h.name, expected[h.name]) for h in hosts if h not in fitting
    ], seed
    assert all(x.reason for x in d.rejections)

    if not fitting:
        assert d.chosen is None
        assert d.reason
        return
    assert d.chosen is not None
    assert d.reason == ""
    assert first_rejection(r, d.chosen) is None
    for rule_name, rule in RULES:
        assert rule(r, d.chosen) == "", (seed, rule_name)

    def leftover(h: HostView) -> tuple[float, int, str]:
        return (h.cpu_free - r.cpu, h.memory_free_bytes - r.memory_bytes, h.name)

    assert leftover(d.chosen) == min(leftover(h) for h in fitting), seed
    # Deterministic: the order hosts arrive in does not change the answer.
    shuffled = hosts[:]
    rng.shuffle(shuffled)
    assert place(r, shuffled).chosen == d.chosen, seed


def test_thousands_of_hosts_are_placed_quickly() -> None:
    rng = random.Random(7)
    hosts = [
        host(f"h{i:05d}", rng.choice(["amd64", "arm64"]), cpu=rng.choice([4, 8, 16]), cpu_used=rng.choice([0, 2]))
        for i in range(5000)
    ]
    start = time.perf_counter()
    d = place(req({"arm64"}, cpu=3), hosts)
    elapsed = time.perf_counter() - start
    assert d.chosen is not None and d.chosen.arch == "arm64"
    assert d.chosen.cpu_free - 3 == min(h.cpu_free - 3 for h in hosts if h.arch == "arm64" and h.cpu_free >= 3)
    assert elapsed < 2.0
