"""Entries on SQLite: saving a poll's entries, reading them back, searching them.

The first-seen copy of an article reached through several sources wins
(:func:`feedhub.store.sql.first_copy`). Queries pick ids from covering
indexes first, then read the few full rows.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import aiosqlite

from feedhub.model import Entry, StoredEntry
from feedhub.search import Query, entry_text
from feedhub.store import sql
from feedhub.store.base import EntryRecord, SaveResult
from feedhub.store.rows import one_per_link
from feedhub.store.sqlite.connection import IN_BATCH, ROWS, SQLiteBase, batches, marks, to_iso

_FIRST_COPY = sql.first_copy("IN chosen")
_CHOSEN = "WITH chosen AS (SELECT value AS url FROM json_each(?))"
_LATEST_SQL = f"""
    {_CHOSEN},
    picked AS (
        SELECT e.id, e.published FROM entries e
        WHERE e.source_url IN chosen AND {_FIRST_COPY}
        ORDER BY e.published DESC, e.id DESC LIMIT ? OFFSET ?)
    SELECT entries.* FROM picked JOIN entries ON entries.id = picked.id
    ORDER BY picked.published DESC, picked.id DESC"""
_ENTRY_TIMES_SQL = sql.entry_times("?")
# Every id of an archive, in order: paging through it is then a slice, not an OFFSET
# that re-checks every earlier entry (rendering N pages was O(N²)).
_ARCHIVE_IDS_SQL = f"""
    {_CHOSEN}
    SELECT e.id FROM entries e WHERE e.source_url IN chosen AND {_FIRST_COPY} ORDER BY e.id"""
#: Archives whose id lists are kept, at most (8 bytes per entry each).
_ARCHIVE_CACHE = 64

_INSERT_ENTRY = (f"INSERT INTO entries ({sql.names(sql.ENTRY_COLUMNS)}) "
                 f"VALUES ({marks(len(sql.ENTRY_COLUMNS))})")
_UPDATE_CHANGED = """
    UPDATE entries SET guid=?, link=?, canonical_link=?, title=?, content_html=?,
        published=MIN(?, first_seen), updated=?, authors=?, categories=?, enclosures=?,
        content_hash=?
    WHERE source_url=? AND key=?"""


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


class EntriesMixin(SQLiteBase):
    """Entries: saving a poll's, reading the newest and the archive, searching, pruning."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        super().__init__(db, path)
        # Archive id lists by chosen sources, with the store version they were read at.
        self._archive_ids: dict[str, tuple[tuple[int, int], array[int]]] = {}

    async def _write_entries(self, source_url: str, entries: Sequence[Entry],
                             seen_at: datetime) -> SaveResult:
        """Insert a poll's new entries and update its changed ones, in the caller's transaction."""
        known = await self._known_hashes(source_url, [e.key for e in entries])
        fresh = [e for e in entries if e.key not in known]
        changed = [e for e in entries if e.key in known and known[e.key] != e.content_hash]
        await self._db.executemany(_INSERT_ENTRY, [
            ROWS.entry_values(e, published=min(e.published, seen_at), first_seen=seen_at,
                              updated=min(e.published, seen_at), content_hash=e.content_hash)
            for e in fresh])
        await self._db.executemany(_UPDATE_CHANGED,
                                   [ROWS.changed_values(e, seen_at) for e in changed])
        return SaveResult(new=len(fresh), updated=len(changed))

    async def entry_hashes(self, source_url: str, keys: Sequence[str]) -> dict[str, str]:
        async with self._errors("read entry hashes"):
            return await self._known_hashes(source_url, keys)

    async def _known_hashes(self, source_url: str, keys: Sequence[str]) -> dict[str, str]:
        known: dict[str, str] = {}
        for batch, batch_marks in batches(keys):
            async with self._db.execute(
                    f"SELECT key, content_hash FROM entries "
                    f"WHERE source_url = ? AND key IN ({batch_marks})",
                    (source_url, *batch)) as cur:
                known.update({row[0]: row[1] for row in await cur.fetchall()})
        return known

    async def entry_times(self, per_source: int) -> dict[str, list[tuple[datetime, datetime]]]:
        times: dict[str, list[tuple[datetime, datetime]]] = {}
        async with self._errors("read entry dates"), \
                self._db.execute(_ENTRY_TIMES_SQL, (per_source,)) as cur:
            while rows := await cur.fetchmany(sql.TIMES_CHUNK):
                for row in rows:
                    times.setdefault(row[0], []).append(
                        (ROWS.instant(row[1]), ROWS.instant(row[2])))
        return times

    async def latest_entries(self, source_urls: Iterable[str], limit: int,
                             offset: int = 0) -> list[StoredEntry]:
        urls = list(source_urls)
        if not urls or limit <= 0:
            return []
        async with self._errors("read entries"), self._db.execute(
                _LATEST_SQL, (json.dumps(urls), limit, offset)) as cur:
            return [ROWS.entry(row) for row in await cur.fetchall()]

    async def archive_ids(self, source_urls: Iterable[str]) -> Sequence[int]:
        urls = list(source_urls)
        if not urls:
            return []
        async with self._errors("read archived entries"):
            return await self._archive_id_list(json.dumps(urls))

    async def entries_by_id(self, ids: Sequence[int]) -> list[StoredEntry]:
        found: list[StoredEntry] = []
        async with self._errors("read archived entries"):
            for batch, batch_marks in batches(ids):
                async with self._db.execute(
                        f"SELECT * FROM entries WHERE id IN ({batch_marks}) ORDER BY id",
                        list(batch)) as cur:
                    found += [ROWS.entry(row) for row in await cur.fetchall()]
        return found

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

    async def search(self, query: Query, source_urls: Iterable[str], *,
                     since: datetime | None = None, limit: int = 50) -> list[StoredEntry]:
        urls = list(source_urls)
        if not urls or limit <= 0:
            return []
        async with self._errors("search entries"):
            await self._index_pending()
            params: list[str] = []

            def found(word: str) -> str:
                condition, values = _search_condition(word)
                params.extend(values)
                return condition

            where = query.where(found)
            # Ids first, from the covering index, so only the page of full rows is read.
            hits = (f"WITH hits AS (SELECT e.id, e.published FROM entries e "
                    f"WHERE e.source_url IN (SELECT value FROM json_each(?))"
                    f"{' AND e.published >= ?' if since else ''} AND ({where}) "
                    "ORDER BY e.published DESC, e.id DESC LIMIT ?) "
                    "SELECT entries.* FROM hits JOIN entries ON entries.id = hits.id "
                    "ORDER BY hits.published DESC, hits.id DESC")
            # Twice the limit: copies of one article through several sources are dropped.
            async with self._db.execute(hits, [json.dumps(urls), *([to_iso(since)] if since else []),
                                               *params, limit * 2]) as cur:
                return one_per_link((ROWS.entry(row) for row in await cur.fetchall()), limit)

    async def _index_pending(self) -> None:
        """Bring the search index up to date with the entries stored since the last search.

        Indexing is left out of the polls' transactions: the trigram index costs about a
        millisecond per entry, which only operators who search should pay.
        """
        while True:
            async with self._transaction():
                async with self._db.execute(
                        "SELECT e.id, e.title, e.content_html FROM search_pending p "
                        "JOIN entries e ON e.id = p.id LIMIT ?", (IN_BATCH,)) as cur:
                    rows = list(await cur.fetchall())
                if not rows:
                    await self._db.execute("DELETE FROM search_pending")
                    return
                ids = [row[0] for row in rows]
                await self._db.execute(
                    f"DELETE FROM entries_fts WHERE rowid IN ({marks(len(ids))})", ids)
                await self._db.executemany(
                    "INSERT INTO entries_fts (rowid, title, body) VALUES (?, ?, ?)",
                    [(row[0], row[1], entry_text(row[2])) for row in rows])
                await self._db.execute(
                    f"DELETE FROM search_pending WHERE id IN ({marks(len(ids))})", ids)

    async def entry_counts(self) -> dict[str, int]:
        async with self._errors("count entries"), self._db.execute(
                "SELECT source_url, COUNT(*) FROM entries GROUP BY source_url") as cur:
            return {row[0]: int(row[1]) for row in await cur.fetchall()}

    async def new_entries_since(self, since: datetime) -> dict[str, int]:
        async with self._errors("count new entries"), self._db.execute(
                "SELECT source_url, COUNT(*) FROM entries WHERE first_seen >= ? GROUP BY source_url",
                (to_iso(since),)) as cur:
            return {row[0]: int(row[1]) for row in await cur.fetchall()}

    async def prune(self, *, older_than: datetime | None, keep_per_source: int | None) -> int:
        # rowcount, not total_changes: the search index's triggers change rows too.
        async with self._errors("prune entries"), self._transaction(entries=True):
            deleted = 0
            if older_than is not None:
                async with self._db.execute("DELETE FROM entries WHERE published < ?",
                                            (to_iso(older_than),)) as cur:
                    deleted += cur.rowcount
            if keep_per_source is not None:
                async with self._db.execute(
                        f"DELETE FROM entries WHERE id IN (SELECT id FROM ({sql.ranked('id')}) "
                        f"ranked WHERE n > ?)", (keep_per_source,)) as cur:
                    deleted += cur.rowcount
            return deleted

    # --- copying between stores ------------------------------------------------------

    async def import_entries(self, records: Sequence[EntryRecord]) -> None:
        async with self._errors("import entries"), self._transaction(entries=True):
            await self._db.executemany(
                f"{_INSERT_ENTRY} ON CONFLICT (source_url, key) DO UPDATE SET {sql.ENTRY_UPDATE}",
                [ROWS.entry_values(e, published=e.published, first_seen=e.first_seen,
                                   updated=e.updated, content_hash=r.content_hash)
                 for r in records for e in (r.entry,)])
