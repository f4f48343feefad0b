"""Persistence behind one interface (Store). `open_store` picks the implementation from a URL."""

from __future__ import annotations

from pathlib import Path

from controller.store.base import Store
from controller.store.sqlite import SQLiteStore


class StoreURLError(ValueError):
    pass


def open_store(database_url: str) -> Store:
    """SQLAlchemy's spelling: `sqlite:///relative.db` or `sqlite:////abs/path.db` (the default).
    PostgreSQL arrives with multi-replica support."""
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path)
    if database_url.startswith(("postgresql://", "postgres://")):
        raise StoreURLError("PostgreSQL is not supported yet; use sqlite:///PATH")
    raise StoreURLError(f"unsupported database URL {database_url!r}: expected sqlite:///PATH")


__all__ = ["Store", "StoreURLError", "open_store"]
