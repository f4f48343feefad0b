"""The one interface the controller persists through. SQLite is the embedded default;
a PostgreSQL implementation will sit beside it with the same methods."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from controller.logs.pages import PAGE_BYTES, PAGE_LINES, LogCursor
from controller.statuses import TaskStatus
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


class Store(ABC):
    @property
    def failing(self) -> str:
        """Why the storage refuses writes now (one sentence), or "" while writes succeed."""
        return ""

    # tokens
    @abstractmethod
    def add_token(self, token: TokenRecord) -> None: ...

    @abstractmethod
    def get_token(self, token_id: str) -> TokenRecord | None: ...

    @abstractmethod
    def list_tokens(self) -> list[TokenRecord]: ...

    @abstractmethod
    def revoke_token(self, token_id: str) -> bool: ...

    @abstractmethod
    def use_token(self, token_id: str, secret_hash: str, kind: str, now: float) -> tuple[TokenRecord | None, str]:
        """Atomically check a token and spend one use. Returns (token, "") or (None, why refused)."""

    # hosts
    @abstractmethod
    def add_host(self, host: HostRecord) -> None: ...

    @abstractmethod
    def get_host(self, host_id: str) -> HostRecord | None: ...

    @abstractmethod
    def find_host(self, name: str) -> HostRecord | None: ...

    @abstractmethod
    def list_hosts(self) -> list[HostRecord]: ...

    @abstractmethod
    def update_host(self, host: HostRecord) -> None: ...

    @abstractmethod
    def touch_host(self, host_id: str, last_seen: float) -> None: ...

    @abstractmethod
    def delete_host(self, host_id: str) -> bool: ...

    # tasks
    @abstractmethod
    def add_task(self, task: TaskRecord) -> None: ...

    @abstractmethod
    def get_task(self, task_id: str) -> TaskRecord | None: ...

    @abstractmethod
    def find_task(self, name_or_id: str) -> TaskRecord | None:
        """The task with this id, else the newest task with this name."""

    @abstractmethod
    def list_tasks(self, include_finished: bool) -> list[TaskRecord]: ...

    @abstractmethod
    def count_tasks(self, submitted_by: str, status: TaskStatus) -> int:
        """How many tasks the API token `submitted_by` submitted are in `status` now."""

    @abstractmethod
    def update_task(self, task: TaskRecord) -> None: ...

    # task event history
    @abstractmethod
    def add_task_events(self, task_id: str, entries: Sequence[TaskHistoryEntry]) -> None:
        """Appends to a task's history, keeping only its most recent entries (the store's bound)."""

    @abstractmethod
    def task_events(self, task_id: str) -> list[TaskHistoryEntry]:
        """A task's history, oldest first."""

    # logs
    @abstractmethod
    def append_logs(
        self, task_id: str, lines: Sequence[StoredLogLine], cap: int | None = None
    ) -> list[StoredLogLine]:
        """Store lines; a (stream, seq) already held, or below what the cap dropped, is ignored.
        With `cap`, the task's oldest lines are dropped once it holds more than `cap` bytes.
        Returns the lines that were new."""

    @abstractmethod
    def log_counts(self, task_id: str) -> dict[int, int]:
        """Lines held per stream: the offset an agent resumes from."""

    @abstractmethod
    def read_logs(self, task_id: str) -> list[StoredLogLine]:
        """All lines of a task, in the order the engine timestamped them."""

    @abstractmethod
    def read_log_page(
        self,
        task_id: str,
        after: LogCursor,
        offsets: Mapping[int, int] | None = None,
        max_lines: int = PAGE_LINES,
        max_bytes: int = PAGE_BYTES,
    ) -> tuple[list[StoredLogLine], bool]:
        """One bounded page of lines after the cursor (seq >= offsets[stream]), in read order,
        and whether more may follow."""

    @abstractmethod
    def tail_cursor(self, task_id: str, lines: int, since: LogCursor) -> LogCursor:
        """The cursor a read of the last `lines` lines after `since` starts from."""

    @abstractmethod
    def log_first_seqs(self, task_id: str) -> dict[int, int]:
        """Per stream, the first seq still held: lines below it were dropped by the cap."""

    @abstractmethod
    def log_bytes(self, task_id: str) -> int:
        """Bytes of log the task holds (what the cap counts)."""

    @abstractmethod
    def tasks_with_logs_ended_before(self, cutoff: float) -> list[str]:
        """Ids of tasks that finished before `cutoff` and still hold log lines (retention)."""

    @abstractmethod
    def delete_logs(self, task_id: str, batch: int = 5000) -> int:
        """Deletes up to `batch` lines of the task; returns how many."""

    # fleets and volumes
    @abstractmethod
    def put_config(self, record: ConfigRecord) -> None:
        """Insert, or update in place (keeping created_at)."""

    @abstractmethod
    def get_config(self, kind: str, name: str) -> ConfigRecord | None: ...

    @abstractmethod
    def list_configs(self, kind: str) -> list[ConfigRecord]: ...

    @abstractmethod
    def delete_config(self, kind: str, name: str) -> bool: ...

    # launched cloud instances
    @abstractmethod
    def put_instance(self, record: InstanceRecord) -> None:
        """Insert, or replace the record with the same id."""

    @abstractmethod
    def get_instance(self, instance_id: str) -> InstanceRecord | None: ...

    @abstractmethod
    def list_instances(self, include_gone: bool = False) -> list[InstanceRecord]: ...

    # where cloud volumes are attached
    @abstractmethod
    def put_attachment(self, record: AttachmentRecord) -> None:
        """Insert, or replace the record of the same (volume, host)."""

    @abstractmethod
    def get_attachment(self, volume: str, host_id: str) -> AttachmentRecord | None: ...

    @abstractmethod
    def delete_attachments(self, volume: str | None = None, host_id: str | None = None) -> int:
        """Drops the records of a volume, of a host, or of the pair when both are given; how many."""

    @abstractmethod
    def close(self) -> None: ...
