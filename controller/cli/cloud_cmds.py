"""dstackctl's cloud parts: the cloud offers under `offers`, `instance-types check`, and the cloud
instances under `fleet`. The formatting is pure (messages in, lines or dicts out) so tests need no server."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from dstack_hybrid.v1 import hybrid_pb2 as pb
from google.protobuf.message import Message

from controller.cli import format as fmt
from controller.cli.errors import UsageError
from controller.cli.table import render

MAX_USABLE_ROWS = 20
UNKNOWN_PRICES = "prices unknown for some offers: ranked by size"
BURSTABLE = "left out of offers unless burstable: true"


# ------------------------------------------------------------------ offers
def market(spot: bool) -> str:
    return "spot" if spot else "on-demand"


def offer_price(o: pb.Offer) -> str:
    return f"${o.price:.4f}/h" if o.has_price else "?"


def _offer_type(o: pb.Offer) -> str:
    return o.instance_type or o.host


def _offer_place(o: pb.Offer) -> str:
    return o.zone or o.region or "no zone"


def usable_offers(offers: Iterable[pb.Offer]) -> list[pb.Offer]:
    """The offers that fit, cheapest first; unknown prices after, in the controller's order (by size)."""
    usable = [o for o in offers if not o.reason]
    return sorted(usable, key=lambda o: (not o.has_price, o.price if o.has_price else 0.0))


def left_out_lines(offers: Iterable[pb.Offer], not_listed: int) -> list[str]:
    """One line per distinct reason, the commonest first, naming one offer as an example."""
    groups: dict[str, list[pb.Offer]] = {}
    for o in offers:
        if o.reason:
            groups.setdefault(o.reason, []).append(o)
    lines = []
    for reason, group in sorted(groups.items(), key=lambda kv: -len(kv[1])):  # stable: first seen first on ties
        example = group[0]
        noun = "offer" if len(group) == 1 else "offers"
        lines.append(f"{len(group)} {noun}: {reason} (e.g. {_offer_type(example)} in {_offer_place(example)})")
    if not_listed > 0:
        lines.append(f"{not_listed} more {'offer' if not_listed == 1 else 'offers'} left out, not listed")
    return lines


def cloud_offer_lines(reply: pb.OffersResponse) -> list[str]:
    """The "Cloud offers" section of `dstackctl offers`; empty when the reply has no cloud part."""
    if not reply.cloud_offers and not reply.cloud_notes and reply.cloud_offers_left_out <= 0:
        return []
    lines = ["Cloud offers"]
    usable = usable_offers(reply.cloud_offers)
    chosen = next((o for o in usable if o.chosen), None)
    if chosen is not None:
        fleet = f" into fleet {chosen.fleet}" if chosen.fleet else ""
        lines.append(
            f"would launch {_offer_type(chosen)} on {chosen.backend} in {_offer_place(chosen)}{fleet}"
            f" ({market(chosen.spot)}, {offer_price(chosen)})"
        )
    elif not usable and (reply.cloud_offers or reply.cloud_offers_left_out > 0):
        lines.append("no cloud offer fits")
    # Like the hosts above: the chosen one is the headline, the table lists the others.
    others = [o for o in usable if not o.chosen]
    if others:
        shown = others[:MAX_USABLE_ROWS]
        with_fleet = len({o.fleet for o in usable}) > 1
        headers = ["BACKEND", "REGION", "ZONE", "INSTANCE", "ARCH", "CPU", "MEMORY", "GPU", "SPOT", "PRICE"]
        rows = [
            [
                o.backend or "-",
                o.region or "-",
                o.zone or "-",
                _offer_type(o),
                o.arch or "-",
                fmt.cpus(o.vcpus),
                fmt.size(o.memory_bytes),
                str(o.gpus) if o.gpus else "-",
                market(o.spot),
                offer_price(o),
            ]
            + ([o.fleet or "-"] if with_fleet else [])
            for o in shown
        ]
        lines.append(render(headers + (["FLEET"] if with_fleet else []), rows))
        if len(others) > len(shown):
            lines.append(f"... and {len(others) - len(shown)} more")
    lines.extend(left_out_lines(reply.cloud_offers, reply.cloud_offers_left_out))
    if any(not o.has_price for o in usable):
        lines.append(UNKNOWN_PRICES)
    lines.extend(reply.cloud_notes)
    return lines


def cloud_offer_json(o: pb.Offer) -> dict[str, Any]:
    return {
        "instance_type": _offer_type(o),
        "backend": o.backend,
        "region": o.region or None,
        "zone": o.zone or None,
        "fleet": o.fleet or None,
        "arch": o.arch,
        "vcpus": o.vcpus,
        "memory_bytes": o.memory_bytes,
        "gpus": o.gpus,
        "spot": o.spot,
        "price": o.price if o.has_price else None,
        "chosen": o.chosen,
        "reason": o.reason,
    }


# ---------------------------------------------------------- instance-types
def _fields(message: Message) -> dict[str, Any]:
    """Every field of a flat message, repeated ones as lists, integers as numbers (MessageToDict
    would write int64 as strings)."""
    return {
        f.name: list(getattr(message, f.name)) if f.is_repeated else getattr(message, f.name)
        for f in message.DESCRIPTOR.fields
    }


def _where(c: pb.InstanceTypeCheck) -> str:
    return " ".join(p for p in (c.backend, c.region) if p)


def _supported(c: pb.InstanceTypeCheck) -> str:
    if not c.supported:
        return f"no: {c.reason or 'no reason given'}"
    if c.burstable:
        return f"yes, burstable: {BURSTABLE}"
    return f"yes: {c.reason}" if c.reason else "yes"


def _boots(c: pb.InstanceTypeCheck) -> str:
    how = [f"Gen{c.generation[1:]}" if c.generation[:1] in ("V", "v") else c.generation, c.disk_controller]
    how = [h for h in how if h]
    return c.image + (f" ({', '.join(how)})" if how else "")


def check_lines(c: pb.InstanceTypeCheck) -> list[str]:
    head = f"{c.name} ({_where(c)})" if _where(c) else c.name
    if not c.found:
        return [f"{head}: not offered by the API" + (f" ({c.reason})" if c.reason else "")]
    arch = c.arch or "none"
    if c.raw_arch and c.raw_arch != c.arch:
        arch += f" ({c.raw_arch})"
    gpus = (f"{c.gpus}x{c.gpu_name}" if c.gpu_name else str(c.gpus)) if c.gpus else "-"
    fields = [("arch", arch), ("vcpus, memory", f"{c.vcpus}, {fmt.size(c.memory_bytes)}"), ("gpus", gpus)]
    if c.local_nvme_bytes:
        fields.append(("local nvme", fmt.size(c.local_nvme_bytes)))
    if c.family:
        fields.append(("family", c.family))
    if c.hyperv_generations:
        fields.append(("hyper-v gens", ", ".join(c.hyperv_generations)))
    if c.disk_controllers:
        fields.append(("disk ctrl", ", ".join(c.disk_controllers)))
    if c.image:
        fields.append(("boots", _boots(c)))
    fields.append(("supported", _supported(c)))
    if c.lifecycle:
        note = c.lifecycle_note if c.lifecycle != "current" else ""
        fields.append(("lifecycle", f"{c.lifecycle}: {note}" if note else c.lifecycle))
    return [head] + [f"  {label:<14} {value}" for label, value in fields]


def checks_text(reply: pb.CheckInstanceTypesResponse) -> str:
    lines = [line for c in reply.checks for line in check_lines(c)]
    return "\n".join([*lines, *reply.notes])


def checks_json(reply: pb.CheckInstanceTypesResponse) -> list[dict[str, Any]]:
    """An array of checks, as every --json output is (INTERFACES.md); the notes go to stderr."""
    return [_fields(c) for c in reply.checks]


def check_exit_status(names: Sequence[str], checks: Iterable[pb.InstanceTypeCheck]) -> int:
    """0 when the API knows every name asked for in some asked backend (supported or not), else 1."""
    found = {c.name.casefold() for c in checks if c.found}
    return 0 if all(n.casefold() in found for n in names) else 1


def cmd_instance_types(args: argparse.Namespace, client: Any) -> int:
    names = [n.strip() for n in args.names if n.strip()]
    if not names:
        raise UsageError("instance-types check needs at least one type: dstackctl instance-types check TYPE...")
    request = pb.CheckInstanceTypesRequest(names=names, backend=args.backend or "", region=args.region or "")
    reply = client.call(client.stub.CheckInstanceTypes, request)
    if args.json:
        print(json.dumps(checks_json(reply), indent=2))
        for note in reply.notes:
            print(f"dstackctl: {note}", file=sys.stderr)
    else:
        print(checks_text(reply))
    return check_exit_status(names, reply.checks)


# ------------------------------------------------------------------- fleet
def instance_lines(instances: Sequence[pb.CloudInstance], verbose: bool = False) -> list[str]:
    """A fleet's cloud instances as a table; no lines when it has none."""
    if not instances:
        return []
    headers = ["INSTANCE", "BACKEND", "ZONE", "TYPE", "SPOT", "STATUS", "HOST", "PRICE"]
    if verbose:
        headers += ["LAUNCHED", "TASK", "REASON"]
    rows = [
        [
            i.instance_id or "-",
            f"{i.backend} ({i.region})" if i.region else i.backend,
            i.zone or "-",
            i.instance_type,
            market(i.spot),
            i.status,
            i.host or "-",
            f"${i.price:.4f}/h" if i.price else "?",
        ]
        + ([fmt.ago(i.launched_at_ms), i.task or "-", i.reason or "-"] if verbose else [])
        for i in instances
    ]
    return render(headers, rows).split("\n")


def instance_json(i: pb.CloudInstance) -> dict[str, Any]:
    return {
        "instance_id": i.instance_id,
        "backend": i.backend,
        "region": i.region or None,
        "zone": i.zone or None,
        "instance_type": i.instance_type,
        "status": i.status,
        "host": i.host or None,
        "spot": i.spot,
        "price": i.price or None,
        "launched_at": i.launched_at_ms or None,
        "task": i.task or None,
        "reason": i.reason or None,
    }
