"""Which cloud offerings could run a task, cheapest first, and why each other one could not.

Pure: offerings, requirements and policy in, a list out; no I/O, no clock (the caller passes
`now`). Each offering is seen as the host it would become (a HostView) and goes through the
same placement rules as a registered host, so `arch`, `cpu`, `zone`, `volumes` and the rest
say the same thing for a launch as for a host; the rules that only a purchase has (spot,
burstable, price, a recent capacity error) come after them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.backends.model import Offering
from controller.placement.model import HostView, Requirements
from controller.placement.rules import RULES

# The agent reports the memory the kernel sees (MemTotal), a few percent under the size's
# nominal memory: 8 GiB sizes show about 7.7 GiB. An offer counts that much, so a task that
# asks for the nominal 8GB is not launched onto a VM that would then never fit it.
USABLE_MEMORY_FRACTION = 0.94

# Rules a fresh instance passes by construction: it will be live and no host refused the task.
_SKIPPED_RULES = frozenset({"live", "refused"})
# The placement rules by what they read of an offering: its location (the same for every type
# offered there) or its type (the same in every zone and market). A catalogue has ~1,000 types in
# a few dozen zones, so each is checked once, not once per offering; the first rejection in
# RULES order is still the one reported (RULES runs arch, then the location rules, then sizes).
_LOCATION_RULES = frozenset({"fleet", "backend", "region", "zone", "fleet-zone", "volumes"})


@dataclass(frozen=True)
class OfferPolicy:
    """What the fleet and the task say about buying: resolved by the caller (task over fleet)."""

    fleet: str
    fleet_regions: frozenset[str] | None = None
    fleet_zones: frozenset[str] | None = None
    spot_policy: str = "on-demand"  # spot | on-demand | auto
    max_price: float | None = None
    burstable: bool = False
    disk_bytes: int = 100 * 10**9  # the OS disk a launch gets
    blocked: Mapping[str, float] = field(default_factory=dict)  # offering key -> blocked until
    now: float = 0.0


@dataclass(frozen=True)
class RejectedOffer:
    offering: Offering
    rule: str
    reason: str


@dataclass(frozen=True)
class OfferList:
    fitting: tuple[Offering, ...]  # cheapest first; the first is what a launch takes
    rejected: tuple[RejectedOffer, ...]


def offering_host(offering: Offering, policy: OfferPolicy) -> HostView:
    """The host this offering would be once its agent registers."""
    itype = offering.instance_type
    return HostView(
        id=offering.key,
        name=itype.name,
        arch=itype.arch,
        live=True,
        cpu_total=float(itype.vcpus),
        memory_total_bytes=int(itype.memory_bytes * USABLE_MEMORY_FRACTION),
        region=offering.region,
        zone=offering.zone,
        fleet=policy.fleet,
        backend=itype.backend,
        gpus=itype.gpus,
        disk_bytes=policy.disk_bytes,
        local_nvme=itype.local_nvme_bytes > 0,
        fleet_regions=policy.fleet_regions,
        fleet_zones=policy.fleet_zones,
    )


def purchase_rejection(offering: Offering, policy: OfferPolicy) -> tuple[str, str] | None:
    """The first purchase rule the offering fails, as (rule, reason)."""
    itype = offering.instance_type
    if policy.spot_policy == "spot" and not offering.spot:
        return "spot", "on-demand, spot_policy is spot"
    if policy.spot_policy == "on-demand" and offering.spot:
        return "spot", "spot, spot_policy is on-demand"
    if itype.burstable and not policy.burstable:
        return "burstable", (
            f"burstable ({itype.family or itype.name}: sustained CPU is a fraction of its vCPUs; set burstable: true)"
        )
    if policy.max_price is not None:
        if offering.price is None:
            return "price", f"price unknown, max_price is ${policy.max_price:.4g}/h"
        if offering.price > policy.max_price:
            return "price", f"${offering.price:.4g}/h is over max_price ${policy.max_price:.4g}/h"
    until = policy.blocked.get(offering.key)
    if until is not None and until > policy.now:
        return "blocked", f"blocked for {int(until - policy.now) // 60 + 1} more min after a failed launch"
    return None


def first_rejection(req: Requirements, offering: Offering, policy: OfferPolicy) -> tuple[str, str] | None:
    itype = offering.instance_type
    if itype.unsupported:
        return "unsupported", itype.unsupported
    host = offering_host(offering, policy)
    for rule_name, rule in RULES:
        if rule_name in _SKIPPED_RULES:
            continue
        reason = rule(req, host)
        if reason:
            return rule_name, reason
    return purchase_rejection(offering, policy)


def _type_rejections(
    req: Requirements, offering: Offering, policy: OfferPolicy
) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """What the type alone decides: before the location rules (unsupported, arch), and after them
    (cpu, memory, gpu, disk, nvme)."""
    itype = offering.instance_type
    if itype.unsupported:
        return ("unsupported", itype.unsupported), None
    host = offering_host(offering, policy)
    arch = _rule_rejection(req, host, frozenset({"arch"}))
    if arch is not None:
        return arch, None
    sizes = frozenset(name for name, _ in RULES) - _LOCATION_RULES - _SKIPPED_RULES - {"arch"}
    return None, _rule_rejection(req, host, sizes)


def _rule_rejection(req: Requirements, host: HostView, names: frozenset[str]) -> tuple[str, str] | None:
    for rule_name, rule in RULES:
        if rule_name in names:
            reason = rule(req, host)
            if reason:
                return rule_name, reason
    return None


def sort_key(offering: Offering) -> tuple[object, ...]:
    """Known prices first, cheapest first; unknown prices after, smallest size first (the cheapest
    guess: fewest vCPUs, least memory, no GPUs or local NVMe the task did not ask for, the current
    generation); then names, so the same offerings always come out in the same order."""
    itype = offering.instance_type
    return (
        offering.price is None,
        offering.price or 0.0,
        itype.vcpus,
        itype.memory_bytes,
        len(itype.gpus),
        itype.local_nvme_bytes,
        itype.previous_generation,
        not offering.spot,
        itype.backend,
        offering.region,
        offering.zone,
        itype.name,
    )


def rank_offers(req: Requirements, offerings: Iterable[Offering], policy: OfferPolicy) -> OfferList:
    """The same answer as `first_rejection` on each offering, computed per type and per location."""
    by_type: dict[tuple[str, str], tuple[tuple[str, str] | None, tuple[str, str] | None]] = {}
    by_location: dict[tuple[str, str, str], tuple[str, str] | None] = {}
    fitting: list[Offering] = []
    rejected: list[RejectedOffer] = []
    for offering in offerings:
        itype = offering.instance_type
        type_key = (itype.backend, itype.name)
        if type_key not in by_type:
            by_type[type_key] = _type_rejections(req, offering, policy)
        before, after = by_type[type_key]
        why = before
        if why is None:
            location_key = (itype.backend, offering.region, offering.zone)
            if location_key not in by_location:
                by_location[location_key] = _rule_rejection(req, offering_host(offering, policy), _LOCATION_RULES)
            why = by_location[location_key] or after or purchase_rejection(offering, policy)
        if why is None:
            fitting.append(offering)
        else:
            rejected.append(RejectedOffer(offering, *why))
    fitting.sort(key=sort_key)
    rejected.sort(key=lambda r: sort_key(r.offering))
    return OfferList(tuple(fitting), tuple(rejected))
