"""The SQLite schema, as append-only numbered migrations.

The schema version is the number of migrations applied (``PRAGMA
user_version``); opening a store runs the missing ones in one transaction.
Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: sources, entries, documents
    """
    CREATE TABLE sources (
        url             TEXT PRIMARY KEY,   -- the URL as configured in feeds.yaml
        etag            TEXT,               -- validator for If-None-Match
        last_modified   TEXT,               -- validator for If-Modified-Since
        body_hash       TEXT,               -- sha256 of the last body parsed: skip identical bodies
        feed_title      TEXT,               -- the source's own title
        feed_link       TEXT,               -- the source's home page
        last_poll_at    TEXT,               -- UTC ISO 8601, last attempt
        last_success_at TEXT,               -- UTC ISO 8601, last ok/not-modified poll
        last_status     TEXT,               -- PollStatus value of the last attempt
        http_status     INTEGER,            -- HTTP status of the last attempt, if any
        error           TEXT,               -- reason of the last failure, NULL after a success
        failures        INTEGER NOT NULL DEFAULT 0,  -- consecutive failures, for backoff
        next_poll_at    TEXT,               -- when the source is due; NULL = never (410 Gone)
        retry_after     TEXT,               -- not before this (429/503 Retry-After)
        moved_to        TEXT                -- target of a permanent redirect, to show the operator
    );

    CREATE TABLE entries (
        id              INTEGER PRIMARY KEY,
        source_url      TEXT NOT NULL,      -- the source it came from (sources.url)
        key             TEXT NOT NULL,      -- identity within the source: guid, link or hash
        guid            TEXT,               -- the original id/guid as published
        link            TEXT,               -- the original link, absolute
        canonical_link  TEXT,               -- link without tracking params: cross-source dedupe
        title           TEXT NOT NULL,      -- plain text
        content_html    TEXT NOT NULL,      -- sanitized HTML, absolute URLs
        published       TEXT NOT NULL,      -- UTC ISO 8601, the source's date clamped to first_seen
        first_seen      TEXT NOT NULL,      -- UTC ISO 8601, never changes
        updated         TEXT NOT NULL,      -- UTC ISO 8601, last change of title/content
        authors         TEXT NOT NULL,      -- JSON list of names
        categories      TEXT NOT NULL,      -- JSON list of the source's own categories
        enclosures      TEXT NOT NULL,      -- JSON list of {url, type, length}
        content_hash    TEXT NOT NULL,      -- sha256 of what readers see: detects updates
        UNIQUE (source_url, key)
    );
    CREATE INDEX entries_by_source_published ON entries (source_url, published DESC);
    CREATE INDEX entries_by_canonical_link ON entries (canonical_link);

    CREATE TABLE documents (
        path            TEXT PRIMARY KEY,   -- URL path without leading slash, e.g. feeds/all.atom
        body            BLOB NOT NULL,      -- the exact bytes served
        content_type    TEXT NOT NULL,      -- Content-Type header value
        etag            TEXT NOT NULL,      -- strong ETag of body, quoted
        modified        TEXT NOT NULL       -- UTC ISO 8601, last time the bytes changed
    );
    """,
    # 2: poll history, for `feedhub status URL` (the last ~50 polls of each source)
    """
    CREATE TABLE polls (
        id              INTEGER PRIMARY KEY,
        source_url      TEXT NOT NULL,      -- the source polled (sources.url)
        at              TEXT NOT NULL,      -- UTC ISO 8601, when the poll started
        status          TEXT NOT NULL,      -- PollStatus value
        http_status     INTEGER,            -- HTTP status, if the server answered
        new             INTEGER NOT NULL,   -- entries stored for the first time
        updated         INTEGER NOT NULL,   -- entries changed in place
        error           TEXT                -- reason of a failure, NULL after a success
    );
    CREATE INDEX polls_by_source ON polls (source_url, id);
    """,
    # 3: poll leases, so several feedhub nodes sharing a store never poll a source twice
    """
    -- the node polling the source now (host:pid), NULL when none
    ALTER TABLE sources ADD COLUMN lease_owner TEXT;
    -- UTC ISO 8601: after this instant another node may claim the source
    ALTER TABLE sources ADD COLUMN lease_until TEXT;
    """,
    # 4: source state changes (failing, recovered, moved, gone), for /feeds/_health.atom
    """
    CREATE TABLE source_events (
        id              INTEGER PRIMARY KEY,
        source_url      TEXT NOT NULL,      -- the source whose state changed (sources.url)
        at              TEXT NOT NULL,      -- UTC ISO 8601, the poll that changed it
        kind            TEXT NOT NULL,      -- failing, recovered, moved or gone
        detail          TEXT                -- the failure's reason, or where it moved
    );
    """,
    # 5: the fallback URL (sources[].urls) the last poll was answered from, NULL: the first
    """
    ALTER TABLE sources ADD COLUMN active_url TEXT;
    """,
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
)

SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """The SQL statements of a migration script (a trigger's body stays whole)."""
    found, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            found.append(buffer.strip())
            buffer = ""
    return found + ([buffer.strip()] if buffer.strip() else [])
