"""dstackctl apply / delete / fleet / volume / offers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.cli import format as fmt
from controller.cli.errors import UsageError
from controller.cli.table import render
from controller.configs.loader import ConfigError, load_apply_file, load_task_file


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
    headers = ["NAME", "NODES", "RESOURCES", "ZONES", "STATUS"] + (["ERROR"] if args.verbose else [])
    rows = []
    for f in fleets:
        spec = json.loads(f.configuration_json)
        online = sum(1 for h in f.hosts if h.status == "online")
        rows.append(
            [
                f.name,
                f"{online}/{len(f.hosts)}",
                _resources(spec, args.verbose),
                ",".join(spec.get("availability_zones") or []) or "-",
                f.status,
            ]
            + ([f.error or "-"] if args.verbose else [])
        )
        for h in f.hosts:
            rows.append(
                [
                    f"  {h.name}",
                    "",
                    f"{fmt.cpus(h.cpu_total)}xCPU {fmt.size(h.memory_total_bytes)}",
                    _place(h, args.verbose),
                    h.status,
                ]
                + ([""] if args.verbose else [])
            )
    print(render(headers, rows))
    return 0


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
                "status": h.status,
                "backend": h.backend,
            }
            for h in f.hosts
        ],
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
        print(
            json.dumps(
                [
                    {
                        "host": o.host,
                        "chosen": o.chosen,
                        "reason": o.reason,
                        "arch": o.arch,
                        "region": o.region or None,
                        "zone": o.zone or None,
                        "fleet": o.fleet or None,
                        "backend": o.backend,
                        "status": o.status,
                        "cpu_free": o.cpu_free,
                        "memory_free_bytes": o.memory_free_bytes,
                        "gpus_free": o.gpus_free,
                        "volumes": list(o.volumes),
                    }
                    for o in reply.offers
                ],
                indent=2,
            )
        )
        return 0
    chosen = next((o for o in reply.offers if o.chosen), None)
    if chosen is not None:
        mounts = f", mounting {', '.join(chosen.volumes)}" if chosen.volumes else ""
        print(f"would run on {chosen.host} ({chosen.arch}, {chosen.zone or chosen.region or 'no zone'}){mounts}")
    else:
        print(f"would stay pending: {reply.reason}")
    others = [o for o in reply.offers if not o.chosen]
    if others:
        print(
            render(
                ["HOST", "ARCH", "ZONE", "FLEET", "STATUS", "WHY NOT"],
                [[o.host, o.arch, o.zone or "-", o.fleet or "-", o.status, o.reason] for o in others],
            )
        )
    return 0
