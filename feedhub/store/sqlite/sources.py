"""Sources on SQLite: their state and schedule, poll history and state changes.

A poll's result without entries is queued and committed together with those
that arrive meanwhile (group commit): a warm poll's hundreds of 304s cost a few
transactions, not one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from feedhub.errors import StoreError
from feedhub.model import SourceState
from feedhub.store import sql
from feedhub.store.base import POLL_HISTORY, PollRecord, SourceEvent
from feedhub.store.rows import polled
from feedhub.store.sqlite.connection import ROWS, SQLiteBase, batches, marks, to_iso

# A source's state after a poll. Only the saving node's lease ends: after a slow poll
# whose lease ran out, another node may hold one now. (SET reads the old row.)
_SAVE_STATE = f"""
    INSERT INTO sources ({sql.names(sql.STATE_COLUMNS)}) VALUES ({marks(len(sql.STATE_COLUMNS))})
    ON CONFLICT (url) DO UPDATE SET {sql.STATE_UPDATE},
        lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END,
        lease_until = CASE WHEN lease_owner = ? THEN NULL ELSE lease_until END"""
# Imported states carry no lease: leases belong to running nodes.
_IMPORT_STATE = (f"INSERT OR REPLACE INTO sources ({sql.names(sql.STATE_COLUMNS)}) "
                 f"VALUES ({marks(len(sql.STATE_COLUMNS))})")
_INSERT_EVENT = "INSERT INTO source_events (source_url, at, kind, detail) VALUES (?,?,?,?)"
_INSERT_POLL = ("INSERT INTO polls (source_url, at, status, http_status, new, updated, error) "
                "VALUES (?,?,?,?,?,?,?)")
_TRIM_POLLS = """DELETE FROM polls WHERE source_url = ? AND id <= (
    SELECT id FROM polls WHERE source_url = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"""


@dataclass(slots=True, kw_only=True)
class _QueuedSave:
    """A save without entries waiting for the next transaction."""

    state: SourceState
    event: SourceEvent | None
    node: str | None
    #: Its result: ``None``, or what failed it (a StoreError but for cancellation or a bug).
    done: asyncio.Future[BaseException | None]


def _settle(save: _QueuedSave, error: BaseException | None) -> None:
    if not save.done.done():
        save.done.set_result(error)


def _state_row(state: SourceState, node: str | None) -> tuple[Any, ...]:
    return (*ROWS.state_values(state), node, node)


async def due_among(db: aiosqlite.Connection, urls: Sequence[str], now: datetime, limit: int, *,
                    unleased: bool = False) -> list[str]:
    """Up to ``limit`` of ``urls`` due at ``now`` (``unleased``: and leased to no node, or
    no longer), the longest overdue first."""
    free = "AND (lease_until IS NULL OR lease_until <= ?) " if unleased else ""
    due: list[tuple[str, str]] = []
    for batch, batch_marks in batches(urls):
        async with db.execute(
                f"SELECT url, next_poll_at FROM sources WHERE next_poll_at <= ? {free}"
                f"AND url IN ({batch_marks}) ORDER BY next_poll_at LIMIT ?",
                (to_iso(now), *([to_iso(now)] if unleased else []), *batch, limit)) as cur:
            due += [(row[0], row[1]) for row in await cur.fetchall()]
    return [url for url, _ in sorted(due, key=lambda d: d[1])[:limit]]


class SourcesMixin(SQLiteBase):
    """Source state, schedule, poll history and source events."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        super().__init__(db, path)
        # Saves without entries waiting for the transaction that will commit them.
        self._queued: list[_QueuedSave] = []
        self._committer: asyncio.Task[None] | None = None

    async def source_state(self, url: str) -> SourceState | None:
        async with self._errors("read a source"), self._db.execute(
                "SELECT * FROM sources WHERE url = ?", (url,)) as cur:
            row = await cur.fetchone()
        return ROWS.state(row) if row else None

    async def source_states(self) -> list[SourceState]:
        async with self._errors("read the sources"), self._db.execute(
                "SELECT * FROM sources ORDER BY url") as cur:
            return [ROWS.state(row) for row in await cur.fetchall()]

    async def ensure_sources(self, first_polls: Mapping[str, datetime]) -> int:
        async with self._errors("add sources"), self._transaction():
            before = self._db.total_changes
            await self._db.executemany(
                "INSERT INTO sources (url, next_poll_at) VALUES (?, ?) ON CONFLICT (url) DO NOTHING",
                [(url, to_iso(when)) for url, when in first_polls.items()])
            return self._db.total_changes - before

    async def due_sources(self, urls: Iterable[str], now: datetime, limit: int) -> list[str]:
        async with self._errors("find due sources"):
            return await due_among(self._db, list(urls), now, limit)

    async def reschedule(self, url: str, when: datetime) -> None:
        async with self._errors(f"reschedule {url}"), self._transaction():
            await self._db.execute("UPDATE sources SET next_poll_at = ? WHERE url = ?",
                                   (to_iso(when), url))

    async def forget_sources(self, keep: Iterable[str]) -> int:
        async with self._errors("forget sources"), self._transaction(entries=True):
            await self._db.execute("CREATE TEMP TABLE IF NOT EXISTS keep_urls (url TEXT PRIMARY KEY)")
            await self._db.execute("DELETE FROM keep_urls")
            await self._db.executemany("INSERT OR IGNORE INTO keep_urls VALUES (?)",
                                       [(url,) for url in keep])
            async with self._db.execute(
                    "DELETE FROM entries WHERE source_url NOT IN (SELECT url FROM keep_urls)") as cur:
                deleted = cur.rowcount
            await self._db.execute("DELETE FROM sources WHERE url NOT IN (SELECT url FROM keep_urls)")
            await self._db.execute("DELETE FROM polls WHERE source_url NOT IN (SELECT url FROM keep_urls)")
            await self._db.execute(
                "DELETE FROM source_events WHERE source_url NOT IN (SELECT url FROM keep_urls)")
            await self._db.execute("DELETE FROM keep_urls")
            return deleted

    # --- a poll's result, in the transaction saving it --------------------------------

    async def _write_state(self, state: SourceState, event: SourceEvent | None,
                           node: str | None) -> None:
        """Store a source's state after a poll, and the change of state it made."""
        await self._db.execute(_SAVE_STATE, _state_row(state, node))
        if event is not None:
            await self._db.execute(_INSERT_EVENT, ROWS.event_values(event))

    async def _record_poll(self, state: SourceState, new: int, updated: int) -> None:
        """Add the poll ``state`` records to its history, keeping the last POLL_HISTORY."""
        poll = polled(state, new, updated)
        if poll is None:
            return
        await self._db.execute(_INSERT_POLL, ROWS.poll_values(poll))
        await self._db.execute(_TRIM_POLLS, (state.url, state.url, POLL_HISTORY))

    async def _queue_save(self, state: SourceState, event: SourceEvent | None,
                          node: str | None) -> None:
        """Save a poll without entries together with those queued meanwhile.

        Saves arriving while a transaction runs are committed by the next one, all
        together: a warm poll's hundreds of 304s cost a few transactions of a few
        statements each, not five round trips to the database thread apiece.
        """
        save = _QueuedSave(state=state, event=event, node=node,
                           done=asyncio.get_running_loop().create_future())
        self._queued.append(save)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        # Shielded: a caller that stops waiting does not cancel the others' commit.
        error = await asyncio.shield(save.done)
        if error is not None:
            raise error

    async def _commit_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                async with self._errors("save polls"), self._transaction():
                    await self._write_saves(batch)
            except StoreError:
                # One bad save must not fail the others: each again in its own transaction.
                for save in batch:
                    try:
                        async with self._errors(f"save the poll of {save.state.url}"), \
                                self._transaction():
                            await self._write_saves([save])
                    except StoreError as e:
                        _settle(save, e)
                    else:
                        _settle(save, None)
            except BaseException as e:
                # Cancelled (the loop is closing), or a bug: every waiting save learns it.
                for save in batch + self._queued:
                    _settle(save, e)
                self._queued = []
                if not isinstance(e, Exception):
                    raise
            else:
                for save in batch:
                    _settle(save, None)

    async def _write_saves(self, batch: list[_QueuedSave]) -> None:
        """The statements of several saves without entries, each kind as one executemany."""
        await self._db.executemany(_SAVE_STATE, [_state_row(s.state, s.node) for s in batch])
        events = [s.event for s in batch if s.event is not None]
        if events:
            await self._db.executemany(_INSERT_EVENT, [ROWS.event_values(e) for e in events])
        polls = [p for p in (polled(s.state, 0, 0) for s in batch) if p is not None]
        if polls:
            await self._db.executemany(_INSERT_POLL, [ROWS.poll_values(p) for p in polls])
            urls = dict.fromkeys(p.source_url for p in polls)
            await self._db.executemany(_TRIM_POLLS, [(url, url, POLL_HISTORY) for url in urls])

    # --- history ----------------------------------------------------------------------

    async def poll_history(self, url: str, limit: int) -> list[PollRecord]:
        async with self._errors(f"read the poll history of {url}"), self._db.execute(
                "SELECT * FROM polls WHERE source_url = ? ORDER BY id DESC LIMIT ?",
                (url, max(0, min(limit, POLL_HISTORY)))) as cur:
            return [ROWS.poll(row) for row in await cur.fetchall()]

    async def source_events(self, limit: int) -> list[SourceEvent]:
        async with self._errors("read source events"), self._db.execute(
                "SELECT * FROM source_events ORDER BY id DESC LIMIT ?", (max(0, limit),)) as cur:
            return [ROWS.event(row) for row in await cur.fetchall()]

    async def last_events(self, kinds: Sequence[str]) -> dict[str, SourceEvent]:
        async with self._errors("read source events"), self._db.execute(
                f"SELECT * FROM source_events WHERE id IN (SELECT MAX(id) FROM source_events "
                f"WHERE kind IN ({marks(len(kinds))}) GROUP BY source_url)", list(kinds)) as cur:
            return {row["source_url"]: ROWS.event(row) for row in await cur.fetchall()}

    async def record_events(self, events: Sequence[SourceEvent]) -> None:
        async with self._errors("record source events"), self._transaction():
            await self._db.executemany(_INSERT_EVENT, [ROWS.event_values(e) for e in events])

    # --- copying between stores ------------------------------------------------------

    async def import_sources(self, states: Sequence[SourceState]) -> None:
        async with self._errors("import sources"), self._transaction():
            await self._db.executemany(_IMPORT_STATE, [ROWS.state_values(s) for s in states])

    async def import_polls(self, records: Sequence[PollRecord]) -> None:
        async with self._errors("import poll history"), self._transaction():
            await self._db.executemany(
                """INSERT INTO polls (source_url, at, status, http_status, new, updated, error)
                   SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS (
                       SELECT 1 FROM polls WHERE source_url = ?1 AND at = ?2 AND status = ?3)""",
                [ROWS.poll_values(p) for p in records])

    async def import_events(self, events: Sequence[SourceEvent]) -> None:
        async with self._errors("import source events"), self._transaction():
            await self._db.executemany(
                """INSERT INTO source_events (source_url, at, kind, detail)
                   SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (
                       SELECT 1 FROM source_events WHERE source_url = ?1 AND at = ?2
                           AND kind = ?3 AND detail IS ?4)""",
                [ROWS.event_values(e) for e in events])
