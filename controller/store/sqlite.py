"""SQLite implementation of the store: one file in the controller's data dir.

WAL mode and a busy timeout let `dstack-controller token create` write to the
same file while the server runs."""

from __future__ import annotations

import dataclasses
import hmac
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller.logs.cap import bytes_to_free, lines_to_drop
from controller.logs.pages import PAGE_BYTES, PAGE_LINES, LogCursor, take_page
from controller.statuses import TERMINAL_TASK_STATUSES, TaskStatus
from controller.store.base import Store
from controller.store.errors import StorageError, storage_error
from controller.store.records import (
    AttachmentRecord,
    ConfigRecord,
    HostRecord,
    InstanceRecord,
    StoredLogLine,
    TaskHistoryEntry,
    TaskRecord,
    TokenRecord,
)
from controller.store.sqlite_rows import (
    host_row,
    instance_of,
    task_of,
    task_row,
    token_of,
    token_row,
)
from controller.store.sqlite_schema import (
    ADDED_COLUMNS,
    ATTACHMENT_COLUMNS,
    CONFIG_COLUMNS,
    HOST_COLUMNS,
    INDEXES_ON_ADDED_COLUMNS,
    INSTANCE_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    TASK_COLUMNS,
    TASK_EVENTS_KEPT,
    TOKEN_COLUMNS,
)

log = logging.getLogger("dstack.controller.store")

# update_task's assignments, from the one column list (the first column, id, is the key).
_TASK_SETS = ", ".join(f"{c.strip()}=?" for c in TASK_COLUMNS.split(",")[1:])


@contextmanager
def _translated() -> Iterator[None]:
    """sqlite3's errors about the storage itself become StorageError (one sentence); others stay."""
    try:
        yield
    except sqlite3.Error as exc:
        found = storage_error(exc)
        if found is None:
            raise
        raise found from exc


class SQLiteStore(Store):
    def __init__(self, path: Path, create: bool = True) -> None:
        """`create=False` opens an existing database only (the token commands: a missing file
        means no controller was ever started there, and making one would hide that)."""
        self.path = path
        self._lock = threading.RLock()
        self._failing = ""  # the sentence of the last storage failure, until a write succeeds again
        with _translated():
            # One connection shared by the event loop and helper threads, serialised by a lock:
            # SQLite allows one writer at a time anyway, and statements here take microseconds.
            target, uri = (str(path), False) if create else (f"{path.resolve().as_uri()}?mode=rw", True)
            self._db = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=10.0, uri=uri)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # executescript commits on its own, so it runs outside _tx; every statement is idempotent.
            self._db.executescript(SCHEMA)
            self._add_missing_columns()
            for statement in INDEXES_ON_ADDED_COLUMNS:
                self._db.execute(statement)
        with self._tx():
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def _add_missing_columns(self) -> None:
        for added in ADDED_COLUMNS:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({added.table})")}
            if added.column in present:
                continue
            # One transaction: a crash between adding the column and filling it would leave the
            # column present and the backfill never run.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(f"ALTER TABLE {added.table} ADD COLUMN {added.column} {added.decl}")
                for statement in added.backfill:
                    self._db.execute(statement)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with _translated():
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        yield self._db
                        self._db.execute("COMMIT")
                    except BaseException:
                        # SQLite has already rolled back after SQLITE_FULL or an I/O error; a
                        # ROLLBACK then would fail and hide the real error. A failed COMMIT
                        # (busy) leaves the transaction open: end it, or the next BEGIN fails.
                        if self._db.in_transaction:
                            self._db.execute("ROLLBACK")
                        raise
            except StorageError as exc:
                self._note_failure(exc)
                raise
            self._note_success()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, _translated():
            return self._db.execute(sql, args).fetchall()

    @property
    def failing(self) -> str:
        """Why the last write failed, or "" once writes succeed (a full disk heals when space returns)."""
        return self._failing

    def _note_failure(self, exc: StorageError) -> None:
        # One line when writes start failing, not one per heartbeat: a full disk fails every write.
        if self._failing != exc.sentence:
            log.error("%s (%s: %s); writes fail until this is fixed", exc.sentence, self.path, exc.detail)
        self._failing = exc.sentence

    def _note_success(self) -> None:
        if self._failing:
            log.warning("the controller's storage accepts writes again (%s)", self.path)
        self._failing = ""

    # ------------------------------------------------------------------ tokens
    def add_token(self, token: TokenRecord) -> None:
        with self._tx() as db:
            row = token_row(token)
            db.execute(f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ({','.join('?' * len(row))})", row)

    def get_token(self, token_id: str) -> TokenRecord | None:
        rows = self._query(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,))
        return token_of(rows[0]) if rows else None

    def list_tokens(self) -> list[TokenRecord]:
        return [token_of(r) for r in self._query(f"SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at")]

    def revoke_token(self, token_id: str) -> bool:
        with self._tx() as db:
            return db.execute("UPDATE tokens SET revoked = 1 WHERE id = ?", (token_id,)).rowcount > 0

    def use_token(self, token_id: str, secret_hash: str, kind: str, now: float) -> tuple[TokenRecord | None, str]:
        with self._tx() as db:
            rows = db.execute(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,)).fetchall()
            if not rows:
                return None, f"token {token_id} does not exist"
            token = token_of(rows[0])
            if token.kind != kind or not hmac.compare_digest(token.secret_hash, secret_hash):
                article = "an" if kind == "api" else "a"
                return None, f"token {token_id} has a wrong secret or is not {article} {kind} token"
            if token.revoked:
                return None, f"token {token_id} is revoked"
            if token.expires_at is not None and token.expires_at <= now:
                return None, f"token {token_id} expired"
            if token.uses_left is not None:
                if token.uses_left <= 0:
                    return None, f"token {token_id} is used up"
                token.uses_left -= 1
                db.execute("UPDATE tokens SET uses_left = ? WHERE id = ?", (token.uses_left, token_id))
            return token, ""

    # ------------------------------------------------------------------- hosts
    def add_host(self, host: HostRecord) -> None:
        with self._tx() as db:
            db.execute(f"INSERT INTO hosts ({HOST_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", host_row(host))

    def find_host(self, name: str) -> HostRecord | None:
        rows = self._query(f"SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?", (name,))
        return HostRecord(*rows[0]) if rows else None

    def get_host(self, host_id: str) -> HostRecord | None:
        rows = self._query(f"SELECT {HOST_COLUMNS} FROM hosts WHERE id = ?", (host_id,))
        return HostRecord(*rows[0]) if rows else None

    def list_hosts(self) -> list[HostRecord]:
        return [HostRecord(*r) for r in self._query(f"SELECT {HOST_COLUMNS} FROM hosts ORDER BY name")]

    def update_host(self, host: HostRecord) -> None:
        row = host_row(host)
        with self._tx() as db:
            db.execute(
                "UPDATE hosts SET name=?, credential_hash=?, facts_json=?, arch=?, registered_at=?, last_seen=?, "
                "region=?, zone=?, fleet=?, cert_serial=?, prev_cert_serial=? WHERE id=?",
                (*row[1:], row[0]),
            )

    def touch_host(self, host_id: str, last_seen: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE hosts SET last_seen = ? WHERE id = ?", (last_seen, host_id))

    def delete_host(self, host_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM hosts WHERE id = ?", (host_id,)).rowcount > 0

    # ------------------------------------------------------------------- tasks
    def add_task(self, task: TaskRecord) -> None:
        row = task_row(task)
        with self._tx() as db:
            db.execute(f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({','.join('?' * len(row))})", row)

    def get_task(self, task_id: str) -> TaskRecord | None:
        rows = self._query(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        return task_of(rows[0]) if rows else None

    def find_task(self, name_or_id: str) -> TaskRecord | None:
        rows = self._query(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ? OR name = ? "
            "ORDER BY (id = ?) DESC, submitted_at DESC LIMIT 1",
            (name_or_id, name_or_id, name_or_id),
        )
        return task_of(rows[0]) if rows else None

    def list_tasks(self, include_finished: bool) -> list[TaskRecord]:
        sql = f"SELECT {TASK_COLUMNS} FROM tasks"
        params: tuple[str, ...] = ()
        if not include_finished:
            params = tuple(sorted(s.value for s in TERMINAL_TASK_STATUSES))
            sql += f" WHERE status NOT IN ({','.join('?' * len(params))})"
        return [task_of(r) for r in self._query(sql + " ORDER BY submitted_at", params)]

    def count_tasks(self, submitted_by: str, status: TaskStatus) -> int:
        rows = self._query(
            "SELECT COUNT(*) FROM tasks WHERE submitted_by = ? AND status = ?", (submitted_by, status.value)
        )
        return int(rows[0][0])

    def update_task(self, task: TaskRecord) -> None:
        row = task_row(task)
        with self._tx() as db:
            db.execute(
                f"UPDATE tasks SET {_TASK_SETS} WHERE id=?",
                (*row[1:], row[0]),
            )

    # ------------------------------------------------------------ task events
    def add_task_events(self, task_id: str, entries: Sequence[TaskHistoryEntry]) -> None:
        if not entries:
            return
        with self._tx() as db:
            db.executemany(
                "INSERT INTO task_events (task_id, at, kind, message) VALUES (?,?,?,?)",
                [(task_id, e.at, e.kind, e.message) for e in entries],
            )
            # Trimmed as it grows, so the bound holds without a sweeper.
            db.execute(
                "DELETE FROM task_events WHERE task_id = ? AND seq <= ("
                "SELECT seq FROM task_events WHERE task_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (task_id, task_id, TASK_EVENTS_KEPT),
            )

    def task_events(self, task_id: str) -> list[TaskHistoryEntry]:
        rows = self._query("SELECT at, kind, message FROM task_events WHERE task_id = ? ORDER BY seq", (task_id,))
        return [TaskHistoryEntry(float(at), str(kind), str(message)) for at, kind, message in rows]

    # -------------------------------------------------------------------- logs
    def append_logs(self, task_id: str, lines: Sequence[StoredLogLine], cap: int | None = None) -> list[StoredLogLine]:
        new: list[StoredLogLine] = []
        with self._tx() as db:
            firsts = self._first_seqs(db, task_id)
            for line in lines:
                if line.seq < firsts.get(line.stream, 0):
                    continue  # dropped by the cap: an agent resending it does not bring it back
                cur = db.execute(
                    "INSERT OR IGNORE INTO logs (task_id, stream, seq, ts_ns, data) VALUES (?,?,?,?,?)",
                    (task_id, line.stream, line.seq, line.ts_ns, line.data),
                )
                if cur.rowcount:
                    new.append(line)
                    db.execute(
                        "INSERT INTO log_streams (task_id, stream, next_seq, bytes) VALUES (?,?,?,?) "
                        "ON CONFLICT (task_id, stream) DO UPDATE SET "
                        "next_seq = MAX(next_seq, excluded.next_seq), bytes = bytes + excluded.bytes",
                        (task_id, line.stream, line.seq + 1, len(line.data)),
                    )
            if cap is not None and new:
                self._trim(db, task_id, cap)
        return new

    @staticmethod
    def _first_seqs(db: sqlite3.Connection, task_id: str) -> dict[int, int]:
        rows = db.execute("SELECT stream, first_seq FROM log_streams WHERE task_id = ?", (task_id,)).fetchall()
        return {int(stream): int(first) for stream, first in rows}

    def _trim(self, db: sqlite3.Connection, task_id: str, cap: int) -> None:
        """Drops the task's oldest lines once it holds more than `cap` bytes (same transaction)."""
        (total,) = db.execute(
            "SELECT COALESCE(SUM(bytes), 0) FROM log_streams WHERE task_id = ?", (task_id,)
        ).fetchone()
        need = bytes_to_free(int(total), cap)
        if not need:
            return
        freed: dict[int, int] = {}
        last_seq: dict[int, int] = {}
        last: tuple[int, int, int] | None = None
        rows = db.execute(
            "SELECT stream, seq, ts_ns, length(data) FROM logs WHERE task_id = ? ORDER BY ts_ns, stream, seq",
            (task_id,),
        )
        while need > 0 and (batch := rows.fetchmany(1000)):
            count = lines_to_drop([int(r[3]) for r in batch], need)
            for stream, seq, ts_ns, size in batch[:count]:
                freed[stream] = freed.get(stream, 0) + size
                last_seq[stream] = max(last_seq.get(stream, -1), seq)
                need -= size
                last = (ts_ns, stream, seq)
        rows.close()
        if last is None:
            return
        db.execute("DELETE FROM logs WHERE task_id = ? AND (ts_ns, stream, seq) <= (?,?,?)", (task_id, *last))
        for stream, size in freed.items():
            db.execute(
                "UPDATE log_streams SET bytes = MAX(0, bytes - ?), first_seq = MAX(first_seq, ?) "
                "WHERE task_id = ? AND stream = ?",
                (size, last_seq[stream] + 1, task_id, stream),
            )

    def log_counts(self, task_id: str) -> dict[int, int]:
        rows = self._query(
            "SELECT stream, MAX(n) FROM (SELECT stream, MAX(seq) + 1 AS n FROM logs WHERE task_id = ? GROUP BY stream "
            "UNION ALL SELECT stream, next_seq FROM log_streams WHERE task_id = ?) GROUP BY stream",
            (task_id, task_id),
        )
        return {int(stream): int(count) for stream, count in rows}

    def log_first_seqs(self, task_id: str) -> dict[int, int]:
        with self._lock, _translated():
            return self._first_seqs(self._db, task_id)

    def log_bytes(self, task_id: str) -> int:
        (total,) = self._query("SELECT COALESCE(SUM(bytes), 0) FROM log_streams WHERE task_id = ?", (task_id,))[0]
        return int(total)

    def read_logs(self, task_id: str) -> list[StoredLogLine]:
        rows = self._query(
            "SELECT stream, seq, ts_ns, data FROM logs WHERE task_id = ? ORDER BY ts_ns, stream, seq",
            (task_id,),
        )
        return [StoredLogLine(int(s), int(q), int(t), bytes(d)) for s, q, t, d in rows]

    def read_log_page(
        self,
        task_id: str,
        after: LogCursor,
        offsets: Mapping[int, int] | None = None,
        max_lines: int = PAGE_LINES,
        max_bytes: int = PAGE_BYTES,
    ) -> tuple[list[StoredLogLine], bool]:
        offsets = offsets or {}
        with self._lock, _translated():
            rows = self._db.execute(
                "SELECT stream, seq, ts_ns, data FROM logs WHERE task_id = ? AND (ts_ns, stream, seq) > (?,?,?) "
                "AND seq >= (CASE stream WHEN 1 THEN ? WHEN 2 THEN ? ELSE 0 END) ORDER BY ts_ns, stream, seq",
                (task_id, after.ts_ns, after.stream, after.seq, offsets.get(1, 0), offsets.get(2, 0)),
            )
            try:
                page, more = take_page(iter(lambda: rows.fetchone(), None), max_lines, max_bytes)
            finally:
                rows.close()
        return [StoredLogLine(int(s), int(q), int(t), bytes(d)) for s, q, t, d in page], more

    def tail_cursor(self, task_id: str, lines: int, since: LogCursor) -> LogCursor:
        """Where a read of the last `lines` lines (after `since`) starts."""
        if lines <= 0:
            return LogCursor(2**62, 0, 0)  # after every line
        rows = self._query(
            "SELECT ts_ns, stream, seq FROM logs WHERE task_id = ? AND (ts_ns, stream, seq) > (?,?,?) "
            "ORDER BY ts_ns DESC, stream DESC, seq DESC LIMIT 1 OFFSET ?",
            (task_id, since.ts_ns, since.stream, since.seq, lines - 1),
        )
        return LogCursor.before(*rows[0]) if rows else since

    def tasks_with_logs_ended_before(self, cutoff: float) -> list[str]:
        rows = self._query(
            "SELECT id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ? "
            "AND (EXISTS (SELECT 1 FROM logs WHERE task_id = tasks.id) "
            "OR EXISTS (SELECT 1 FROM log_streams WHERE task_id = tasks.id))",
            (cutoff,),
        )
        return [str(r[0]) for r in rows]

    def delete_logs(self, task_id: str, batch: int = 5000) -> int:
        """Deletes up to `batch` of a task's lines (short transactions: the loop's calls wait on the
        same lock); the task's counters go with its last line. Returns how many were deleted."""
        with self._tx() as db:
            deleted = db.execute(
                "DELETE FROM logs WHERE rowid IN (SELECT rowid FROM logs WHERE task_id = ? LIMIT ?)", (task_id, batch)
            ).rowcount
            if deleted < batch:
                db.execute("DELETE FROM log_streams WHERE task_id = ?", (task_id,))
        return int(deleted)

    # ----------------------------------------------------------------- configs
    def put_config(self, record: ConfigRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO configs (kind, name, configuration_json, created_at, updated_at, status, error) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT (kind, name) DO UPDATE SET "
                "configuration_json=excluded.configuration_json, updated_at=excluded.updated_at, "
                "status=excluded.status, error=excluded.error",
                (record.kind, record.name, record.configuration_json, record.created_at, record.updated_at,
                 record.status, record.error),
            )  # fmt: skip

    def get_config(self, kind: str, name: str) -> ConfigRecord | None:
        rows = self._query(f"SELECT {CONFIG_COLUMNS} FROM configs WHERE kind = ? AND name = ?", (kind, name))
        return ConfigRecord(*rows[0]) if rows else None

    def list_configs(self, kind: str) -> list[ConfigRecord]:
        rows = self._query(f"SELECT {CONFIG_COLUMNS} FROM configs WHERE kind = ? ORDER BY name", (kind,))
        return [ConfigRecord(*r) for r in rows]

    def delete_config(self, kind: str, name: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM configs WHERE kind = ? AND name = ?", (kind, name)).rowcount > 0

    # --------------------------------------------------------------- instances
    def put_instance(self, record: InstanceRecord) -> None:
        values = dataclasses.astuple(record)
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO instances ({INSTANCE_COLUMNS}) VALUES ({','.join('?' * len(values))})",
                values,
            )

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        rows = self._query(f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?", (instance_id,))
        return instance_of(rows[0]) if rows else None

    def list_instances(self, include_gone: bool = False) -> list[InstanceRecord]:
        rows = self._query(f"SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY created_at, id")
        found = [instance_of(r) for r in rows]
        return found if include_gone else [r for r in found if not r.gone]

    # ------------------------------------------------------------- attachments
    def put_attachment(self, record: AttachmentRecord) -> None:
        values = dataclasses.astuple(record)
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO volume_attachments ({ATTACHMENT_COLUMNS}) "
                f"VALUES ({','.join('?' * len(values))})",
                values,
            )

    def get_attachment(self, volume: str, host_id: str) -> AttachmentRecord | None:
        rows = self._query(
            f"SELECT {ATTACHMENT_COLUMNS} FROM volume_attachments WHERE volume = ? AND host_id = ?", (volume, host_id)
        )
        return AttachmentRecord(*rows[0]) if rows else None

    def delete_attachments(self, volume: str | None = None, host_id: str | None = None) -> int:
        if volume is None and host_id is None:
            raise ValueError("delete_attachments needs a volume, a host or both")
        where = " AND ".join(f"{col} = ?" for col, v in (("volume", volume), ("host_id", host_id)) if v is not None)
        args = [v for v in (volume, host_id) if v is not None]
        with self._tx() as db:
            return db.execute(f"DELETE FROM volume_attachments WHERE {where}", args).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
