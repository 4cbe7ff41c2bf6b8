"""Poll leases on SQLite, as the store contract has them.

One writer at a time: finding the due sources and leasing them is one
transaction. Store-wide locks exclude nobody: one SQLite file has one node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from feedhub.store.sqlite.connection import SQLiteBase, to_iso
from feedhub.store.sqlite.sources import due_among


class LeasesMixin(SQLiteBase):
    """Leases in the ``sources`` rows, taken under the one write lock; no-op locks."""

    async def claim_sources(self, urls: Iterable[str], now: datetime, limit: int, *,
                            node: str, lease: timedelta) -> list[str]:
        wanted = list(urls)
        if limit <= 0 or not wanted:
            return []
        async with self._errors("claim due sources"), self._transaction():
            claimed = await due_among(self._db, wanted, now, limit, unleased=True)
            await self._db.executemany(
                "UPDATE sources SET lease_owner = ?, lease_until = ? WHERE url = ?",
                [(node, to_iso(now + lease), url) for url in claimed])
        return claimed

    async def release_sources(self, urls: Iterable[str], node: str) -> None:
        async with self._errors("release leases"), self._transaction():
            await self._db.executemany(
                "UPDATE sources SET lease_owner = NULL, lease_until = NULL "
                "WHERE url = ? AND lease_owner = ?", [(url, node) for url in urls])

    async def lease_owners(self) -> set[str]:
        async with self._errors("read lease owners"), self._db.execute(
                "SELECT DISTINCT lease_owner FROM sources WHERE lease_owner IS NOT NULL") as cur:
            return {str(row[0]) for row in await cur.fetchall()}

    async def release_node(self, node: str) -> None:
        async with self._errors("release a node's leases"), self._transaction():
            await self._db.execute("UPDATE sources SET lease_owner = NULL, lease_until = NULL "
                                   "WHERE lease_owner = ?", (node,))

    @asynccontextmanager
    async def lock(self, name: str, *, wait: bool = False,
                   timeout: float | None = None) -> AsyncIterator[bool]:
        # One SQLite file has one node: there is nobody to exclude.
        yield True
