"""Poll leases and store-wide locks on PostgreSQL, for many nodes sharing one database.

Each node claims the sources it polls with a lease (``FOR UPDATE SKIP LOCKED``),
so no source is polled twice and a dead node's claims lapse; singleton jobs
hold advisory locks, which PostgreSQL releases by itself when the holder's
session ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import psycopg

from feedhub.store.postgres.connection import Connection, PostgresBase, lock_key


class LeasesMixin(PostgresBase):
    """Leases taken row by row without waiting (``SKIP LOCKED``); session advisory locks."""

    async def claim_sources(self, urls: Iterable[str], now: datetime, limit: int, *,
                            node: str, lease: timedelta) -> list[str]:
        wanted = list(urls)
        if limit <= 0 or not wanted:
            return []
        # SKIP LOCKED: rows another node is claiming right now are passed over, not waited
        # for; a row claimed and committed meanwhile fails the lease test on re-check.
        rows = await self._rows(
            "claim due sources",
            """UPDATE sources SET lease_owner = %(node)s, lease_until = %(until)s
               WHERE url IN (
                   SELECT url FROM sources
                   WHERE next_poll_at <= %(now)s
                     AND (lease_until IS NULL OR lease_until <= %(now)s)
                     AND url = ANY(%(urls)s)
                   ORDER BY next_poll_at LIMIT %(limit)s
                   FOR UPDATE SKIP LOCKED)
               RETURNING url, next_poll_at""",
            {"node": node, "until": now + lease, "now": now, "urls": wanted, "limit": limit})
        return [row["url"] for row in sorted(rows, key=lambda r: (r["next_poll_at"], r["url"]))]

    async def release_sources(self, urls: Iterable[str], node: str) -> None:
        async with self._transaction("release leases") as conn:
            await conn.execute(
                "UPDATE sources SET lease_owner = NULL, lease_until = NULL "
                "WHERE url = ANY(%s) AND lease_owner = %s", (list(urls), node))

    async def lease_owners(self) -> set[str]:
        rows = await self._rows("read lease owners", "SELECT DISTINCT lease_owner AS owner "
                                "FROM sources WHERE lease_owner IS NOT NULL")
        return {str(row["owner"]) for row in rows}

    async def release_node(self, node: str) -> None:
        async with self._transaction("release a node's leases") as conn:
            await conn.execute("UPDATE sources SET lease_owner = NULL, lease_until = NULL "
                               "WHERE lease_owner = %s", (node,))

    @asynccontextmanager
    async def lock(self, name: str, *, wait: bool = False,
                   timeout: float | None = None) -> AsyncIterator[bool]:
        # A session-level advisory lock on a connection kept for the whole job: if this
        # node dies, its session ends and PostgreSQL releases the lock.
        async with self._conn(f"take the lock {name}") as conn:
            if wait:
                held = await _wait_for_lock(conn, name, timeout)
            else:
                cur = await conn.execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS held",
                    (lock_key(name),))
                row = await cur.fetchone()
                held = bool(row and row["held"])
            try:
                yield held
            finally:
                if held:
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                                       (lock_key(name),))


async def _wait_for_lock(conn: Connection, name: str, timeout: float | None) -> bool:
    """Take an advisory lock, waiting at most ``timeout`` seconds (``None``: for ever)."""
    if timeout is None:
        await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key(name),))
        return True
    # The server's lock_timeout rather than polling pg_try_advisory_lock: the wait keeps
    # its place in the lock's queue, as a plain wait does.
    await conn.execute("SELECT set_config('lock_timeout', %s, false)",
                       (f"{max(1, round(timeout * 1000))}ms",))
    try:
        await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key(name),))
        return True
    except psycopg.errors.LockNotAvailable:
        return False
    finally:
        await conn.execute("RESET lock_timeout")
