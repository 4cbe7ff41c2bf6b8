"""Storage: :func:`open_store` and the :class:`Store` interface; nothing else is public."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from feedhub.errors import StoreError
from feedhub.store.base import SaveResult, Store
from feedhub.store.sqlite import SQLiteStore

__all__ = ["SaveResult", "Store", "open_store", "sqlite_path"]

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def sqlite_path(url: str) -> Path:
    """The file a ``sqlite:`` URL names: ``sqlite:///abs/file`` or ``sqlite:rel/file``.

    Raises:
        StoreError: it is not a ``sqlite:`` URL with a path.
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path:
        raise StoreError(f"invalid SQLite store URL {url!r}: write sqlite:///path/to/feedhub.sqlite3")
    return Path(unquote(parts.path))


async def open_store(url: str | Path, *, pool_size: int = 10) -> Store:
    """Open the store ``url`` names, creating and migrating it as needed.

    A path (or a ``sqlite:`` URL) is an SQLite file; a ``postgresql://`` URL is a
    PostgreSQL database that several nodes may share (``pool_size`` connections at most).

    Raises:
        StoreError: it cannot be opened, or the URL's scheme is not supported.
    """
    if isinstance(url, Path):
        return await SQLiteStore.open(url)
    scheme = urlsplit(url).scheme
    if scheme in _POSTGRES_SCHEMES:
        from feedhub.store.postgres import PostgresStore

        return await PostgresStore.open(url, pool_size=pool_size)
    if scheme == "sqlite":
        return await SQLiteStore.open(sqlite_path(url))
    if not scheme or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        return await SQLiteStore.open(Path(url))
    raise StoreError(f"unsupported store URL {url!r}: use postgresql://… or sqlite:///path")
