"""The SQLite schema, as append-only numbered migrations.

The columns are those of :mod:`feedhub.store.tables`, in SQLite's types:
instants are UTC ISO 8601 text, storage order the rowid. The schema version
is the number of migrations applied (``PRAGMA user_version``); opening a store
runs the missing ones in one transaction. Never edit a migration that has
shipped: add a new one.
"""

from __future__ import annotations

import sqlite3

from feedhub.store import tables

SQLITE = tables.Dialect({"id": "INTEGER PRIMARY KEY", "text": "TEXT", "integer": "INTEGER",
                         "instant": "TEXT", "bytes": "BLOB"}, instant_note="UTC ISO 8601")

MIGRATIONS: tuple[str, ...] = (
    # 1: sources, entries, documents
    SQLITE.create_table(tables.SOURCES) + SQLITE.create_table(tables.ENTRIES) + """
    CREATE INDEX entries_by_source_published ON entries (source_url, published DESC);
    CREATE INDEX entries_by_canonical_link ON entries (canonical_link);
    """ + SQLITE.create_table(tables.DOCUMENTS),
    # 2: poll history, for `feedhub status URL` (the last ~50 polls of each source)
    SQLITE.create_table(tables.POLLS) + """
    CREATE INDEX polls_by_source ON polls (source_url, id);
    """,
    # 3: poll leases, so several feedhub nodes sharing a store never poll a source twice
    "".join(SQLITE.add_column(tables.SOURCES, column) for column in tables.LEASE_COLUMNS),
    # 4: source state changes (failing, recovered, moved, gone), for /feeds/_health.atom
    SQLITE.create_table(tables.SOURCE_EVENTS),
    # 5: the fallback URL (sources[].urls) the last poll was answered from, NULL: the first
    SQLITE.add_column(tables.SOURCES, tables.ACTIVE_URL),
    # 6: full-text search (feedhub search, queries:) with FTS5's trigram tokenizer, which
    # needs no word boundaries (Chinese). Entries are indexed in batches before a search,
    # not in the poll's transaction: search_pending lists the entries to (re)index. (No
    # INSERT OR IGNORE in the triggers: an upsert's conflict clause would override it.)
    """
    CREATE VIRTUAL TABLE entries_fts USING fts5(title, body, tokenize = 'trigram');
    CREATE TABLE search_pending (id INTEGER PRIMARY KEY);
    INSERT INTO search_pending (id) SELECT id FROM entries;
    CREATE TRIGGER entries_search_new AFTER INSERT ON entries BEGIN
        INSERT INTO search_pending (id) SELECT new.id
            WHERE NOT EXISTS (SELECT 1 FROM search_pending WHERE id = new.id);
    END;
    CREATE TRIGGER entries_search_changed AFTER UPDATE OF title, content_html ON entries BEGIN
        INSERT INTO search_pending (id) SELECT new.id
            WHERE NOT EXISTS (SELECT 1 FROM search_pending WHERE id = new.id);
    END;
    CREATE TRIGGER entries_search_gone AFTER DELETE ON entries BEGIN
        DELETE FROM entries_fts WHERE rowid = old.id;
        DELETE FROM search_pending WHERE id = old.id;
    END;
    """,
    # 7: webhook deliveries waiting for their receiver (notify.webhooks)
    SQLITE.create_table(tables.NOTIFICATIONS) + """
    CREATE INDEX notifications_due ON notifications (next_at);
    """,
    # 8: documents kept gzip-compressed (a quarter of the bytes, sent as they are)
    SQLITE.add_column(tables.DOCUMENTS, tables.DOCUMENT_ENCODING),
    # 9: the documents' ETags without their bodies (a row's columns after a large body
    # are read through its overflow pages): what a render compares against
    "CREATE INDEX documents_etags ON documents (path, etag);",
)

SCHEMA_VERSION = len(MIGRATIONS)

#: Indexes that only make queries fast: derived data, created when missing at open
#: (no schema version of their own). Each is covering for the query named.
PERF_INDEXES = (
    # latest_entries: newest first per source, no table row read.
    "CREATE INDEX IF NOT EXISTS entries_recent ON entries "
    "(source_url, published DESC, id DESC, canonical_link, first_seen)",
    # The cross-source duplicate check: an earlier copy of the same canonical link.
    "CREATE INDEX IF NOT EXISTS entries_link_seen ON entries "
    "(canonical_link, first_seen, id, source_url)",
    # archive_ids: storage order without reading the (large) rows.
    "CREATE INDEX IF NOT EXISTS entries_by_id ON entries (id, source_url, canonical_link, first_seen)",
    # due_sources.
    "CREATE INDEX IF NOT EXISTS sources_due ON sources (next_poll_at)",
)


def statements(script: str) -> list[str]:
    """The SQL statements of a migration script (a trigger's body stays whole)."""
    found, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            found.append(buffer.strip())
            buffer = ""
    return found + ([buffer.strip()] if buffer.strip() else [])
