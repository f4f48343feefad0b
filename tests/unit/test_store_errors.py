"""The store's errors about its own storage, from real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from controller.store import FULL, StorageError, StorageFull, open_store
from controller.store.errors import storage_error
from controller.store.records import TokenRecord


def test_a_file_that_is_not_a_database_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "controller.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(StorageError) as caught:
        open_store(f"sqlite:///{path}")
    assert str(caught.value) == "the controller's database file is not a database"
    assert "not a database" in caught.value.detail


def test_opening_without_create_makes_nothing(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        open_store(f"sqlite:///{tmp_path / 'sub' / 'controller.db'}", create=False)
    assert str(caught.value) == "the controller cannot open its database file"
    assert list(tmp_path.iterdir()) == []


def test_a_bug_stays_itself(tmp_path: Path) -> None:
    """A wrong statement is not a storage failure: it is not dressed up as one."""
    db = sqlite3.connect(tmp_path / "x.db")
    with pytest.raises(sqlite3.OperationalError) as caught:
        db.execute("SELECT nope FROM nowhere")
    assert storage_error(caught.value) is None


def test_python_310_errors_without_a_code_are_read_by_their_message() -> None:
    # Python 3.10's sqlite3 sets no sqlite_errorcode; the message is SQLite's own for SQLITE_FULL.
    found = storage_error(sqlite3.OperationalError("database or disk is full"))
    assert isinstance(found, StorageFull) and str(found) == FULL


def test_a_write_after_a_failed_one_is_not_blocked_by_a_dangling_transaction(tmp_path: Path) -> None:
    """A failed statement inside a transaction rolls back, and the next transaction begins."""
    store = open_store(f"sqlite:///{tmp_path / 'controller.db'}")
    token = TokenRecord("a", "api", "h", 1.0, None, None, "", False, "")
    store.add_token(token)
    with pytest.raises(sqlite3.IntegrityError):
        store.add_token(token)  # the same id again
    assert not store._db.in_transaction  # type: ignore[attr-defined]
    assert store.revoke_token("a")
    revoked = store.get_token("a")
    assert revoked is not None and revoked.revoked
