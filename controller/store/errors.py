"""What a failing database means to a person: one sentence, not a driver's exception class.

The store turns the database driver's errors about its own storage (a full disk, a read-only
mount, an I/O error, a file it cannot open) into StorageError, so the gRPC layer, the scheduler
and the command line can say what happened and keep going; anything else (a bug) stays itself."""

from __future__ import annotations

import sqlite3

FULL = "the controller's storage is full"


class StorageError(Exception):
    """The controller's own storage refused a read or write. str() is the sentence for users;
    `detail` is the driver's words, for the log."""

    def __init__(self, sentence: str, detail: str = "") -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.detail = detail


class StorageFull(StorageError):
    """No space left where the database lives: writes fail until space is freed, reads still work."""


# SQLite's primary result codes (the low byte of an extended code) for trouble with the storage
# itself, and what each means to the operator. Python 3.11 sets sqlite_errorcode on the exception;
# 3.10 does not, so the driver's message (stable since SQLite 3.x) is the fallback.
_BY_CODE: dict[int, str] = {
    13: FULL,  # SQLITE_FULL
    8: "the controller's storage is read-only",  # SQLITE_READONLY
    10: "the controller's storage failed to read or write (disk I/O error)",  # SQLITE_IOERR
    14: "the controller cannot open its database file",  # SQLITE_CANTOPEN
    11: "the controller's database file is damaged",  # SQLITE_CORRUPT
    26: "the controller's database file is not a database",  # SQLITE_NOTADB
    5: "the controller's database is locked by another process",  # SQLITE_BUSY
}
_BY_MESSAGE: tuple[tuple[str, int], ...] = (
    ("database or disk is full", 13),
    ("readonly database", 8),
    ("disk i/o error", 10),
    ("unable to open database file", 14),
    ("database disk image is malformed", 11),
    ("file is not a database", 26),
    ("database is locked", 5),
)


def storage_error(exc: sqlite3.Error) -> StorageError | None:
    """The StorageError an sqlite3 error stands for, or None when it is not about the storage."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary not in _BY_CODE:
        text = str(exc).lower()
        primary = next((c for words, c in _BY_MESSAGE if words in text), None)
    if primary is None:
        return None
    sentence = _BY_CODE[primary]
    kind = StorageFull if primary == 13 else StorageError
    return kind(sentence, str(exc))
