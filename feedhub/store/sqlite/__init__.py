"""The embedded store: SQLite in WAL mode through aiosqlite.

Every write is a ``BEGIN IMMEDIATE … COMMIT`` transaction; poll results without
entries that arrive while one runs are committed together by the next (group
commit). A crash at any instant loses at most the polls in flight.

:class:`SQLiteStore` is made of one part per concern, sharing the connection
(:mod:`~feedhub.store.sqlite.connection`): :mod:`~feedhub.store.sqlite.sources`,
:mod:`~feedhub.store.sqlite.entries`, :mod:`~feedhub.store.sqlite.documents`,
:mod:`~feedhub.store.sqlite.leases` and
:mod:`~feedhub.store.sqlite.notifications`; the schema is
:mod:`~feedhub.store.sqlite.schema`.
aiosqlite is imported only in this package.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import aiosqlite

from feedhub.errors import StoreError
from feedhub.model import Entry, SourceState
from feedhub.store.base import SaveResult, SourceEvent
from feedhub.store.sqlite.documents import DocumentsMixin
from feedhub.store.sqlite.entries import EntriesMixin
from feedhub.store.sqlite.leases import LeasesMixin
from feedhub.store.sqlite.notifications import NotificationsMixin
from feedhub.store.sqlite.schema import MIGRATIONS, PERF_INDEXES, SCHEMA_VERSION, statements
from feedhub.store.sqlite.sources import SourcesMixin
from feedhub.store.tables import refuse_newer
from feedhub.store.transfer import TABLES

__all__ = ["SQLiteStore"]


class SQLiteStore(SourcesMixin, EntriesMixin, DocumentsMixin, LeasesMixin,
                  NotificationsMixin):
    """:class:`~feedhub.store.base.Store` on one SQLite file."""

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        """Open (creating and migrating as needed) the store at ``path``.

        Raises:
            StoreError: the file cannot be opened, is not a feedhub store, or is
                newer than this feedhub.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the store {path}") from e
        db.row_factory = sqlite3.Row
        store = cls(db, path)
        try:
            await store._setup()
        except sqlite3.Error as e:
            await db.close()
            raise StoreError(f"cannot open the store {path}") from e
        except StoreError:
            await db.close()
            raise
        return store

    async def _setup(self) -> None:
        db = self._db
        await db.execute("PRAGMA busy_timeout = 10000")
        await db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode never corrupts; a power cut may drop the last commits.
        await db.execute("PRAGMA synchronous = NORMAL")
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        refuse_newer(version, SCHEMA_VERSION, str(self.path))
        if version < SCHEMA_VERSION:
            async with self._transaction():
                for script in MIGRATIONS[version:]:
                    for statement in statements(script):
                        await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        for statement in PERF_INDEXES:
            await db.execute(statement)

    # --- lifecycle ---------------------------------------------------------------

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.wait([self._committer])  # queued saves are committed first
        async with self._write_lock:  # let a transaction in progress finish first
            await self._db.close()

    async def ping(self) -> None:
        async with self._errors("answer a ping"), self._transaction():
            pass

    # --- poll results ---------------------------------------------------------------

    async def save_poll(self, state: SourceState, entries: Sequence[Entry],
                        seen_at: datetime, event: SourceEvent | None = None, *,
                        node: str | None = None) -> SaveResult:
        if not entries:
            await self._queue_save(state, event, node)
            return SaveResult(new=0, updated=0)
        async with self._errors(f"save the poll of {state.url}"), \
                self._transaction(entries=True):
            await self._write_state(state, event, node)
            result = await self._write_entries(state.url, entries, seen_at)
            await self._record_poll(state, result.new, result.updated)
        return result

    # --- copying between stores ------------------------------------------------------

    async def table_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        async with self._errors("count rows"):
            for table in TABLES:
                async with self._db.execute(f"SELECT COUNT(*) FROM {table}") as cur:
                    row = await cur.fetchone()
                counts[table] = int(row[0]) if row else 0
        return counts
