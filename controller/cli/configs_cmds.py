"""dstackctl apply / delete / fleet / volume / offers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.cli import format as fmt
from controller.cli.cloud_cmds import cloud_offer_json, cloud_offer_lines, instance_json, instance_lines
from controller.cli.errors import UsageError
from controller.cli.table import render
from controller.configs.loader import ConfigError, load_apply_file, load_task_file
from controller.status_wire import host_status, host_status_text
from controller.statuses import HostStatus


def cmd_apply(args: argparse.Namespace, client: Any) -> int:
    try:
        config = load_apply_file(Path(args.file))  # refuses a task file, pointing at submit
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    kind = config.type
    reply = client.call(client.stub.Apply, pb.ApplyRequest(kind=kind, configuration_json=config.model_dump_json()))
    print(f"{reply.kind} {reply.name} {reply.action}")
    return 0


def cmd_delete(args: argparse.Namespace, client: Any) -> int:
    client.call(client.stub.Delete, pb.DeleteRequest(kind=args.kind, name=args.name, force=args.force))
    print(f"{args.kind} {args.name} deleted")
    return 0


def _place(h: pb.Host, verbose: bool) -> str:
    where = f"{h.region} ({h.zone})" if verbose and h.zone else (h.region or "-")
    return f"{h.backend or 'local'} ({where})"


def cmd_fleet(args: argparse.Namespace, client: Any) -> int:
    fleets = client.call(client.stub.ListFleets, pb.ListFleetsRequest()).fleets
    if args.json:
        print(json.dumps([fleet_json(f) for f in fleets], indent=2))
        return 0
    print("\n".join(fleet_lines(fleets, args.verbose)))
    return 0


def fleet_lines(fleets: Sequence[pb.Fleet], verbose: bool) -> list[str]:
    """One table of fleets and their hosts; under each fleet's hosts, its cloud instances."""
    headers = ["NAME", "NODES", "RESOURCES", "ZONES", "STATUS"] + (["ERROR"] if verbose else [])
    rows = []
    sizes = []  # how many rows each fleet has, to put its instances after them
    for f in fleets:
        spec = json.loads(f.configuration_json)
        online = sum(1 for h in f.hosts if host_status(h) == HostStatus.ONLINE)
        rows.append(
            [
                f.name,
                f"{online}/{len(f.hosts)}",
                _resources(spec, verbose),
                ",".join(spec.get("availability_zones") or []) or "-",
                f.status,
            ]
            + ([f.error or "-"] if verbose else [])
        )
        for h in f.hosts:
            rows.append(
                [
                    f"  {h.name}",
                    "",
                    f"{fmt.cpus(h.cpu_total)}xCPU {fmt.size(h.memory_total_bytes)}",
                    _place(h, verbose),
                    host_status_text(h),
                ]
                + ([""] if verbose else [])
            )
        sizes.append(1 + len(f.hosts))
    table = render(headers, rows).split("\n")
    lines, at = table[:1], 1
    for f, size in zip(fleets, sizes, strict=True):
        lines += table[at : at + size]
        lines += [f"    {line}".rstrip() for line in instance_lines(f.instances, verbose)]
        at += size
    return lines


def _resources(spec: dict[str, Any], verbose: bool) -> str:
    res = spec.get("resources")
    if not res:
        return "-"
    parts = [f"{k}={v}" for k, v in res.items() if v not in (None, False)]
    text = " ".join(parts)
    return text if verbose or len(text) <= 40 else text[:39] + "…"


def fleet_json(f: pb.Fleet) -> dict[str, Any]:
    return {
        "name": f.name,
        "status": f.status,
        "error": f.error or None,
        "configuration": json.loads(f.configuration_json),
        "nodes": len(f.hosts),
        "hosts": [
            {
                "name": h.name,
                "arch": h.arch,
                "zone": h.zone or None,
                "region": h.region or None,
                "status": host_status_text(h),
                "backend": h.backend,
            }
            for h in f.hosts
        ],
        "instances": [instance_json(i) for i in f.instances],
    }


def cmd_volume(args: argparse.Namespace, client: Any) -> int:
    volumes = client.call(client.stub.ListVolumes, pb.ListVolumesRequest()).volumes
    rows, json_rows = [], []
    for v in volumes:
        spec = json.loads(v.configuration_json)
        zone = spec.get("availability_zone")
        row = {
            "NAME": v.name,
            "BACKEND": f"{spec['backend']} ({spec['region']})",
            "STATUS": v.status,
            "CREATED": fmt.ago(v.created_at_ms),
            "REGION": f"{spec['region']} ({zone})" if zone else spec["region"],
            "ATTACHED": ",".join(v.attached) or "-",
            "ERROR": v.error or "-",
        }
        rows.append(row)
        json_rows.append(
            {
                "name": v.name,
                "backend": spec["backend"],
                "region": spec["region"],
                "availability_zone": zone,
                "status": v.status,
                "created": v.created_at_ms,
                "attached": list(v.attached),
                "error": v.error or None,
                "path": spec.get("path"),
            }
        )
    headers = ["NAME", "BACKEND", "STATUS", "CREATED"]
    if args.verbose:
        headers += ["REGION", "ATTACHED", "ERROR"]
    if args.json:
        print(json.dumps(json_rows, indent=2))
    else:
        print(render(headers, [[r[h] for h in headers] for r in rows]))
    return 0


def cmd_offers(args: argparse.Namespace, client: Any) -> int:
    try:
        config = load_task_file(Path(args.file))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    reply = client.call(client.stub.Offers, pb.OffersRequest(configuration_json=config.model_dump_json()))
    if args.json:
        print(json.dumps(offers_json(reply), indent=2))
        # INTERFACES.md: --json prints an array of rows; what is not a row goes to stderr.
        for note in [*reply.cloud_notes, *cloud_left_out_note(reply)]:
            print(f"dstackctl: {note}", file=sys.stderr)
    else:
        print("\n".join(offers_lines(reply)))
    return 0


def cloud_left_out_note(reply: pb.OffersResponse) -> list[str]:
    n = reply.cloud_offers_left_out
    return [f"{n} more cloud offer{'s' if n != 1 else ''} left out, not listed"] if n else []


def offers_json(reply: pb.OffersResponse) -> list[dict[str, Any]]:
    """One row per host, then one per cloud offer (`kind` tells them apart; a cloud row's `host`
    is its instance type), as INTERFACES.md has every offers row: host, chosen, reason."""
    return [
        *(
            {
                "kind": "host",
                "host": o.host,
                "chosen": o.chosen,
                "reason": o.reason,
                "arch": o.arch,
                "region": o.region or None,
                "zone": o.zone or None,
                "fleet": o.fleet or None,
                "backend": o.backend,
                "status": host_status_text(o),
                "cpu_free": o.cpu_free,
                "memory_free_bytes": o.memory_free_bytes,
                "gpus_free": o.gpus_free,
                "volumes": list(o.volumes),
            }
            for o in reply.offers
        ),
        *({"kind": "cloud", "host": o.instance_type or o.host, **cloud_offer_json(o)} for o in reply.cloud_offers),
    ]


def offers_lines(reply: pb.OffersResponse) -> list[str]:
    """The hosts part (the chosen host, then why not the others), then the cloud offers, if any."""
    lines = []
    chosen = next((o for o in reply.offers if o.chosen), None)
    if chosen is not None:
        mounts = f", mounting {', '.join(chosen.volumes)}" if chosen.volumes else ""
        lines.append(f"would run on {chosen.host} ({chosen.arch}, {chosen.zone or chosen.region or 'no zone'}){mounts}")
    else:
        lines.append(f"would stay pending: {reply.reason}")
    others = [o for o in reply.offers if not o.chosen]
    if others:
        lines.append(
            render(
                ["HOST", "ARCH", "ZONE", "FLEET", "STATUS", "WHY NOT"],
                [[o.host, o.arch, o.zone or "-", o.fleet or "-", host_status_text(o), o.reason] for o in others],
            )
        )
    cloud = cloud_offer_lines(reply)
    if cloud:
        lines += ["", *cloud]
    return lines
