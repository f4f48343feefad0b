"""Persistence behind one interface (Store). `open_store` picks the implementation from a URL."""

from __future__ import annotations

from pathlib import Path

from controller.store.base import Store
from controller.store.errors import FULL, StorageError, StorageFull
from controller.store.sqlite import SQLiteStore


class StoreURLError(ValueError):
    pass


def sqlite_path(database_url: str) -> Path | None:
    """The file of a `sqlite:///` URL, None for other databases."""
    return Path(database_url.removeprefix("sqlite:///")) if database_url.startswith("sqlite:///") else None


def open_store(database_url: str, create: bool = True) -> Store:
    """SQLAlchemy's spelling: `sqlite:///relative.db` or `sqlite:////abs/path.db` (the default).
    PostgreSQL arrives with multi-replica support. `create=False`: an existing database only,
    nothing is made (StorageError when there is none)."""
    path = sqlite_path(database_url)
    if path is not None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path, create=create)
    if database_url.startswith(("postgresql://", "postgres://")):
        raise StoreURLError("PostgreSQL is not supported yet; use sqlite:///PATH")
    raise StoreURLError(f"unsupported database URL {database_url!r}: expected sqlite:///PATH")


__all__ = ["FULL", "StorageError", "StorageFull", "Store", "StoreURLError", "open_store", "sqlite_path"]
