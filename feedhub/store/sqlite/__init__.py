"""The embedded store: SQLite in WAL mode through aiosqlite.

Every write is a ``BEGIN IMMEDIATE … COMMIT`` transaction; poll results without
entries that arrive while one runs are committed together by the next (group
commit). A crash at any instant loses at most the polls in flight.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from array import array
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from feedhub.errors import StoreError
from feedhub.model import Document, Entry, SourceState, StoredEntry
from feedhub.search import Query, entry_text
from feedhub.store.base import POLL_HISTORY, EntryRecord, PollRecord, SaveResult, SourceEvent
from feedhub.store.rows import document_from, entry_from, one_per_link, poll_from, state_from
from feedhub.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, statements
from feedhub.store.tables import refuse_newer

_IN_BATCH = 500  # stay under SQLite's bound-parameter limit

#: Indexes that only make queries fast: derived data, created when missing at open
#: (no schema version of their own). Each is covering for the query named.
_PERF_INDEXES = (
    # latest_entries, count_entries: newest first per source, no table row read.
    "CREATE INDEX IF NOT EXISTS entries_recent ON entries "
    "(source_url, published DESC, id DESC, canonical_link, first_seen)",
    # The cross-source duplicate check: an earlier copy of the same canonical link.
    "CREATE INDEX IF NOT EXISTS entries_link_seen ON entries "
    "(canonical_link, first_seen, id, source_url)",
    # archive_entries: storage order without reading the (large) rows.
    "CREATE INDEX IF NOT EXISTS entries_by_id ON entries (id, source_url, canonical_link, first_seen)",
    # due_sources.
    "CREATE INDEX IF NOT EXISTS sources_due ON sources (next_poll_at)",
)

# The first-seen copy of an article reached through several sources wins: an entry
# is shown unless one of the chosen sources has the same canonical link earlier.
# Only ids are picked (from covering indexes), then the few full rows are read.
_PICK_ENTRIES = """
    WITH chosen AS (SELECT value AS url FROM json_each(?)),
    picked AS (
        SELECT e.id, e.published FROM entries e
        WHERE e.source_url IN chosen
          AND NOT EXISTS (
              SELECT 1 FROM entries o
              WHERE o.canonical_link = e.canonical_link
                AND (o.first_seen < e.first_seen OR (o.first_seen = e.first_seen AND o.id < e.id))
                AND o.source_url IN chosen)
        ORDER BY {order} LIMIT ? OFFSET ?)
    SELECT entries.* FROM picked JOIN entries ON entries.id = picked.id ORDER BY {outer}"""
_LATEST_SQL = _PICK_ENTRIES.format(order="e.published DESC, e.id DESC",
                                   outer="picked.published DESC, picked.id DESC")
# Every id of an archive, in order: paging through it is then a slice, not an OFFSET
# that re-checks every earlier entry (rendering N pages was O(N²)).
_ARCHIVE_IDS_SQL = """
    WITH chosen AS (SELECT value AS url FROM json_each(?))
    SELECT e.id FROM entries e
    WHERE e.source_url IN chosen
      AND NOT EXISTS (
          SELECT 1 FROM entries o
          WHERE o.canonical_link = e.canonical_link
            AND (o.first_seen < e.first_seen OR (o.first_seen = e.first_seen AND o.id < e.id))
            AND o.source_url IN chosen)
    ORDER BY e.id"""
#: Archives whose id lists are kept, at most (8 bytes per entry each).
_ARCHIVE_CACHE = 64


# A source's state after a poll. Only the saving node's lease ends: after a slow poll
# whose lease ran out, another node may hold one now. (SET reads the old row.)
_SAVE_STATE = """
    INSERT INTO sources (url, etag, last_modified, body_hash, feed_title, feed_link,
        last_poll_at, last_success_at, last_status, http_status, error, failures,
        next_poll_at, retry_after, moved_to, active_url)
    VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
    ON CONFLICT (url) DO UPDATE SET
        etag=excluded.etag, last_modified=excluded.last_modified,
        body_hash=excluded.body_hash, feed_title=excluded.feed_title,
        feed_link=excluded.feed_link, last_poll_at=excluded.last_poll_at,
        last_success_at=excluded.last_success_at, last_status=excluded.last_status,
        http_status=excluded.http_status, error=excluded.error,
        failures=excluded.failures, next_poll_at=excluded.next_poll_at,
        retry_after=excluded.retry_after, moved_to=excluded.moved_to,
        active_url=excluded.active_url,
        lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END,
        lease_until = CASE WHEN lease_owner = ? THEN NULL ELSE lease_until END"""
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
    return (state.url, state.etag, state.last_modified, state.body_hash, state.feed_title,
            state.feed_link, _ts(state.last_poll_at), _ts(state.last_success_at),
            state.last_status, state.http_status, state.error, state.failures,
            _ts(state.next_poll_at), _ts(state.retry_after), state.moved_to,
            state.active_url, node, node)


def _event_row(event: SourceEvent) -> tuple[Any, ...]:
    return (event.source_url, _ts(event.at), event.kind, event.detail)


def _poll_row(state: SourceState, new: int, updated: int) -> tuple[Any, ...]:
    return (state.url, _ts(state.last_poll_at), state.last_status, state.http_status, new,
            updated, state.error)


def _search_condition(text: str) -> tuple[str, list[str]]:
    """SQL matching entries whose indexed title or text contains ``text``, and its parameters.

    The trigram index answers words of three characters or more; shorter ones (most
    Chinese words have two) are found by scanning the indexed text.
    """
    if len(text) >= 3:
        return ("e.id IN (SELECT rowid FROM entries_fts WHERE entries_fts MATCH ?)",
                ['"' + text.replace('"', '""') + '"'])
    if text.lower() == text.upper():  # no letters with case: skip lower(), which copies
        return ("e.id IN (SELECT rowid FROM entries_fts "
                "WHERE instr(title, ?) > 0 OR instr(body, ?) > 0)", [text, text])
    needle = _ascii_lower(text)
    return ("e.id IN (SELECT rowid FROM entries_fts "
            "WHERE instr(lower(title), ?) > 0 OR instr(lower(body), ?) > 0)", [needle, needle])


def _ascii_lower(text: str) -> str:
    """``text`` lower-cased as SQL ``lower()`` does: ASCII letters only."""
    return "".join(c.lower() if c.isascii() else c for c in text)


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _must_dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


class SQLiteStore:
    """:class:`~feedhub.store.base.Store` on one SQLite file."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        # One connection, many tasks: transactions must not interleave.
        self._write_lock = asyncio.Lock()
        # Archive id lists by chosen sources, with the store version they were read at.
        self._archive_ids: dict[str, tuple[tuple[int, int], array[int]]] = {}
        # Transactions on this connection that wrote entries (committed or not): the
        # archive id lists depend on nothing else written here. Documents in particular
        # are stored between reads of the same archive while it is rendered.
        self._entry_writes = 0
        # Saves without entries waiting for the transaction that will commit them.
        self._queued: list[_QueuedSave] = []
        self._committer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        """Open (creating and migrating as needed) the store at ``path``.

        Raises:
            StoreError: the file cannot be opened, is not a feedhub store, or is
                newer than this feedhub.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the store {path}") from e
        db.row_factory = sqlite3.Row
        store = cls(db, path)
        try:
            await store._setup()
        except sqlite3.Error as e:
            await db.close()
            raise StoreError(f"cannot open the store {path}") from e
        except StoreError:
            await db.close()
            raise
        return store

    async def _setup(self) -> None:
        db = self._db
        await db.execute("PRAGMA busy_timeout = 10000")
        await db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode never corrupts; a power cut may drop the last commits.
        await db.execute("PRAGMA synchronous = NORMAL")
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        refuse_newer(version, SCHEMA_VERSION, str(self.path))
        if version < SCHEMA_VERSION:
            async with self._transaction():
                for script in MIGRATIONS[version:]:
                    for statement in statements(script):
                        await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        for statement in _PERF_INDEXES:
            await db.execute(statement)

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

    # --- lifecycle ---------------------------------------------------------------

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.wait([self._committer])  # queued saves are committed first
        async with self._write_lock:  # let a transaction in progress finish first
            await self._db.close()

    async def ping(self) -> None:
        async with self._errors("answer a ping"), self._transaction():
            pass

    # --- sources -----------------------------------------------------------------

    async def source_state(self, url: str) -> SourceState | None:
        async with self._errors("read a source"), self._db.execute(
                "SELECT * FROM sources WHERE url = ?", (url,)) as cur:
            row = await cur.fetchone()
        return _state(row) if row else None

    async def source_states(self) -> list[SourceState]:
        async with self._errors("read the sources"), self._db.execute(
                "SELECT * FROM sources ORDER BY url") as cur:
            return [_state(row) for row in await cur.fetchall()]

    async def ensure_sources(self, first_polls: Mapping[str, datetime]) -> int:
        async with self._errors("add sources"), self._transaction():
            before = self._db.total_changes
            await self._db.executemany(
                "INSERT INTO sources (url, next_poll_at) VALUES (?, ?) ON CONFLICT (url) DO NOTHING",
                [(url, _ts(when)) for url, when in first_polls.items()])
            return self._db.total_changes - before

    async def due_sources(self, urls: Iterable[str], now: datetime, limit: int) -> list[str]:
        wanted = list(urls)
        due: list[tuple[str, str]] = []
        async with self._errors("find due sources"):
            for i in range(0, len(wanted), _IN_BATCH):
                batch = wanted[i:i + _IN_BATCH]
                marks = ",".join("?" * len(batch))
                async with self._db.execute(
                        f"SELECT url, next_poll_at FROM sources WHERE next_poll_at <= ? "
                        f"AND url IN ({marks}) ORDER BY next_poll_at LIMIT ?",
                        (_ts(now), *batch, limit)) as cur:
                    due += [(row[0], row[1]) for row in await cur.fetchall()]
        return [url for url, _ in sorted(due, key=lambda d: d[1])[:limit]]

    async def reschedule(self, url: str, when: datetime) -> None:
        async with self._errors(f"reschedule {url}"), self._transaction():
            await self._db.execute("UPDATE sources SET next_poll_at = ? WHERE url = ?",
                                   (_ts(when), url))

    # --- poll results ---------------------------------------------------------------

    async def save_poll(self, state: SourceState, entries: Sequence[Entry],
                        seen_at: datetime, event: SourceEvent | None = None, *,
                        node: str | None = None) -> SaveResult:
        if not entries:
            await self._queue_save(_QueuedSave(state=state, event=event, node=node,
                                               done=asyncio.get_running_loop().create_future()))
            return SaveResult(new=0, updated=0)
        async with self._errors(f"save the poll of {state.url}"), \
                self._transaction(entries=True):
            await self._db.execute(_SAVE_STATE, _state_row(state, node))
            if event is not None:
                await self._db.execute(_INSERT_EVENT, _event_row(event))
            known = await self._known_hashes(state.url, [e.key for e in entries])
            fresh = [e for e in entries if e.key not in known]
            changed = [e for e in entries if e.key in known and known[e.key] != e.content_hash]
            seen = _ts(seen_at)
            await self._db.executemany(
                """INSERT INTO entries (source_url, key, guid, link, canonical_link, title,
                       content_html, published, first_seen, updated, authors, categories,
                       enclosures, content_hash)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                [(e.source_url, e.key, e.guid, e.link, e.canonical_link, e.title, e.content_html,
                  _ts(min(e.published, seen_at)), seen, _ts(min(e.published, seen_at)), *_lists(e),
                  e.content_hash)
                 for e in fresh])
            await self._db.executemany(
                """UPDATE entries SET guid=?, link=?, canonical_link=?, title=?, content_html=?,
                       published=MIN(?, first_seen), updated=?, authors=?, categories=?,
                       enclosures=?, content_hash=?
                   WHERE source_url=? AND key=?""",
                [(e.guid, e.link, e.canonical_link, e.title, e.content_html, _ts(e.published),
                  seen, *_lists(e), e.content_hash, e.source_url, e.key) for e in changed])
            await self._record_poll(state, len(fresh), len(changed))
            return SaveResult(new=len(fresh), updated=len(changed))

    async def _record_poll(self, state: SourceState, new: int, updated: int) -> None:
        """Add the poll ``state`` records to its history, keeping the last POLL_HISTORY."""
        if state.last_poll_at is None or state.last_status is None:
            return
        await self._db.execute(_INSERT_POLL, _poll_row(state, new, updated))
        await self._db.execute(_TRIM_POLLS, (state.url, state.url, POLL_HISTORY))

    async def _queue_save(self, save: _QueuedSave) -> None:
        """Save a poll without entries together with those queued meanwhile.

        Saves arriving while a transaction runs are committed by the next one, all
        together: a warm poll's hundreds of 304s cost a few transactions of a few
        statements each, not five round trips to the database thread apiece.
        """
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
            await self._db.executemany(_INSERT_EVENT, [_event_row(e) for e in events])
        polled = [s.state for s in batch
                  if s.state.last_poll_at is not None and s.state.last_status is not None]
        if polled:
            await self._db.executemany(_INSERT_POLL, [_poll_row(p, 0, 0) for p in polled])
            urls = dict.fromkeys(p.url for p in polled)
            await self._db.executemany(_TRIM_POLLS, [(url, url, POLL_HISTORY) for url in urls])

    async def poll_history(self, url: str, limit: int) -> list[PollRecord]:
        async with self._errors(f"read the poll history of {url}"), self._db.execute(
                "SELECT * FROM polls WHERE source_url = ? ORDER BY id DESC LIMIT ?",
                (url, max(0, min(limit, POLL_HISTORY)))) as cur:
            return [_poll(row) for row in await cur.fetchall()]

    async def source_events(self, limit: int) -> list[SourceEvent]:
        async with self._errors("read source events"), self._db.execute(
                "SELECT * FROM source_events ORDER BY id DESC LIMIT ?", (max(0, limit),)) as cur:
            return [_event(row) for row in await cur.fetchall()]

    async def last_events(self, kinds: Sequence[str]) -> dict[str, SourceEvent]:
        marks = ",".join("?" * len(kinds))
        async with self._errors("read source events"), self._db.execute(
                f"SELECT * FROM source_events WHERE id IN (SELECT MAX(id) FROM source_events "
                f"WHERE kind IN ({marks}) GROUP BY source_url)", list(kinds)) as cur:
            return {row["source_url"]: _event(row) for row in await cur.fetchall()}

    async def record_events(self, events: Sequence[SourceEvent]) -> None:
        async with self._errors("record source events"), self._transaction():
            await self._db.executemany(
                "INSERT INTO source_events (source_url, at, kind, detail) VALUES (?,?,?,?)",
                [(e.source_url, _ts(e.at), e.kind, e.detail) for e in events])

    async def entry_times(self, per_source: int) -> dict[str, list[tuple[datetime, datetime]]]:
        times: dict[str, list[tuple[datetime, datetime]]] = {}
        async with self._errors("read entry dates"), self._db.execute(
                """SELECT source_url, published, first_seen FROM (
                       SELECT source_url, published, first_seen, ROW_NUMBER() OVER (
                           PARTITION BY source_url ORDER BY published DESC, id DESC) AS n
                       FROM entries)
                   WHERE n <= ? ORDER BY source_url, published DESC""", (per_source,)) as cur:
            # All at once: iterating fetches 64 rows per round trip to the database thread.
            for row in await cur.fetchall():
                times.setdefault(row[0], []).append((_must_dt(row[1]), _must_dt(row[2])))
        return times

    async def _known_hashes(self, source_url: str, keys: list[str]) -> dict[str, str]:
        known: dict[str, str] = {}
        for i in range(0, len(keys), _IN_BATCH):
            batch = keys[i:i + _IN_BATCH]
            marks = ",".join("?" * len(batch))
            async with self._db.execute(
                    f"SELECT key, content_hash FROM entries WHERE source_url = ? AND key IN ({marks})",
                    (source_url, *batch)) as cur:
                known.update({row[0]: row[1] for row in await cur.fetchall()})
        return known

    # --- entries -------------------------------------------------------------------

    async def latest_entries(self, source_urls: Iterable[str], limit: int,
                             offset: int = 0) -> list[StoredEntry]:
        urls = list(source_urls)
        if not urls or limit <= 0:
            return []
        async with self._errors("read entries"), self._db.execute(
                _LATEST_SQL, (json.dumps(urls), limit, offset)) as cur:
            return [_entry(row) for row in await cur.fetchall()]

    async def archive_entries(self, source_urls: Iterable[str], limit: int,
                              offset: int = 0) -> list[StoredEntry]:
        urls = list(source_urls)
        if not urls or limit <= 0:
            return []
        # Storage order (id) never changes, so a full page of it never changes either.
        async with self._errors("read archived entries"):
            ids = (await self._archive_id_list(json.dumps(urls)))[offset:offset + limit]
            if not ids:
                return []
            async with self._db.execute(
                    f"SELECT * FROM entries WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id",
                    list(ids)) as cur:
                return [_entry(row) for row in await cur.fetchall()]

    async def _archive_id_list(self, chosen: str) -> array[int]:
        """The deduplicated ids of an archive in storage order, read once per store change."""
        async with self._db.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        # data_version moves on other connections' commits, _entry_writes on ours.
        version = (int(row[0]) if row else 0, self._entry_writes)
        cached = self._archive_ids.get(chosen)
        if cached is not None and cached[0] == version:
            return cached[1]
        async with self._db.execute(_ARCHIVE_IDS_SQL, (chosen,)) as cur:
            ids = array("q", (row[0] for row in await cur.fetchall()))
        if len(self._archive_ids) >= _ARCHIVE_CACHE:
            self._archive_ids.clear()
        self._archive_ids[chosen] = (version, ids)
        return ids

    async def count_entries(self, source_urls: Iterable[str]) -> int:
        urls = list(source_urls)
        if not urls:
            return 0
        # One per canonical link; an entry without one is its own (source_url, key).
        sql = """SELECT COUNT(DISTINCT canonical_link) + COUNT(*) - COUNT(canonical_link)
                 FROM entries WHERE source_url IN (SELECT value FROM json_each(?))"""
        async with self._errors("count entries"), self._db.execute(sql, (json.dumps(urls),)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def search(self, query: Query, source_urls: Iterable[str], *,
                     since: datetime | None = None, limit: int = 50) -> list[StoredEntry]:
        urls = list(source_urls)
        if not urls or limit <= 0:
            return []
        async with self._errors("search entries"):
            await self._index_pending()
            params: list[str] = []

            def found(word: str) -> str:
                sql, values = _search_condition(word)
                params.extend(values)
                return sql

            where = query.where(found)
            # Ids first, from the covering index, so only the page of full rows is read.
            sql = (f"WITH hits AS (SELECT e.id, e.published FROM entries e "
                   f"WHERE e.source_url IN (SELECT value FROM json_each(?))"
                   f"{' AND e.published >= ?' if since else ''} AND ({where}) "
                   "ORDER BY e.published DESC, e.id DESC LIMIT ?) "
                   "SELECT entries.* FROM hits JOIN entries ON entries.id = hits.id "
                   "ORDER BY hits.published DESC, hits.id DESC")
            # Twice the limit: copies of one article through several sources are dropped.
            async with self._db.execute(sql, [json.dumps(urls), *([_ts(since)] if since else []),
                                              *params, limit * 2]) as cur:
                return one_per_link((_entry(row) for row in await cur.fetchall()), limit)

    async def _index_pending(self) -> None:
        """Bring the search index up to date with the entries stored since the last search.

        Indexing is left out of the polls' transactions: the trigram index costs about a
        millisecond per entry, which only operators who search should pay.
        """
        while True:
            async with self._transaction():
                async with self._db.execute(
                        "SELECT e.id, e.title, e.content_html FROM search_pending p "
                        "JOIN entries e ON e.id = p.id LIMIT ?", (_IN_BATCH,)) as cur:
                    rows = list(await cur.fetchall())
                if not rows:
                    await self._db.execute("DELETE FROM search_pending")
                    return
                ids = [row[0] for row in rows]
                marks = ",".join("?" * len(ids))
                await self._db.execute(f"DELETE FROM entries_fts WHERE rowid IN ({marks})", ids)
                await self._db.executemany(
                    "INSERT INTO entries_fts (rowid, title, body) VALUES (?, ?, ?)",
                    [(row[0], row[1], entry_text(row[2])) for row in rows])
                await self._db.execute(f"DELETE FROM search_pending WHERE id IN ({marks})", ids)

    async def prune(self, *, older_than: datetime | None, keep_per_source: int | None) -> int:
        # rowcount, not total_changes: the search index's triggers change rows too.
        async with self._errors("prune entries"), self._transaction(entries=True):
            deleted = 0
            if older_than is not None:
                async with self._db.execute("DELETE FROM entries WHERE published < ?",
                                            (_ts(older_than),)) as cur:
                    deleted += cur.rowcount
            if keep_per_source is not None:
                async with self._db.execute(
                    """DELETE FROM entries WHERE id IN (
                           SELECT id FROM (
                               SELECT id, ROW_NUMBER() OVER (
                                   PARTITION BY source_url ORDER BY published DESC, id DESC) AS n
                               FROM entries)
                           WHERE n > ?)""", (keep_per_source,)) as cur:
                    deleted += cur.rowcount
            return deleted

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

    async def entry_counts(self) -> dict[str, int]:
        async with self._errors("count entries"), self._db.execute(
                "SELECT source_url, COUNT(*) FROM entries GROUP BY source_url") as cur:
            return {row[0]: int(row[1]) for row in await cur.fetchall()}

    async def new_entries_since(self, since: datetime) -> dict[str, int]:
        async with self._errors("count new entries"), self._db.execute(
                "SELECT source_url, COUNT(*) FROM entries WHERE first_seen >= ? GROUP BY source_url",
                (_ts(since),)) as cur:
            return {row[0]: int(row[1]) for row in await cur.fetchall()}

    # --- documents -------------------------------------------------------------------

    async def put_documents(self, documents: Iterable[Document]) -> list[Document]:
        docs = list(documents)
        if not docs:
            return []
        async with self._errors("store rendered documents"), self._transaction():
            # Unchanged bytes (same ETag) are not written: the stored time stays.
            known: dict[str, str] = {}
            paths = [doc.path for doc in docs]
            for i in range(0, len(paths), _IN_BATCH):
                batch = paths[i:i + _IN_BATCH]
                async with self._db.execute(
                        f"SELECT path, etag FROM documents WHERE path IN ({','.join('?' * len(batch))})",
                        batch) as cur:
                    known.update({row[0]: row[1] for row in await cur.fetchall()})
            changed = [doc for doc in docs if known.get(doc.path) != doc.etag]
            await self._db.executemany(
                """INSERT INTO documents (path, body, content_type, etag, modified)
                   VALUES (?,?,?,?,?)
                   ON CONFLICT (path) DO UPDATE SET body=excluded.body,
                       content_type=excluded.content_type, etag=excluded.etag,
                       modified=excluded.modified""",
                [(doc.path, doc.body, doc.content_type, doc.etag, _ts(doc.modified))
                 for doc in changed])
        return changed

    async def document(self, path: str) -> Document | None:
        async with self._errors("read a document"), self._db.execute(
                "SELECT * FROM documents WHERE path = ?", (path,)) as cur:
            row = await cur.fetchone()
        return _document(row) if row else None

    async def document_paths(self, prefix: str = "") -> list[str]:
        # Answered from the primary key's index: no row (and so no body) is read.
        async with self._errors("list documents"), self._db.execute(
                "SELECT path FROM documents WHERE substr(path, 1, ?) = ? ORDER BY path",
                (len(prefix), prefix)) as cur:
            return [row[0] for row in await cur.fetchall()]

    async def documents(self) -> list[Document]:
        async with self._errors("read documents"), self._db.execute(
                "SELECT * FROM documents ORDER BY path") as cur:
            return [_document(row) for row in await cur.fetchall()]

    # --- many nodes -------------------------------------------------------------------

    async def claim_sources(self, urls: Iterable[str], now: datetime, limit: int, *,
                            node: str, lease: timedelta) -> list[str]:
        # One writer at a time: the due query and the lease are one transaction.
        wanted = list(urls)
        if limit <= 0 or not wanted:
            return []
        due: list[tuple[str, str]] = []
        async with self._errors("claim due sources"), self._transaction():
            for i in range(0, len(wanted), _IN_BATCH):
                batch = wanted[i:i + _IN_BATCH]
                marks = ",".join("?" * len(batch))
                async with self._db.execute(
                        f"SELECT url, next_poll_at FROM sources WHERE next_poll_at <= ? "
                        f"AND (lease_until IS NULL OR lease_until <= ?) "
                        f"AND url IN ({marks}) ORDER BY next_poll_at LIMIT ?",
                        (_ts(now), _ts(now), *batch, limit)) as cur:
                    due += [(row[0], row[1]) for row in await cur.fetchall()]
            claimed = [url for url, _ in sorted(due, key=lambda d: d[1])[:limit]]
            await self._db.executemany(
                "UPDATE sources SET lease_owner = ?, lease_until = ? WHERE url = ?",
                [(node, _ts(now + lease), url) for url in claimed])
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

    # --- copying between stores ------------------------------------------------------

    async def table_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        async with self._errors("count rows"):
            for table in ("sources", "entries", "documents", "polls", "source_events"):
                async with self._db.execute(f"SELECT COUNT(*) FROM {table}") as cur:
                    row = await cur.fetchone()
                counts[table] = int(row[0]) if row else 0
        return counts

    async def export_entries(self, after: int, limit: int) -> tuple[list[EntryRecord], int]:
        async with self._errors("read entries"), self._db.execute(
                "SELECT * FROM entries WHERE id > ? ORDER BY id LIMIT ?", (after, limit)) as cur:
            rows = list(await cur.fetchall())
        records = [EntryRecord(entry=_entry(row), content_hash=row["content_hash"]) for row in rows]
        return records, int(rows[-1]["id"]) if rows else after

    async def import_entries(self, records: Sequence[EntryRecord]) -> None:
        async with self._errors("import entries"), self._transaction(entries=True):
            await self._db.executemany(
                """INSERT INTO entries (source_url, key, guid, link, canonical_link, title,
                       content_html, published, first_seen, updated, authors, categories,
                       enclosures, content_hash)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT (source_url, key) DO UPDATE SET guid=excluded.guid,
                       link=excluded.link, canonical_link=excluded.canonical_link,
                       title=excluded.title, content_html=excluded.content_html,
                       published=excluded.published, first_seen=excluded.first_seen,
                       updated=excluded.updated, authors=excluded.authors,
                       categories=excluded.categories, enclosures=excluded.enclosures,
                       content_hash=excluded.content_hash""",
                [(e.source_url, e.key, e.guid, e.link, e.canonical_link, e.title, e.content_html,
                  _ts(e.published), _ts(e.first_seen), _ts(e.updated), *_lists(e),
                  r.content_hash) for r in records for e in (r.entry,)])

    async def import_sources(self, states: Sequence[SourceState]) -> None:
        async with self._errors("import sources"), self._transaction():
            await self._db.executemany(
                """INSERT OR REPLACE INTO sources (url, etag, last_modified, body_hash, feed_title,
                       feed_link, last_poll_at, last_success_at, last_status, http_status, error,
                       failures, next_poll_at, retry_after, moved_to, active_url)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                [(s.url, s.etag, s.last_modified, s.body_hash, s.feed_title, s.feed_link,
                  _ts(s.last_poll_at), _ts(s.last_success_at), s.last_status, s.http_status,
                  s.error, s.failures, _ts(s.next_poll_at), _ts(s.retry_after), s.moved_to,
                  s.active_url)
                 for s in states])

    async def export_polls(self, after: int, limit: int) -> tuple[list[PollRecord], int]:
        async with self._errors("read poll history"), self._db.execute(
                "SELECT * FROM polls WHERE id > ? ORDER BY id LIMIT ?", (after, limit)) as cur:
            rows = list(await cur.fetchall())
        return [_poll(row) for row in rows], int(rows[-1]["id"]) if rows else after

    async def import_polls(self, records: Sequence[PollRecord]) -> None:
        async with self._errors("import poll history"), self._transaction():
            await self._db.executemany(
                """INSERT INTO polls (source_url, at, status, http_status, new, updated, error)
                   SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS (
                       SELECT 1 FROM polls WHERE source_url = ?1 AND at = ?2 AND status = ?3)""",
                [(p.source_url, _ts(p.at), p.status, p.http_status, p.new, p.updated, p.error)
                 for p in records])

    async def export_events(self, after: int, limit: int) -> tuple[list[SourceEvent], int]:
        async with self._errors("read source events"), self._db.execute(
                "SELECT * FROM source_events WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit)) as cur:
            rows = list(await cur.fetchall())
        return [_event(row) for row in rows], int(rows[-1]["id"]) if rows else after

    async def import_events(self, events: Sequence[SourceEvent]) -> None:
        async with self._errors("import source events"), self._transaction():
            await self._db.executemany(
                """INSERT INTO source_events (source_url, at, kind, detail)
                   SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (
                       SELECT 1 FROM source_events WHERE source_url = ?1 AND at = ?2
                           AND kind = ?3 AND detail IS ?4)""",
                [(e.source_url, _ts(e.at), e.kind, e.detail) for e in events])


def _lists(e: Entry | StoredEntry) -> tuple[str, str, str]:
    return (json.dumps(list(e.authors), ensure_ascii=False),
            json.dumps(list(e.categories), ensure_ascii=False),
            json.dumps([{"url": x.url, "type": x.type, "length": x.length} for x in e.enclosures],
                       ensure_ascii=False))


def _state(row: Any) -> SourceState:
    return state_from(row, _dt)


def _entry(row: Any) -> StoredEntry:
    return entry_from(row, _dt)


def _document(row: Any) -> Document:
    return document_from(row, _dt)


def _poll(row: Any) -> PollRecord:
    return poll_from(row, _dt)


def _event(row: Any) -> SourceEvent:
    return SourceEvent(source_url=row["source_url"], at=_must_dt(row["at"]), kind=row["kind"],
                       detail=row["detail"], id=row["id"])
