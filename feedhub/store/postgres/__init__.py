"""The shared store: PostgreSQL through psycopg 3 (async) and a psycopg_pool pool.

Several ``feedhub run`` nodes can share one database. Each claims the sources
it polls with a lease (``FOR UPDATE SKIP LOCKED``), so no source is polled
twice and a dead node's claims lapse; singleton jobs hold advisory locks,
which PostgreSQL releases by itself when the holder's session ends.

Semantics are those of :mod:`feedhub.store.sqlite` (the contract suite in
``tests/test_store.py`` runs over both). All PostgreSQL SQL lives here and in
:mod:`feedhub.store.postgres.schema`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from feedhub.errors import StoreError
from feedhub.model import Document, Entry, SourceState, StoredEntry
from feedhub.search import Query
from feedhub.store.base import POLL_HISTORY, EntryRecord, PollRecord, SaveResult, SourceEvent
from feedhub.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION
from feedhub.store.rows import document_from, entry_from, one_per_link, poll_from, state_from
from feedhub.store.tables import refuse_newer

Connection = AsyncConnection[DictRow]

#: Connections a node keeps open, at most (one more is briefly taken by a held lock).
DEFAULT_POOL_SIZE = 10
#: How long opening waits for the database to answer.
CONNECT_TIMEOUT = 30.0

# The first-seen copy of an article reached through several sources wins (as in SQLite):
# an entry is shown unless one of the chosen sources has the same canonical link earlier.
_PICK_ENTRIES = """
    WITH picked AS (
        SELECT e.id, e.published FROM entries e
        WHERE e.source_url = ANY(%(urls)s)
          AND NOT EXISTS (
              SELECT 1 FROM entries o
              WHERE o.canonical_link = e.canonical_link
                AND (o.first_seen < e.first_seen OR (o.first_seen = e.first_seen AND o.id < e.id))
                AND o.source_url = ANY(%(urls)s))
        ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s)
    SELECT entries.* FROM picked JOIN entries ON entries.id = picked.id ORDER BY {outer}"""
_LATEST_SQL = _PICK_ENTRIES.format(order="e.published DESC, e.id DESC",
                                   outer="picked.published DESC, picked.id DESC")
_ARCHIVE_SQL = _PICK_ENTRIES.format(order="e.id", outer="picked.id")
# Both are planned on every call (never as prepared statements): a generic plan knows
# neither how many sources are chosen nor the limit, and sorts every chosen entry where
# the plan for the actual values walks entries_newest and stops at the limit (3-4x
# slower for all sources; more while the table grows).

_SOURCE_COLUMNS = ("url, etag, last_modified, body_hash, feed_title, feed_link, last_poll_at, "
                   "last_success_at, last_status, http_status, error, failures, next_poll_at, "
                   "retry_after, moved_to, active_url")
_UPSERT_SOURCE_STATE = f"""
    INSERT INTO sources ({_SOURCE_COLUMNS})
    VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)
    ON CONFLICT (url) DO UPDATE SET
        etag=excluded.etag, last_modified=excluded.last_modified, body_hash=excluded.body_hash,
        feed_title=excluded.feed_title, feed_link=excluded.feed_link,
        last_poll_at=excluded.last_poll_at, last_success_at=excluded.last_success_at,
        last_status=excluded.last_status, http_status=excluded.http_status, error=excluded.error,
        failures=excluded.failures, next_poll_at=excluded.next_poll_at,
        retry_after=excluded.retry_after, moved_to=excluded.moved_to,
        active_url=excluded.active_url"""
# Imported states carry no lease: leases belong to running nodes.
_IMPORT_SOURCE = _UPSERT_SOURCE_STATE + ", lease_owner=NULL, lease_until=NULL"
# A saved poll ends the saving node's lease only: after a slow poll whose lease ran
# out, the source may be leased to another node by now. (SET reads the old row.)
_SAVE_SOURCE = _UPSERT_SOURCE_STATE + """,
        lease_owner = CASE WHEN sources.lease_owner = %s THEN NULL ELSE sources.lease_owner END,
        lease_until = CASE WHEN sources.lease_owner = %s THEN NULL ELSE sources.lease_until END"""
# Entries go in as one statement of parallel arrays, in order (storage order = id order).
_ENTRY_COLUMNS = ("source_url, key, guid, link, canonical_link, title, content_html, published, "
                  "first_seen, updated, authors, categories, enclosures, content_hash")
_INSERT_ENTRIES = f"""
    INSERT INTO entries ({_ENTRY_COLUMNS})
    SELECT {_ENTRY_COLUMNS} FROM unnest(
        %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
        %s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::text[], %s::text[],
        %s::text[], %s::text[]) WITH ORDINALITY AS u({_ENTRY_COLUMNS}, n)
    ORDER BY n"""


def _key(name: str) -> str:
    """The advisory lock key text of a named lock (hashed to a bigint by the server)."""
    return f"feedhub:{name}"


def describe(url: str) -> str:
    """``host:port/dbname`` of a PostgreSQL URL, without credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{host}{port}{parts.path or '/'}"


async def _configure(conn: Connection) -> None:
    # Instants come back in UTC, whatever the server's default zone.
    await conn.execute("SET TIME ZONE 'UTC'")


class PostgresStore:
    """:class:`~feedhub.store.base.Store` on a PostgreSQL database shared by many nodes."""

    def __init__(self, pool: AsyncConnectionPool[Connection], where: str) -> None:
        self._pool = pool
        self._where = where

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
        async with self._conn("migrate the schema") as conn, conn.transaction():
            # Nodes starting together queue here; each then finds the schema up to date.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                               (_key("migrate"),))
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

    # --- lifecycle ---------------------------------------------------------------

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        [row] = await self._rows("answer a ping", "SHOW transaction_read_only")
        if row["transaction_read_only"] != "off":
            raise StoreError(f"store: {self._where} is read-only (a standby?)")

    # --- sources -----------------------------------------------------------------

    async def source_state(self, url: str) -> SourceState | None:
        rows = await self._rows("read a source", "SELECT * FROM sources WHERE url = %s", (url,))
        return _state(rows[0]) if rows else None

    async def source_states(self) -> list[SourceState]:
        rows = await self._rows("read the sources", 'SELECT * FROM sources ORDER BY url COLLATE "C"')
        return [_state(row) for row in rows]

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

    # --- poll results ---------------------------------------------------------------

    async def save_poll(self, state: SourceState, entries: Sequence[Entry],
                        seen_at: datetime, event: SourceEvent | None = None, *,
                        node: str | None = None) -> SaveResult:
        async with self._transaction(f"save the poll of {state.url}") as conn:
            # The upsert locks the source's row: saves of one source queue up here, so
            # each reads the entries the one before it committed.
            await conn.execute(_SAVE_SOURCE, (*_source_row(state), node, node))
            if event is not None:
                await conn.execute(
                    "INSERT INTO source_events (source_url, at, kind, detail) VALUES (%s,%s,%s,%s)",
                    (event.source_url, event.at, event.kind, event.detail))
            if not entries:
                await self._record_poll(conn, state, 0, 0)
                return SaveResult(new=0, updated=0)
            cur = await conn.execute(
                "SELECT key, content_hash FROM entries WHERE source_url = %s AND key = ANY(%s)",
                (state.url, [e.key for e in entries]))
            known = {row["key"]: row["content_hash"] for row in await cur.fetchall()}
            fresh = [e for e in entries if e.key not in known]
            changed = [e for e in entries if e.key in known and known[e.key] != e.content_hash]
            if fresh:
                await conn.execute(_INSERT_ENTRIES, _entry_columns(
                    [(e, min(e.published, seen_at), seen_at, min(e.published, seen_at), e.content_hash)
                     for e in fresh]))
            if changed:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        """UPDATE entries SET guid=%s, link=%s, canonical_link=%s, title=%s,
                               content_html=%s, published=LEAST(%s, first_seen), updated=%s,
                               authors=%s, categories=%s, enclosures=%s, content_hash=%s
                           WHERE source_url=%s AND key=%s""",
                        [(e.guid, e.link, e.canonical_link, e.title, e.content_html, e.published,
                          seen_at, *_lists(e), e.content_hash, e.source_url, e.key)
                         for e in changed])
            await self._record_poll(conn, state, len(fresh), len(changed))
            return SaveResult(new=len(fresh), updated=len(changed))

    @staticmethod
    async def _record_poll(conn: Connection, state: SourceState, new: int, updated: int) -> None:
        if state.last_poll_at is None or state.last_status is None:
            return
        await conn.execute(
            "INSERT INTO polls (source_url, at, status, http_status, new, updated, error) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s)",
            (state.url, state.last_poll_at, state.last_status, state.http_status, new, updated,
             state.error))
        await conn.execute(
            """DELETE FROM polls WHERE source_url = %s AND id <= (
                   SELECT id FROM polls WHERE source_url = %s ORDER BY id DESC LIMIT 1 OFFSET %s)""",
            (state.url, state.url, POLL_HISTORY))

    async def source_events(self, limit: int) -> list[SourceEvent]:
        rows = await self._rows("read source events",
                                "SELECT * FROM source_events ORDER BY id DESC LIMIT %s",
                                (max(0, limit),))
        return [_event(row) for row in rows]

    async def last_events(self, kinds: Sequence[str]) -> dict[str, SourceEvent]:
        rows = await self._rows(
            "read source events",
            "SELECT DISTINCT ON (source_url) * FROM source_events WHERE kind = ANY(%s) "
            "ORDER BY source_url, id DESC", (list(kinds),))
        return {row["source_url"]: _event(row) for row in rows}

    async def record_events(self, events: Sequence[SourceEvent]) -> None:
        async with self._conn("record source events") as conn, conn.transaction(), \
                conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO source_events (source_url, at, kind, detail) VALUES (%s,%s,%s,%s)",
                [(e.source_url, e.at, e.kind, e.detail) for e in events])

    async def entry_times(self, per_source: int) -> dict[str, list[tuple[datetime, datetime]]]:
        rows = await self._rows(
            "read entry dates",
            """SELECT source_url, published, first_seen FROM (
                   SELECT source_url, published, first_seen, ROW_NUMBER() OVER (
                       PARTITION BY source_url ORDER BY published DESC, id DESC) AS n
                   FROM entries) ranked
               WHERE n <= %s ORDER BY source_url, published DESC""", (per_source,))
        times: dict[str, list[tuple[datetime, datetime]]] = {}
        for row in rows:
            times.setdefault(row["source_url"], []).append(
                (_must_utc(row["published"]), _must_utc(row["first_seen"])))
        return times

    async def poll_history(self, url: str, limit: int) -> list[PollRecord]:
        rows = await self._rows(
            f"read the poll history of {url}",
            "SELECT * FROM polls WHERE source_url = %s ORDER BY id DESC LIMIT %s",
            (url, max(0, min(limit, POLL_HISTORY))))
        return [_poll(row) for row in rows]

    # --- entries -------------------------------------------------------------------

    async def latest_entries(self, source_urls: Iterable[str], limit: int,
                             offset: int = 0) -> list[StoredEntry]:
        urls = list(source_urls)
        if not urls or limit <= 0:
            return []
        rows = await self._rows("read entries", _LATEST_SQL,
                                {"urls": urls, "limit": limit, "offset": offset}, prepare=False)
        return [_entry(row) for row in rows]

    async def archive_entries(self, source_urls: Iterable[str], limit: int,
                              offset: int = 0) -> list[StoredEntry]:
        urls = list(source_urls)
        if not urls or limit <= 0:
            return []
        rows = await self._rows("read archived entries", _ARCHIVE_SQL,
                                {"urls": urls, "limit": limit, "offset": offset}, prepare=False)
        return [_entry(row) for row in rows]

    async def search(self, query: Query, source_urls: Iterable[str], *,
                     since: datetime | None = None, limit: int = 50) -> list[StoredEntry]:
        urls = list(source_urls)
        if not urls or limit <= 0:
            return []
        # No index: PostgreSQL's text search has no Chinese parser built in, so words are
        # found by scanning titles and tag-stripped content (fine for ~100,000 entries).
        params: dict[str, object] = {"urls": urls, "since": since, "scan": limit * 4}

        def found(word: str) -> str:
            name = f"t{len(params)}"
            params[name] = word.lower()
            return (f"(strpos(lower(e.title), %({name})s) > 0 OR strpos(lower("
                    f"regexp_replace(e.content_html, '<[^>]*>', ' ', 'g')), %({name})s) > 0)")

        where = query.where(found)
        sql = ("SELECT * FROM entries e WHERE e.source_url = ANY(%(urls)s)"
               f"{' AND e.published >= %(since)s' if since else ''} AND ({where}) "
               "ORDER BY e.published DESC, e.id DESC LIMIT %(scan)s")
        rows = await self._rows("search entries", sql, params)
        return one_per_link((_entry(row) for row in rows), limit)

    async def count_entries(self, source_urls: Iterable[str]) -> int:
        urls = list(source_urls)
        if not urls:
            return 0
        # One per canonical link; an entry without one is its own (source_url, key).
        [row] = await self._rows(
            "count entries",
            "SELECT COUNT(DISTINCT canonical_link) + COUNT(*) - COUNT(canonical_link) AS n "
            "FROM entries WHERE source_url = ANY(%s)", (urls,))
        return int(row["n"])

    async def entry_counts(self) -> dict[str, int]:
        rows = await self._rows("count entries",
                                "SELECT source_url, COUNT(*) AS n FROM entries GROUP BY source_url")
        return {row["source_url"]: int(row["n"]) for row in rows}

    async def new_entries_since(self, since: datetime) -> dict[str, int]:
        rows = await self._rows(
            "count new entries",
            "SELECT source_url, COUNT(*) AS n FROM entries WHERE first_seen >= %s "
            "GROUP BY source_url", (since,))
        return {row["source_url"]: int(row["n"]) for row in rows}

    async def prune(self, *, older_than: datetime | None, keep_per_source: int | None) -> int:
        deleted = 0
        async with self._transaction("prune entries") as conn:
            if older_than is not None:
                cur = await conn.execute("DELETE FROM entries WHERE published < %s", (older_than,))
                deleted += max(cur.rowcount, 0)
            if keep_per_source is not None:
                cur = await conn.execute(
                    """DELETE FROM entries WHERE id IN (
                           SELECT id FROM (
                               SELECT id, ROW_NUMBER() OVER (
                                   PARTITION BY source_url ORDER BY published DESC, id DESC) AS n
                               FROM entries) ranked
                           WHERE n > %s)""", (keep_per_source,))
                deleted += max(cur.rowcount, 0)
        return deleted

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

    # --- documents -------------------------------------------------------------------

    async def put_documents(self, documents: Iterable[Document]) -> list[Document]:
        docs = list(documents)
        changed: list[Document] = []
        if not docs:
            return changed
        async with self._transaction("store rendered documents") as conn:
            # Bodies already stored (same ETag) are not even sent: most of a
            # republish is unchanged pages.
            cur = await conn.execute("SELECT path, etag FROM documents WHERE path = ANY(%s)",
                                     ([doc.path for doc in docs],))
            known = {row["path"]: row["etag"] for row in await cur.fetchall()}
            for doc in docs:
                if known.get(doc.path) == doc.etag:
                    continue
                # The row lock of the upsert orders concurrent writers; a node whose bytes
                # are already stored (by another node) writes nothing and reports nothing.
                cur = await conn.execute(
                    """INSERT INTO documents (path, body, content_type, etag, modified)
                       VALUES (%s,%s,%s,%s,%s)
                       ON CONFLICT (path) DO UPDATE SET body=excluded.body,
                           content_type=excluded.content_type, etag=excluded.etag,
                           modified=excluded.modified
                       WHERE documents.etag <> excluded.etag
                       RETURNING path""",
                    (doc.path, doc.body, doc.content_type, doc.etag, doc.modified))
                if await cur.fetchone() is not None:
                    changed.append(doc)
        return changed

    async def document(self, path: str) -> Document | None:
        rows = await self._rows("read a document", "SELECT * FROM documents WHERE path = %s",
                                (path,))
        return _document(rows[0]) if rows else None

    async def document_paths(self, prefix: str = "") -> list[str]:
        rows = await self._rows("list documents",
                                'SELECT path FROM documents WHERE left(path, %s) = %s '
                                'ORDER BY path COLLATE "C"', (len(prefix), prefix))
        return [row["path"] for row in rows]

    async def documents(self) -> list[Document]:
        rows = await self._rows("read documents", 'SELECT * FROM documents ORDER BY path COLLATE "C"')
        return [_document(row) for row in rows]

    # --- many nodes -------------------------------------------------------------------

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
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS held", (_key(name),))
                row = await cur.fetchone()
                held = bool(row and row["held"])
            try:
                yield held
            finally:
                if held:
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                                       (_key(name),))

    # --- copying between stores ------------------------------------------------------

    async def table_counts(self) -> dict[str, int]:
        [row] = await self._rows(
            "count rows",
            "SELECT (SELECT COUNT(*) FROM sources) AS sources, (SELECT COUNT(*) FROM entries) "
            "AS entries, (SELECT COUNT(*) FROM documents) AS documents, "
            "(SELECT COUNT(*) FROM polls) AS polls, "
            "(SELECT COUNT(*) FROM source_events) AS source_events")
        return {name: int(value) for name, value in row.items()}

    async def export_entries(self, after: int, limit: int) -> tuple[list[EntryRecord], int]:
        rows = await self._rows("read entries",
                                "SELECT * FROM entries WHERE id > %s ORDER BY id LIMIT %s",
                                (after, limit))
        records = [EntryRecord(entry=_entry(row), content_hash=row["content_hash"]) for row in rows]
        return records, int(rows[-1]["id"]) if rows else after

    async def import_entries(self, records: Sequence[EntryRecord]) -> None:
        if not records:
            return
        columns = _entry_columns([(r.entry, r.entry.published, r.entry.first_seen,
                                   r.entry.updated, r.content_hash) for r in records])
        async with self._transaction("import entries") as conn:
            await conn.execute(
                _INSERT_ENTRIES + """
                ON CONFLICT (source_url, key) DO UPDATE SET guid=excluded.guid,
                    link=excluded.link, canonical_link=excluded.canonical_link,
                    title=excluded.title, content_html=excluded.content_html,
                    published=excluded.published, first_seen=excluded.first_seen,
                    updated=excluded.updated, authors=excluded.authors,
                    categories=excluded.categories, enclosures=excluded.enclosures,
                    content_hash=excluded.content_hash""", columns)

    async def import_sources(self, states: Sequence[SourceState]) -> None:
        async with self._transaction("import sources") as conn, conn.cursor() as cur:
            await cur.executemany(_IMPORT_SOURCE, [_source_row(s) for s in states])

    async def export_polls(self, after: int, limit: int) -> tuple[list[PollRecord], int]:
        rows = await self._rows("read poll history",
                                "SELECT * FROM polls WHERE id > %s ORDER BY id LIMIT %s",
                                (after, limit))
        return [_poll(row) for row in rows], int(rows[-1]["id"]) if rows else after

    async def import_polls(self, records: Sequence[PollRecord]) -> None:
        if not records:
            return
        async with self._transaction("import poll history") as conn:
            await conn.execute(
                """INSERT INTO polls (source_url, at, status, http_status, new, updated, error)
                   SELECT u.source_url, u.at, u.status, u.http_status, u.new, u.updated, u.error
                   FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::integer[],
                               %s::integer[], %s::integer[], %s::text[])
                        WITH ORDINALITY AS u(source_url, at, status, http_status, new, updated,
                                             error, n)
                   WHERE NOT EXISTS (SELECT 1 FROM polls p WHERE p.source_url = u.source_url
                                     AND p.at = u.at AND p.status = u.status)
                   ORDER BY u.n""",
                ([p.source_url for p in records], [p.at for p in records],
                 [p.status for p in records], [p.http_status for p in records],
                 [p.new for p in records], [p.updated for p in records],
                 [p.error for p in records]))

    async def export_events(self, after: int, limit: int) -> tuple[list[SourceEvent], int]:
        rows = await self._rows("read source events",
                                "SELECT * FROM source_events WHERE id > %s ORDER BY id LIMIT %s",
                                (after, limit))
        return [_event(row) for row in rows], int(rows[-1]["id"]) if rows else after

    async def import_events(self, events: Sequence[SourceEvent]) -> None:
        if not events:
            return
        async with self._transaction("import source events") as conn:
            await conn.execute(
                """INSERT INTO source_events (source_url, at, kind, detail)
                   SELECT u.source_url, u.at, u.kind, u.detail
                   FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[])
                        WITH ORDINALITY AS u(source_url, at, kind, detail, n)
                   WHERE NOT EXISTS (SELECT 1 FROM source_events e
                                     WHERE e.source_url = u.source_url AND e.at = u.at
                                       AND e.kind = u.kind
                                       AND e.detail IS NOT DISTINCT FROM u.detail)
                   ORDER BY u.n""",
                ([e.source_url for e in events], [e.at for e in events],
                 [e.kind for e in events], [e.detail for e in events]))


async def _wait_for_lock(conn: Connection, name: str, timeout: float | None) -> bool:
    """Take an advisory lock, waiting at most ``timeout`` seconds (``None``: for ever)."""
    if timeout is None:
        await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (_key(name),))
        return True
    # The server's lock_timeout rather than polling pg_try_advisory_lock: the wait keeps
    # its place in the lock's queue, as a plain wait does.
    await conn.execute("SELECT set_config('lock_timeout', %s, false)",
                       (f"{max(1, round(timeout * 1000))}ms",))
    try:
        await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (_key(name),))
        return True
    except psycopg.errors.LockNotAvailable:
        return False
    finally:
        await conn.execute("RESET lock_timeout")


def _source_row(s: SourceState) -> tuple[Any, ...]:
    return (s.url, s.etag, s.last_modified, s.body_hash, s.feed_title, s.feed_link, s.last_poll_at,
            s.last_success_at, s.last_status, s.http_status, s.error, s.failures, s.next_poll_at,
            s.retry_after, s.moved_to, s.active_url)


def _entry_columns(rows: Sequence[tuple[Entry | StoredEntry, datetime, datetime, datetime, str]]
                   ) -> tuple[list[Any], ...]:
    """Parallel arrays for :data:`_INSERT_ENTRIES`: (entry, published, first_seen, updated, hash)."""
    columns: tuple[list[Any], ...] = tuple([] for _ in range(14))
    for e, published, first_seen, updated, content_hash in rows:
        for column, value in zip(columns, (
                e.source_url, e.key, e.guid, e.link, e.canonical_link, e.title, e.content_html,
                published, first_seen, updated, *_lists(e), content_hash), strict=True):
            column.append(value)
    return columns


def _lists(e: Entry | StoredEntry) -> tuple[str, str, str]:
    return (json.dumps(list(e.authors), ensure_ascii=False),
            json.dumps(list(e.categories), ensure_ascii=False),
            json.dumps([{"url": x.url, "type": x.type, "length": x.length} for x in e.enclosures],
                       ensure_ascii=False))


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _must_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _state(row: DictRow) -> SourceState:
    return state_from(row, _utc)


def _entry(row: DictRow) -> StoredEntry:
    return entry_from(row, _utc)


def _document(row: DictRow) -> Document:
    return document_from(row, _utc)


def _poll(row: DictRow) -> PollRecord:
    return poll_from(row, _utc)


def _event(row: DictRow) -> SourceEvent:
    return SourceEvent(source_url=row["source_url"], at=_must_utc(row["at"]), kind=row["kind"],
                       detail=row["detail"], id=row["id"])
