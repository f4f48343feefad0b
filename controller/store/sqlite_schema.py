"""The SQLite store's schema: the tables as first released, the columns added since (each with
the statements that fill it from what older controllers wrote), and the column lists the queries use."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from controller.store.records import AttachmentRecord, InstanceRecord

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, secret_hash TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL, uses_left INTEGER, fleet TEXT NOT NULL DEFAULT '', revoked INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT '', launch_id TEXT NOT NULL DEFAULT '', role TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS hosts (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, credential_hash TEXT NOT NULL, facts_json TEXT NOT NULL,
    arch TEXT NOT NULL, registered_at REAL NOT NULL, last_seen REAL NOT NULL,
    region TEXT NOT NULL DEFAULT '', zone TEXT NOT NULL DEFAULT '', fleet TEXT NOT NULL DEFAULT '',
    cert_serial TEXT NOT NULL DEFAULT '', prev_cert_serial TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, configuration_json TEXT NOT NULL, image TEXT NOT NULL,
    submitted_at REAL NOT NULL, status TEXT NOT NULL, arch TEXT NOT NULL DEFAULT '',
    host_id TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', exit_code INTEGER,
    started_at REAL, finished_at REAL, stop_requested INTEGER NOT NULL DEFAULT 0,
    abort_requested INTEGER NOT NULL DEFAULT 0, refused_hosts TEXT NOT NULL DEFAULT '[]',
    refusal TEXT NOT NULL DEFAULT '', provisioning_reason TEXT NOT NULL DEFAULT '',
    attempt INTEGER NOT NULL DEFAULT 1, retry_since REAL, stdout_base INTEGER NOT NULL DEFAULT 0,
    stderr_base INTEGER NOT NULL DEFAULT 0, lost_hosts TEXT NOT NULL DEFAULT '[]',
    submitted_by TEXT NOT NULL DEFAULT '', submitted_by_description TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tasks_name ON tasks (name, submitted_at);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE TABLE IF NOT EXISTS logs (
    task_id TEXT NOT NULL, stream INTEGER NOT NULL, seq INTEGER NOT NULL, ts_ns INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (task_id, stream, seq)
);
-- Pages read in (ts_ns, stream, seq) order from a cursor: one range of this index per page.
CREATE INDEX IF NOT EXISTS logs_read ON logs (task_id, ts_ns, stream, seq);
DROP INDEX IF EXISTS logs_order;
-- Per task and stream: the first seq still held (lines below it were dropped by the cap), the next
-- seq expected and the bytes held, so the cap is kept without summing the log.
CREATE TABLE IF NOT EXISTS log_streams (
    task_id TEXT NOT NULL, stream INTEGER NOT NULL, first_seq INTEGER NOT NULL DEFAULT 0,
    next_seq INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (task_id, stream)
);
CREATE TABLE IF NOT EXISTS configs (
    kind TEXT NOT NULL, name TEXT NOT NULL, configuration_json TEXT NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, status TEXT NOT NULL DEFAULT 'active', error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY, backend TEXT NOT NULL, region TEXT NOT NULL, zone TEXT NOT NULL,
    instance_type TEXT NOT NULL, fleet TEXT NOT NULL, created_at REAL NOT NULL, spot INTEGER NOT NULL,
    price REAL, task_id TEXT NOT NULL, cloud_id TEXT NOT NULL, cloud_name TEXT NOT NULL,
    token_id TEXT NOT NULL, status TEXT NOT NULL, host_id TEXT NOT NULL, registered_at REAL,
    idle_since REAL, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volume_attachments (
    volume TEXT NOT NULL, host_id TEXT NOT NULL, volume_id TEXT NOT NULL, device_serial TEXT NOT NULL DEFAULT '',
    lun INTEGER, attached_at REAL NOT NULL, PRIMARY KEY (volume, host_id)
);
CREATE INDEX IF NOT EXISTS volume_attachments_host ON volume_attachments (host_id);
-- Added after the first release: CREATE ... IF NOT EXISTS gives an older database the table on open.
-- A task's event history (`dstackctl events`), in the order written; the last TASK_EVENTS_KEPT per task.
CREATE TABLE IF NOT EXISTS task_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS task_events_task ON task_events (task_id, seq);
"""

# A task's history is short, as `kubectl describe` and `nomad alloc status` keep theirs: a task
# that flaps between hosts or retries for hours must not grow the database without end.
TASK_EVENTS_KEPT = 50


class AddedColumn(NamedTuple):
    table: str
    column: str
    decl: str
    # Statements that fill the new column from what older controllers wrote, run once: right
    # after the column is added, never on a database that already had it.
    backfill: tuple[str, ...] = ()


# What older controllers wrote in text the new columns now hold: the pending reason with bursting's
# part spliced on ("<placement>; cloud: <provisioning>", or "cloud: <provisioning>" alone), and a
# launch's join token named by its description ("launch <id>"). Parsed here once, at the upgrade.
_OLD_CLOUD_MARKER = "; cloud: "
_SPLIT_TASK_REASONS = (
    f"UPDATE tasks SET provisioning_reason = substr(reason, instr(reason, '{_OLD_CLOUD_MARKER}') + "
    f"{len(_OLD_CLOUD_MARKER)}), reason = substr(reason, 1, instr(reason, '{_OLD_CLOUD_MARKER}') - 1) "
    f"WHERE instr(reason, '{_OLD_CLOUD_MARKER}') > 0",
    "UPDATE tasks SET provisioning_reason = substr(reason, 8), reason = '' "
    "WHERE provisioning_reason = '' AND substr(reason, 1, 7) = 'cloud: '",
)
_LAUNCH_OF_TOKENS = (
    "UPDATE tokens SET launch_id = substr(description, 8) "
    "WHERE kind = 'join' AND substr(description, 1, 7) = 'launch ' AND length(description) > 7",
)

_OLD_API_TOKENS_ARE_ADMIN = ("UPDATE tokens SET role = 'admin' WHERE kind = 'api'",)

# Columns added after a table was first released: a database made by an older controller
# gets them on open, so an upgrade keeps its hosts, tasks and logs.
ADDED_COLUMNS: tuple[AddedColumn, ...] = (
    AddedColumn("tasks", "refusal", "TEXT NOT NULL DEFAULT ''"),
    AddedColumn("hosts", "cert_serial", "TEXT NOT NULL DEFAULT ''"),
    AddedColumn("hosts", "prev_cert_serial", "TEXT NOT NULL DEFAULT ''"),
    AddedColumn("tasks", "provisioning_reason", "TEXT NOT NULL DEFAULT ''", _SPLIT_TASK_REASONS),
    AddedColumn("tokens", "launch_id", "TEXT NOT NULL DEFAULT ''", _LAUNCH_OF_TOKENS),
    # Retries: a task stored by an older controller is on its first attempt, its log unshifted.
    AddedColumn("tasks", "attempt", "INTEGER NOT NULL DEFAULT 1"),
    AddedColumn("tasks", "retry_since", "REAL"),
    AddedColumn("tasks", "stdout_base", "INTEGER NOT NULL DEFAULT 0"),
    AddedColumn("tasks", "stderr_base", "INTEGER NOT NULL DEFAULT 0"),
    AddedColumn("tasks", "lost_hosts", "TEXT NOT NULL DEFAULT '[]'"),
    # Roles: every API token an older controller issued could do everything, and scripts holding
    # one (a CI job applying fleets) must keep working after the upgrade, so they become admin.
    # The operator narrows them by issuing user tokens and revoking these (`token list` shows
    # each one's role). Join tokens have no role.
    AddedColumn("tokens", "role", "TEXT NOT NULL DEFAULT ''", _OLD_API_TOKENS_ARE_ADMIN),
    # Who submitted a task: unknown for tasks an older controller stored.
    AddedColumn("tasks", "submitted_by", "TEXT NOT NULL DEFAULT ''"),
    AddedColumn("tasks", "submitted_by_description", "TEXT NOT NULL DEFAULT ''"),
)

# Indexes on added columns: created after ADDED_COLUMNS ran, when an older database has them.
# tasks_submitter: a submit counts its token's pending tasks (the per-token cap) without a scan.
INDEXES_ON_ADDED_COLUMNS: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS tasks_submitter ON tasks (submitted_by, status)",
)

CONFIG_COLUMNS = "kind, name, configuration_json, created_at, updated_at, status, error"

TASK_COLUMNS = (
    "id, name, configuration_json, image, submitted_at, status, arch, host_id, reason, exit_code, "
    "started_at, finished_at, stop_requested, abort_requested, refused_hosts, refusal, provisioning_reason, "
    "attempt, retry_since, stdout_base, stderr_base, lost_hosts, submitted_by, submitted_by_description"
)
HOST_COLUMNS = (
    "id, name, credential_hash, facts_json, arch, registered_at, last_seen, region, zone, fleet, "
    "cert_serial, prev_cert_serial"
)
INSTANCE_COLUMNS = ", ".join(f.name for f in dataclasses.fields(InstanceRecord))
TOKEN_COLUMNS = "id, kind, secret_hash, created_at, expires_at, uses_left, fleet, revoked, description, launch_id, role"
ATTACHMENT_COLUMNS = ", ".join(f.name for f in dataclasses.fields(AttachmentRecord))
