"""Copy everything from one store to another (``feedhub migrate-store``).

Sources' state (with the fallback URL in use), entries (in storage order,
with their hashes and dates), rendered documents, poll history, source state
changes (the health feed) and queued webhook deliveries go across in batches,
each batch an idempotent upsert: an interrupted copy is resumed by running it
again.
Leases are not copied; they belong to running nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from feedhub.model import Document
from feedhub.store.base import Store

#: Tables in the order they are copied (and counted).
TABLES = ("sources", "entries", "documents", "polls", "source_events", "notifications")
#: Rendered bytes copied in one batch, at most (archive pages are large).
_DOCUMENT_BYTES = 8 << 20

Progress = Callable[[str, int], None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyReport:
    """Rows per table in each store once the copy is done."""

    source: dict[str, int]
    target: dict[str, int]

    @property
    def mismatched(self) -> list[str]:
        """Tables whose counts differ (the target had rows of its own, or rows went missing)."""
        return [t for t in TABLES if self.source.get(t, 0) != self.target.get(t, 0)]


async def copy_store(source: Store, target: Store, *, batch: int = 1000,
                     progress: Progress | None = None) -> CopyReport:
    """Copy every row of ``source`` into ``target``; ``progress(table, rows)`` after each batch.

    Raises:
        StoreError: either store failed; what was copied so far stays, and a rerun
            carries on.
    """
    def done(table: str, rows: int) -> None:
        if progress is not None and rows:
            progress(table, rows)

    states = await source.source_states()
    for i in range(0, len(states), batch):
        await target.import_sources(states[i:i + batch])
        done("sources", len(states[i:i + batch]))
    async def paged(table: str, export: Callable[[int, int], Awaitable[tuple[Sequence[T], int]]],
                    put: Callable[[Sequence[T]], Awaitable[None]]) -> None:
        """Copy a table read in storage order, ``batch`` rows at a time after a cursor."""
        cursor = 0
        while True:
            rows, cursor = await export(cursor, batch)
            if not rows:
                return
            await put(rows)
            done(table, len(rows))

    await paged("entries", source.export_entries, target.import_entries)
    # Documents one at a time: archive pages add up to far more than memory should hold.
    pending: list[Document] = []
    size = 0
    for path in await source.document_paths():
        doc = await source.document(path)
        if doc is None:
            continue
        pending.append(doc)
        size += len(doc.gzipped)
        if len(pending) >= batch or size >= _DOCUMENT_BYTES:
            await target.put_documents(pending)
            done("documents", len(pending))
            pending, size = [], 0
    if pending:
        await target.put_documents(pending)
        done("documents", len(pending))
    await paged("polls", source.export_polls, target.import_polls)
    await paged("source_events", source.export_events, target.import_events)
    await paged("notifications", source.export_notifications, target.import_notifications)
    return CopyReport(source=await source.table_counts(), target=await target.table_counts())
