"""Storage: :func:`open_store` and the :class:`Store` interface; nothing else is public."""

from __future__ import annotations

from pathlib import Path

from feedhub.store.base import SaveResult, Store
from feedhub.store.sqlite import SQLiteStore

__all__ = ["SaveResult", "Store", "open_store"]


async def open_store(path: Path) -> Store:
    """Open the SQLite store at ``path``, creating and migrating it as needed.

    Raises:
        StoreError: it cannot be opened.
    """
    return await SQLiteStore.open(path)
