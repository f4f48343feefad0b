"""The placement decision: requirements x host views -> chosen host, or why none fits.
No I/O, no clock: the caller passes everything in, so it is cheap to test and to explain."""

from __future__ import annotations

from collections.abc import Iterable

from controller.placement.model import Decision, HostView, Rejection, Requirements
from controller.placement.rank import rank_key
from controller.placement.rules import RULES, chosen_volumes
from controller.placement.rules.gpu import to_allocate
from controller.placement.summary import summarise

__all__ = ["decide", "explain", "first_rejection", "place", "summarise"]


def place(req: Requirements, hosts: Iterable[HostView]) -> Decision:
    """Checks every host, so the decision lists each rejected one with its first failing rule
    (`dstackctl offers`). The scheduler's hot path is HostIndex.place, which chooses the same host."""
    fitting: list[HostView] = []
    rejections: list[Rejection] = []
    seen: list[HostView] = []
    for host in hosts:
        seen.append(host)
        rejection = first_rejection(req, host)
        if rejection is None:
            fitting.append(host)
        else:
            rejections.append(rejection)
    if not fitting:
        return Decision(None, tuple(rejections), summarise(req, seen, rejections))
    chosen = min(fitting, key=lambda h: rank_key(req, h))
    return decide(req, chosen, tuple(rejections))


explain = place


def decide(req: Requirements, chosen: HostView, rejections: tuple[Rejection, ...] = ()) -> Decision:
    """The decision for a host that passed every rule: what to attach and allocate there."""
    return Decision(chosen, rejections, "", chosen_volumes(req, chosen) or (), to_allocate(req))


def first_rejection(req: Requirements, host: HostView) -> Rejection | None:
    for rule_name, rule in RULES:
        reason = rule(req, host)
        if reason:
            return Rejection(host.name, rule_name, reason)
    return None
