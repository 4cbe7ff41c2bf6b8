"""Sources on PostgreSQL: their state and schedule, poll history and state changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from feedhub.model import SourceState
from feedhub.store import sql
from feedhub.store.base import POLL_HISTORY, PollRecord, SourceEvent
from feedhub.store.postgres.connection import ROWS, Connection, PostgresBase
from feedhub.store.rows import polled

_UPSERT_STATE = f"""
    INSERT INTO sources ({sql.names(sql.STATE_COLUMNS)})
    VALUES ({",".join(["%s"] * len(sql.STATE_COLUMNS))})
    ON CONFLICT (url) DO UPDATE SET {sql.STATE_UPDATE}"""
# Imported states carry no lease: leases belong to running nodes.
_IMPORT_STATE = _UPSERT_STATE + ", lease_owner=NULL, lease_until=NULL"
# A saved poll ends the saving node's lease only: after a slow poll whose lease ran
# out, the source may be leased to another node by now. (SET reads the old row.)
_SAVE_STATE = _UPSERT_STATE + """,
        lease_owner = CASE WHEN sources.lease_owner = %s THEN NULL ELSE sources.lease_owner END,
        lease_until = CASE WHEN sources.lease_owner = %s THEN NULL ELSE sources.lease_until END"""
_INSERT_EVENT = "INSERT INTO source_events (source_url, at, kind, detail) VALUES (%s,%s,%s,%s)"
# Copied polls and events arrive as parallel arrays, kept in order; those already
# stored (same source, instant and status, or kind and detail) are left out.
_IMPORT_POLLS = """
    INSERT INTO polls (source_url, at, status, http_status, new, updated, error)
    SELECT u.source_url, u.at, u.status, u.http_status, u.new, u.updated, u.error
    FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::integer[],
                %s::integer[], %s::integer[], %s::text[])
         WITH ORDINALITY AS u(source_url, at, status, http_status, new, updated, error, n)
    WHERE NOT EXISTS (SELECT 1 FROM polls p WHERE p.source_url = u.source_url
                      AND p.at = u.at AND p.status = u.status)
    ORDER BY u.n"""
_IMPORT_EVENTS = """
    INSERT INTO source_events (source_url, at, kind, detail)
    SELECT u.source_url, u.at, u.kind, u.detail
    FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[])
         WITH ORDINALITY AS u(source_url, at, kind, detail, n)
    WHERE NOT EXISTS (SELECT 1 FROM source_events e
                      WHERE e.source_url = u.source_url AND e.at = u.at AND e.kind = u.kind
                        AND e.detail IS NOT DISTINCT FROM u.detail)
    ORDER BY u.n"""


class SourcesMixin(PostgresBase):
    """Source state, schedule, poll history and source events."""

    async def source_state(self, url: str) -> SourceState | None:
        rows = await self._rows("read a source", "SELECT * FROM sources WHERE url = %s", (url,))
        return ROWS.state(rows[0]) if rows else None

    async def source_states(self) -> list[SourceState]:
        rows = await self._rows("read the sources", 'SELECT * FROM sources ORDER BY url COLLATE "C"')
        return [ROWS.state(row) for row in rows]

    async def ensure_sources(self, first_polls: Mapping[str, datetime]) -> int:
        async with self._transaction("add sources") as conn:
            cur = await conn.execute(
                "INSERT INTO sources (url, next_poll_at) SELECT * FROM unnest(%s::text[], "
                "%s::timestamptz[]) ON CONFLICT (url) DO NOTHING",
                (list(first_polls), list(first_polls.values())))
            return max(cur.rowcount, 0)

    async def due_sources(self, urls: Iterable[str], now: datetime, limit: int) -> list[str]:
        rows = await self._rows(
            "find due sources",
            "SELECT url FROM sources WHERE next_poll_at <= %s AND url = ANY(%s) "
            "ORDER BY next_poll_at LIMIT %s", (now, list(urls), max(limit, 0)))
        return [row["url"] for row in rows]

    async def reschedule(self, url: str, when: datetime) -> None:
        async with self._transaction(f"reschedule {url}") as conn:
            await conn.execute("UPDATE sources SET next_poll_at = %s WHERE url = %s", (when, url))

    async def forget_sources(self, keep: Iterable[str]) -> int:
        urls = list(keep)
        async with self._transaction("forget sources") as conn:
            cur = await conn.execute("DELETE FROM entries WHERE NOT (source_url = ANY(%s))", (urls,))
            deleted = max(cur.rowcount, 0)
            await conn.execute("DELETE FROM sources WHERE NOT (url = ANY(%s))", (urls,))
            await conn.execute("DELETE FROM polls WHERE NOT (source_url = ANY(%s))", (urls,))
            await conn.execute("DELETE FROM source_events WHERE NOT (source_url = ANY(%s))",
                               (urls,))
        return deleted

    # --- a poll's result, in the transaction saving it --------------------------------

    @staticmethod
    async def _write_state(conn: Connection, state: SourceState, event: SourceEvent | None,
                           node: str | None) -> None:
        """Store a source's state after a poll, and the change of state it made.

        The upsert locks the source's row: saves of one source queue up here, so each
        reads the entries the one before it committed.
        """
        await conn.execute(_SAVE_STATE, (*ROWS.state_values(state), node, node))
        if event is not None:
            await conn.execute(_INSERT_EVENT, ROWS.event_values(event))

    @staticmethod
    async def _record_poll(conn: Connection, state: SourceState, new: int, updated: int) -> None:
        """Add the poll ``state`` records to its history, keeping the last POLL_HISTORY."""
        poll = polled(state, new, updated)
        if poll is None:
            return
        await conn.execute(
            "INSERT INTO polls (source_url, at, status, http_status, new, updated, error) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s)", ROWS.poll_values(poll))
        await conn.execute(
            """DELETE FROM polls WHERE source_url = %s AND id <= (
                   SELECT id FROM polls WHERE source_url = %s ORDER BY id DESC LIMIT 1 OFFSET %s)""",
            (state.url, state.url, POLL_HISTORY))

    # --- history ----------------------------------------------------------------------

    async def poll_history(self, url: str, limit: int) -> list[PollRecord]:
        rows = await self._rows(
            f"read the poll history of {url}",
            "SELECT * FROM polls WHERE source_url = %s ORDER BY id DESC LIMIT %s",
            (url, max(0, min(limit, POLL_HISTORY))))
        return [ROWS.poll(row) for row in rows]

    async def source_events(self, limit: int) -> list[SourceEvent]:
        rows = await self._rows("read source events",
                                "SELECT * FROM source_events ORDER BY id DESC LIMIT %s",
                                (max(0, limit),))
        return [ROWS.event(row) for row in rows]

    async def last_events(self, kinds: Sequence[str]) -> dict[str, SourceEvent]:
        rows = await self._rows(
            "read source events",
            "SELECT DISTINCT ON (source_url) * FROM source_events WHERE kind = ANY(%s) "
            "ORDER BY source_url, id DESC", (list(kinds),))
        return {row["source_url"]: ROWS.event(row) for row in rows}

    async def record_events(self, events: Sequence[SourceEvent]) -> None:
        async with self._transaction("record source events") as conn, conn.cursor() as cur:
            await cur.executemany(_INSERT_EVENT, [ROWS.event_values(e) for e in events])

    # --- copying between stores ------------------------------------------------------

    async def import_sources(self, states: Sequence[SourceState]) -> None:
        async with self._transaction("import sources") as conn, conn.cursor() as cur:
            await cur.executemany(_IMPORT_STATE, [ROWS.state_values(s) for s in states])

    async def import_polls(self, records: Sequence[PollRecord]) -> None:
        await self._insert_arrays("import poll history", _IMPORT_POLLS,
                                  [ROWS.poll_values(p) for p in records], 7)

    async def import_events(self, events: Sequence[SourceEvent]) -> None:
        await self._insert_arrays("import source events", _IMPORT_EVENTS,
                                  [ROWS.event_values(e) for e in events], 4)
