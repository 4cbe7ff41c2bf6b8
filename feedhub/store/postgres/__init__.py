"""The shared store: PostgreSQL through psycopg 3 (async) and a psycopg_pool pool.

Several ``feedhub run`` nodes can share one database: they claim the sources
they poll with leases and run singleton jobs under advisory locks
(:mod:`~feedhub.store.postgres.leases`).

Semantics are those of :mod:`feedhub.store.sqlite` (the contract suite in
``tests/test_store.py`` runs over both), and :class:`PostgresStore` is made of
the same parts, sharing the pool (:mod:`~feedhub.store.postgres.connection`):
:mod:`~feedhub.store.postgres.sources`, :mod:`~feedhub.store.postgres.entries`,
:mod:`~feedhub.store.postgres.documents`, :mod:`~feedhub.store.postgres.leases` and
:mod:`~feedhub.store.postgres.notifications`; the schema is
:mod:`~feedhub.store.postgres.schema`. All PostgreSQL SQL, and every psycopg import,
is in this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from feedhub.errors import StoreError
from feedhub.model import Entry, SourceState
from feedhub.store.base import SaveResult, SourceEvent
from feedhub.store.postgres.connection import Connection, lock_key
from feedhub.store.postgres.documents import DocumentsMixin
from feedhub.store.postgres.entries import EntriesMixin
from feedhub.store.postgres.leases import LeasesMixin
from feedhub.store.postgres.notifications import NotificationsMixin
from feedhub.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION
from feedhub.store.postgres.sources import SourcesMixin
from feedhub.store.tables import refuse_newer
from feedhub.store.transfer import TABLES

__all__ = ["CONNECT_TIMEOUT", "DEFAULT_POOL_SIZE", "PostgresStore", "describe"]

#: Connections a node keeps open, at most (one more is briefly taken by a held lock).
DEFAULT_POOL_SIZE = 10
#: How long opening waits for the database to answer.
CONNECT_TIMEOUT = 30.0


def describe(url: str) -> str:
    """``host:port/dbname`` of a PostgreSQL URL, without credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{host}{port}{parts.path or '/'}"


async def _configure(conn: Connection) -> None:
    # Instants come back in UTC, whatever the server's default zone.
    await conn.execute("SET TIME ZONE 'UTC'")


class PostgresStore(SourcesMixin, EntriesMixin, DocumentsMixin, LeasesMixin,
                    NotificationsMixin):
    """:class:`~feedhub.store.base.Store` on a PostgreSQL database shared by many nodes."""

    @classmethod
    async def open(cls, url: str, *, pool_size: int = DEFAULT_POOL_SIZE,
                   timeout: float = CONNECT_TIMEOUT) -> PostgresStore:
        """Connect to ``url`` (a libpq URL), creating and migrating the schema as needed.

        Raises:
            StoreError: the database does not answer, is not a feedhub store, or its
                schema is newer than this feedhub.
        """
        where = describe(url)
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url, min_size=1, max_size=max(2, pool_size), open=False, name="feedhub",
            connection_class=AsyncConnection[DictRow], configure=_configure,
            kwargs={"autocommit": True, "row_factory": dict_row}, timeout=timeout)
        try:
            await pool.open(wait=True, timeout=timeout)
        except psycopg.Error as e:
            await pool.close()
            raise StoreError(f"cannot connect to the store {where}") from e
        store = cls(pool, where)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self._transaction("migrate the schema") as conn:
            # Nodes starting together queue here; each then finds the schema up to date.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                               (lock_key("migrate"),))
            await conn.execute("CREATE TABLE IF NOT EXISTS feedhub_schema (version integer NOT NULL)")
            row = await (await conn.execute("SELECT version FROM feedhub_schema")).fetchone()
            version = int(row["version"]) if row else 0
            refuse_newer(version, SCHEMA_VERSION, self._where)
            for script in MIGRATIONS[version:]:
                await conn.execute(script)  # trusted DDL, no parameters
            if row is None:
                await conn.execute("INSERT INTO feedhub_schema VALUES (%s)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                await conn.execute("UPDATE feedhub_schema SET version = %s", (SCHEMA_VERSION,))

    # --- lifecycle ---------------------------------------------------------------

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        [row] = await self._rows("answer a ping", "SHOW transaction_read_only")
        if row["transaction_read_only"] != "off":
            raise StoreError(f"store: {self._where} is read-only (a standby?)")

    # --- poll results ---------------------------------------------------------------

    async def save_poll(self, state: SourceState, entries: Sequence[Entry],
                        seen_at: datetime, event: SourceEvent | None = None, *,
                        node: str | None = None) -> SaveResult:
        async with self._transaction(f"save the poll of {state.url}") as conn:
            await self._write_state(conn, state, event, node)
            result = (await self._write_entries(conn, state.url, entries, seen_at) if entries
                      else SaveResult(new=0, updated=0))
            await self._record_poll(conn, state, result.new, result.updated)
        return result

    # --- copying between stores ------------------------------------------------------

    async def table_counts(self) -> dict[str, int]:
        [row] = await self._rows(
            "count rows", "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {table}) AS {table}"
                                                for table in TABLES))
        return {name: int(value) for name, value in row.items()}
