"""Reading tables out in storage order (``feedhub migrate-store``), alike on every store.

A store gives :class:`Exports` a page of a table's rows after a cursor
(:meth:`Exports._page`) and its row mapping (:attr:`Exports.rows`); the
records are made from them here. No database driver is imported here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from feedhub.store.base import EntryRecord, PollRecord, QueuedNotification, SourceEvent
from feedhub.store.rows import Row, Rows


class Exports(ABC):
    """``export_entries``, ``export_polls``, ``export_notifications`` and ``export_events``
    of a store."""

    #: How the store's rows become value objects.
    rows: ClassVar[Rows]

    @abstractmethod
    async def _page(self, doing: str, table: str, after: int,
                    limit: int) -> tuple[Sequence[Row], int]:
        """Up to ``limit`` rows of ``table`` in storage order after the cursor ``after``,
        and the cursor after them (``after`` again when there are none)."""

    async def export_entries(self, after: int, limit: int) -> tuple[list[EntryRecord], int]:
        rows, cursor = await self._page("read entries", "entries", after, limit)
        return [EntryRecord(entry=self.rows.entry(row), content_hash=row["content_hash"])
                for row in rows], cursor

    async def export_polls(self, after: int, limit: int) -> tuple[list[PollRecord], int]:
        rows, cursor = await self._page("read poll history", "polls", after, limit)
        return [self.rows.poll(row) for row in rows], cursor

    async def export_notifications(self, after: int,
                                   limit: int) -> tuple[list[QueuedNotification], int]:
        rows, cursor = await self._page("read webhook deliveries", "notifications", after, limit)
        return [self.rows.notification(row) for row in rows], cursor

    async def export_events(self, after: int, limit: int) -> tuple[list[SourceEvent], int]:
        rows, cursor = await self._page("read source events", "source_events", after, limit)
        return [self.rows.event(row) for row in rows], cursor
