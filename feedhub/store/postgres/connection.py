"""What every part of the PostgreSQL store shares: the connection pool, its
transactions, error wrapping, paging in storage order, rows sent as parallel
arrays, and advisory lock keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from feedhub.errors import StoreError
from feedhub.store.exports import Exports
from feedhub.store.rows import Rows

Connection = AsyncConnection[DictRow]


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _as_is(value: datetime | None) -> datetime | None:
    return value


#: ``timestamptz`` in and out: only the zone of what comes back is made UTC.
ROWS = Rows(read_time=_utc, write_time=_as_is)


def lock_key(name: str) -> str:
    """The advisory lock key text of a named lock (hashed to a bigint by the server)."""
    return f"feedhub:{name}"


def arrays(rows: Sequence[Sequence[Any]], width: int) -> tuple[list[Any], ...]:
    """Rows of ``width`` values as parallel arrays, for ``unnest`` (one statement for all)."""
    columns: tuple[list[Any], ...] = tuple([] for _ in range(width))
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


class PostgresBase(Exports):
    """The connection pool of a store and how its parts use it."""

    rows = ROWS

    def __init__(self, pool: AsyncConnectionPool[Connection], where: str) -> None:
        self._pool = pool
        self._where = where

    @asynccontextmanager
    async def _conn(self, doing: str) -> AsyncIterator[Connection]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as e:
            raise StoreError(f"store: cannot {doing} ({self._where})") from e

    @asynccontextmanager
    async def _transaction(self, doing: str) -> AsyncIterator[Connection]:
        async with self._conn(doing) as conn, conn.transaction():
            yield conn

    async def _rows(self, doing: str, query: str, params: Any = None, *,
                    prepare: bool | None = None) -> list[DictRow]:
        async with self._conn(doing) as conn:
            cur = await conn.execute(query, params, prepare=prepare)
            return await cur.fetchall()

    async def _page(self, doing: str, table: str, after: int,
                    limit: int) -> tuple[list[DictRow], int]:
        """Up to ``limit`` rows of ``table`` in storage order after the cursor ``after``,
        and the cursor after them (``after`` again when there are none)."""
        rows = await self._rows(doing, f"SELECT * FROM {table} WHERE id > %s ORDER BY id LIMIT %s",
                                (after, limit))
        return rows, int(rows[-1]["id"]) if rows else after

    async def _insert_arrays(self, doing: str, query: str, rows: Sequence[Sequence[Any]],
                             width: int) -> None:
        """Run ``query`` on ``rows`` as parallel arrays (:func:`arrays`), in one transaction."""
        if not rows:
            return
        async with self._transaction(doing) as conn:
            await conn.execute(query, arrays(rows, width))
