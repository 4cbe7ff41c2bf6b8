"""The PostgreSQL schema, as append-only numbered migrations.

The columns are those of :mod:`feedhub.store.tables` (as in
:mod:`feedhub.store.sqlite.schema`), in PostgreSQL's types: instants are
``timestamptz``, bodies ``bytea``, storage order an identity column; the
indexes are this store's own. The version is the row in ``feedhub_schema``;
opening a store applies the missing migrations in one transaction under an
advisory lock, so nodes starting together migrate once. Never edit a
migration that has shipped: add a new one.
"""

from __future__ import annotations

from feedhub.store import tables

POSTGRES = tables.Dialect({"id": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "text": "text",
                           "integer": "integer", "instant": "timestamptz", "bytes": "bytea"})

MIGRATIONS: tuple[str, ...] = (
    # 1: sources (with poll leases), entries, documents, poll history
    POSTGRES.create_table(tables.SOURCES, tables.LEASE_COLUMNS) + """
    CREATE INDEX sources_due ON sources (next_poll_at);
    """ + POSTGRES.create_table(tables.ENTRIES) + """
    -- latest_entries, prune: newest first per source, index-only.
    CREATE INDEX entries_recent ON entries
        (source_url, published DESC, id DESC) INCLUDE (canonical_link, first_seen);
    -- The cross-source duplicate check: an earlier copy of the same canonical link.
    CREATE INDEX entries_link_seen ON entries (canonical_link, first_seen, id) INCLUDE (source_url);
    -- new_entries_since (feedhub status).
    CREATE INDEX entries_first_seen ON entries (first_seen);
    """ + POSTGRES.create_table(tables.DOCUMENTS) + POSTGRES.create_table(tables.POLLS) + """
    CREATE INDEX polls_by_source ON polls (source_url, id);
    """,
    # 2: source state changes (failing, recovered, moved, gone), for /feeds/_health.atom
    POSTGRES.create_table(tables.SOURCE_EVENTS),
    # 3: the fallback URL (sources[].urls) the last poll was answered from, NULL: the first
    POSTGRES.add_column(tables.SOURCES, tables.ACTIVE_URL),
    # 4: latest_entries of many sources (a category, all): walk every source's entries
    # newest first and stop at the limit, instead of sorting all of the chosen sources'
    # entries on each render (the PostgreSQL server's main cost on a cold poll)
    """
    CREATE INDEX entries_newest ON entries
        (published DESC, id DESC) INCLUDE (source_url, canonical_link, first_seen);
    """,
    # 5: webhook deliveries waiting for their receiver (notify.webhooks)
    POSTGRES.create_table(tables.NOTIFICATIONS) + """
    CREATE INDEX notifications_due ON notifications (next_at);
    """,
    # 6: documents kept gzip-compressed (a quarter of the bytes, sent as they are)
    POSTGRES.add_column(tables.DOCUMENTS, tables.DOCUMENT_ENCODING),
)

SCHEMA_VERSION = len(MIGRATIONS)
