"""Records to SQLite rows and back (the column order is sqlite_schema's)."""

from __future__ import annotations

import json
from typing import Any

from controller.store.records import HostRecord, InstanceRecord, TaskRecord, TokenRecord


def token_row(t: TokenRecord) -> tuple[Any, ...]:
    return (
        t.id,
        t.kind,
        t.secret_hash,
        t.created_at,
        t.expires_at,
        t.uses_left,
        t.fleet,
        int(t.revoked),
        t.description,
        t.launch_id,
        t.role.value if t.role else "",
    )


def token_of(row: tuple[Any, ...]) -> TokenRecord:
    tid, kind, secret_hash, created_at, expires_at, uses_left, fleet, revoked, description, launch_id, role = row
    return TokenRecord(
        tid, kind, secret_hash, created_at, expires_at, uses_left, fleet, bool(revoked), description, launch_id, role
    )


def host_row(h: HostRecord) -> tuple[Any, ...]:
    return (
        h.id,
        h.name,
        h.credential_hash,
        h.facts_json,
        h.arch,
        h.registered_at,
        h.last_seen,
        h.region,
        h.zone,
        h.fleet,
        h.cert_serial,
        h.prev_cert_serial,
    )


def task_row(t: TaskRecord) -> tuple[Any, ...]:
    return (
        t.id,
        t.name,
        t.configuration_json,
        t.image,
        t.submitted_at,
        t.status,
        t.arch,
        t.host_id,
        t.reason,
        t.exit_code,
        t.started_at,
        t.finished_at,
        int(t.stop_requested),
        int(t.abort_requested),
        json.dumps(t.refused_hosts),
        t.refusal,
        t.provisioning_reason,
        t.attempt,
        t.retry_since,
        t.stdout_base,
        t.stderr_base,
        json.dumps(t.lost_hosts),
        t.submitted_by,
        t.submitted_by_description,
    )


def task_of(row: tuple[Any, ...]) -> TaskRecord:
    values = list(row)
    values[12] = bool(values[12])
    values[13] = bool(values[13])
    values[14] = json.loads(values[14])
    values[21] = json.loads(values[21])
    return TaskRecord(*values)


def instance_of(row: tuple[Any, ...]) -> InstanceRecord:
    record = InstanceRecord(*row)
    record.spot = bool(record.spot)
    return record
