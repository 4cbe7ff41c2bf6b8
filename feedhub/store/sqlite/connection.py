"""What every part of the SQLite store shares: one connection, its write
transactions, error wrapping, paging in storage order, and instants as ISO 8601
text.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import aiosqlite

from feedhub.errors import StoreError
from feedhub.store.exports import Exports
from feedhub.store.rows import Rows

T = TypeVar("T")

#: Values bound in one statement, at most: under SQLite's bound-parameter limit.
IN_BATCH = 500


def to_iso(value: datetime | None) -> str | None:
    """An instant as stored: UTC ISO 8601 text with microseconds (sorts as it compares)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value else None


def from_iso(value: str | None) -> datetime | None:
    """A stored instant (or NULL) back as a datetime."""
    return datetime.fromisoformat(value) if value else None


ROWS = Rows(read_time=from_iso, write_time=to_iso)


def marks(count: int) -> str:
    """``?,?,…``: ``count`` placeholders."""
    return ",".join("?" * count)


def batches(items: Sequence[T]) -> Iterator[tuple[Sequence[T], str]]:
    """``items`` in slices of at most :data:`IN_BATCH`, each with its placeholders."""
    for i in range(0, len(items), IN_BATCH):
        batch = items[i:i + IN_BATCH]
        yield batch, marks(len(batch))


class SQLiteBase(Exports):
    """The connection of a store and how its parts use it."""

    rows = ROWS

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        # One connection, many tasks: transactions must not interleave.
        self._write_lock = asyncio.Lock()
        # Transactions on this connection that wrote entries (committed or not): the
        # archive id lists depend on nothing else written here. Documents in particular
        # are stored between reads of the same archive while it is rendered.
        self._entry_writes = 0

    @asynccontextmanager
    async def _transaction(self, *, entries: bool = False) -> AsyncIterator[None]:
        """One write transaction; ``entries``: it may change the entries table."""
        async with self._write_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            else:
                await self._db.execute("COMMIT")
            finally:
                # After the end: an archive read during the transaction is not kept.
                self._entry_writes += entries

    @asynccontextmanager
    async def _errors(self, doing: str) -> AsyncIterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise StoreError(f"store: cannot {doing} ({self.path})") from e

    async def _page(self, doing: str, table: str, after: int,
                    limit: int) -> tuple[list[sqlite3.Row], int]:
        """Up to ``limit`` rows of ``table`` in storage order after the cursor ``after``,
        and the cursor after them (``after`` again when there are none)."""
        async with self._errors(doing), self._db.execute(
                f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (after, limit)) as cur:
            rows = list(await cur.fetchall())
        return rows, int(rows[-1]["id"]) if rows else after
