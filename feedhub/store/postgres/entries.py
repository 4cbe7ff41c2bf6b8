"""Entries on PostgreSQL: saving a poll's entries, reading them back, searching them.

The first-seen copy of an article reached through several sources wins
(:func:`feedhub.store.sql.first_copy`), as on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from feedhub.model import Entry, StoredEntry
from feedhub.search import Query
from feedhub.store import sql
from feedhub.store.base import EntryRecord, SaveResult
from feedhub.store.postgres.connection import ROWS, Connection, PostgresBase, arrays
from feedhub.store.rows import one_per_link

_LATEST_SQL = f"""
    WITH picked AS (
        SELECT e.id, e.published FROM entries e
        WHERE e.source_url = ANY(%(urls)s) AND {sql.first_copy("= ANY(%(urls)s)")}
        ORDER BY e.published DESC, e.id DESC LIMIT %(limit)s OFFSET %(offset)s)
    SELECT entries.* FROM picked JOIN entries ON entries.id = picked.id
    ORDER BY picked.published DESC, picked.id DESC"""
# Every id of an archive, in order: paging through it is then a slice of one list read
# once per render, not an OFFSET that re-checks every earlier entry for each page.
_ARCHIVE_IDS_SQL = f"""
    SELECT e.id FROM entries e
    WHERE e.source_url = ANY(%(urls)s) AND {sql.first_copy("= ANY(%(urls)s)")} ORDER BY e.id"""
# Both are planned on every call (never as prepared statements): a generic plan knows
# neither how many sources are chosen nor the limit, and sorts every chosen entry where
# the plan for the actual values walks entries_newest and stops at the limit (3-4x
# slower for all sources; more while the table grows).
_ENTRY_TIMES_SQL = sql.entry_times("%s")

# Entries go in as one statement of parallel arrays, in order (storage order = id order).
_INSERT_ENTRIES = f"""
    INSERT INTO entries ({sql.names(sql.ENTRY_COLUMNS)})
    SELECT {sql.names(sql.ENTRY_COLUMNS)} FROM unnest(
        %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
        %s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::text[], %s::text[],
        %s::text[], %s::text[]) WITH ORDINALITY AS u({sql.names(sql.ENTRY_COLUMNS)}, n)
    ORDER BY n"""
_UPDATE_CHANGED = """
    UPDATE entries SET guid=%s, link=%s, canonical_link=%s, title=%s, content_html=%s,
        published=LEAST(%s, first_seen), updated=%s, authors=%s, categories=%s,
        enclosures=%s, content_hash=%s
    WHERE source_url=%s AND key=%s"""


class EntriesMixin(PostgresBase):
    """Entries: saving a poll's, reading the newest and the archive, searching, pruning."""

    @staticmethod
    async def _write_entries(conn: Connection, source_url: str, entries: Sequence[Entry],
                             seen_at: datetime) -> SaveResult:
        """Insert a poll's new entries and update its changed ones, in the caller's transaction."""
        cur = await conn.execute(
            "SELECT key, content_hash FROM entries WHERE source_url = %s AND key = ANY(%s)",
            (source_url, [e.key for e in entries]))
        known = {row["key"]: row["content_hash"] for row in await cur.fetchall()}
        fresh = [e for e in entries if e.key not in known]
        changed = [e for e in entries if e.key in known and known[e.key] != e.content_hash]
        if fresh:
            await conn.execute(_INSERT_ENTRIES, arrays([
                ROWS.entry_values(e, published=min(e.published, seen_at), first_seen=seen_at,
                                  updated=min(e.published, seen_at), content_hash=e.content_hash)
                for e in fresh], len(sql.ENTRY_COLUMNS)))
        if changed:
            async with conn.cursor() as cur:
                await cur.executemany(_UPDATE_CHANGED,
                                      [ROWS.changed_values(e, seen_at) for e in changed])
        return SaveResult(new=len(fresh), updated=len(changed))

    async def entry_times(self, per_source: int) -> dict[str, list[tuple[datetime, datetime]]]:
        times: dict[str, list[tuple[datetime, datetime]]] = {}
        async with self._transaction("read entry dates") as conn, \
                conn.cursor(name="entry_times") as cur:
            cur.itersize = sql.TIMES_CHUNK  # a server-side cursor: the rows come in chunks
            await cur.execute(_ENTRY_TIMES_SQL, (per_source,))
            async for row in cur:
                times.setdefault(row["source_url"], []).append(
                    (ROWS.instant(row["published"]), ROWS.instant(row["first_seen"])))
        return times

    async def latest_entries(self, source_urls: Iterable[str], limit: int,
                             offset: int = 0) -> list[StoredEntry]:
        urls = list(source_urls)
        if not urls or limit <= 0:
            return []
        rows = await self._rows("read entries", _LATEST_SQL,
                                {"urls": urls, "limit": limit, "offset": offset}, prepare=False)
        return [ROWS.entry(row) for row in rows]

    async def archive_ids(self, source_urls: Iterable[str]) -> Sequence[int]:
        urls = list(source_urls)
        if not urls:
            return []
        rows = await self._rows("read archived entries", _ARCHIVE_IDS_SQL, {"urls": urls},
                                prepare=False)
        return [int(row["id"]) for row in rows]

    async def entries_by_id(self, ids: Sequence[int]) -> list[StoredEntry]:
        if not ids:
            return []
        rows = await self._rows("read archived entries",
                                "SELECT * FROM entries WHERE id = ANY(%s) ORDER BY id", (list(ids),))
        return [ROWS.entry(row) for row in rows]

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
        hits = ("SELECT * FROM entries e WHERE e.source_url = ANY(%(urls)s)"
                f"{' AND e.published >= %(since)s' if since else ''} AND ({where}) "
                "ORDER BY e.published DESC, e.id DESC LIMIT %(scan)s")
        rows = await self._rows("search entries", hits, params)
        return one_per_link((ROWS.entry(row) for row in rows), limit)

    async def entry_hashes(self, source_url: str, keys: Sequence[str]) -> dict[str, str]:
        rows = await self._rows(
            "read entry hashes",
            "SELECT key, content_hash FROM entries WHERE source_url = %s AND key = ANY(%s)",
            (source_url, list(keys)))
        return {row["key"]: row["content_hash"] for row in rows}

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
                    f"DELETE FROM entries WHERE id IN (SELECT id FROM ({sql.ranked('id')}) "
                    f"ranked WHERE n > %s)", (keep_per_source,))
                deleted += max(cur.rowcount, 0)
        return deleted

    # --- copying between stores ------------------------------------------------------

    async def import_entries(self, records: Sequence[EntryRecord]) -> None:
        await self._insert_arrays(
            "import entries",
            f"{_INSERT_ENTRIES} ON CONFLICT (source_url, key) DO UPDATE SET {sql.ENTRY_UPDATE}",
            [ROWS.entry_values(r.entry, published=r.entry.published, first_seen=r.entry.first_seen,
                               updated=r.entry.updated, content_hash=r.content_hash)
             for r in records], len(sql.ENTRY_COLUMNS))
