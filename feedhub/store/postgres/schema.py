"""The PostgreSQL schema, as append-only numbered migrations.

Same tables and meaning as :mod:`feedhub.store.sqlite.schema`, in
PostgreSQL's types: instants are ``timestamptz``, bodies ``bytea``, storage
order an identity column. The version is the row in ``feedhub_schema``;
opening a store applies the missing migrations in one transaction under an
advisory lock, so nodes starting together migrate once. Never edit a
migration that has shipped: add a new one.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: sources (with poll leases), entries, documents, poll history
    """
    CREATE TABLE sources (
        url             text PRIMARY KEY,   -- the URL as configured in feeds.yaml
        etag            text,               -- validator for If-None-Match
        last_modified   text,               -- validator for If-Modified-Since
        body_hash       text,               -- sha256 of the last body parsed: skip identical bodies
        feed_title      text,               -- the source's own title
        feed_link       text,               -- the source's home page
        last_poll_at    timestamptz,        -- last attempt
        last_success_at timestamptz,        -- last ok/not-modified poll
        last_status     text,               -- PollStatus value of the last attempt
        http_status     integer,            -- HTTP status of the last attempt, if any
        error           text,               -- reason of the last failure, NULL after a success
        failures        integer NOT NULL DEFAULT 0,  -- consecutive failures, for backoff
        next_poll_at    timestamptz,        -- when the source is due; NULL = never (410 Gone)
        retry_after     timestamptz,        -- not before this (429/503 Retry-After)
        moved_to        text,               -- target of a permanent redirect, to show the operator
        lease_owner     text,               -- the node polling it now (host:pid), NULL when none
        lease_until     timestamptz         -- after this instant another node may claim it
    );
    CREATE INDEX sources_due ON sources (next_poll_at);

    CREATE TABLE entries (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- storage order
        source_url      text NOT NULL,      -- the source it came from (sources.url)
        key             text NOT NULL,      -- identity within the source: guid, link or hash
        guid            text,               -- the original id/guid as published
        link            text,               -- the original link, absolute
        canonical_link  text,               -- link without tracking params: cross-source dedupe
        title           text NOT NULL,      -- plain text
        content_html    text NOT NULL,      -- sanitized HTML, absolute URLs
        published       timestamptz NOT NULL,  -- the source's date clamped to first_seen
        first_seen      timestamptz NOT NULL,  -- never changes
        updated         timestamptz NOT NULL,  -- last change of title/content
        authors         text NOT NULL,      -- JSON list of names
        categories      text NOT NULL,      -- JSON list of the source's own categories
        enclosures      text NOT NULL,      -- JSON list of {url, type, length}
        content_hash    text NOT NULL,      -- sha256 of what readers see: detects updates
        UNIQUE (source_url, key)
    );
    -- latest_entries, count_entries, prune: newest first per source, index-only.
    CREATE INDEX entries_recent ON entries
        (source_url, published DESC, id DESC) INCLUDE (canonical_link, first_seen);
    -- The cross-source duplicate check: an earlier copy of the same canonical link.
    CREATE INDEX entries_link_seen ON entries (canonical_link, first_seen, id) INCLUDE (source_url);
    -- new_entries_since (feedhub status).
    CREATE INDEX entries_first_seen ON entries (first_seen);

    CREATE TABLE documents (
        path            text PRIMARY KEY,   -- URL path without leading slash, e.g. feeds/all.atom
        body            bytea NOT NULL,     -- the exact bytes served
        content_type    text NOT NULL,      -- Content-Type header value
        etag            text NOT NULL,      -- strong ETag of body, quoted
        modified        timestamptz NOT NULL  -- last time the bytes changed
    );

    CREATE TABLE polls (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source_url      text NOT NULL,      -- the source polled (sources.url)
        at              timestamptz NOT NULL,  -- when the poll started
        status          text NOT NULL,      -- PollStatus value
        http_status     integer,            -- HTTP status, if the server answered
        new             integer NOT NULL,   -- entries stored for the first time
        updated         integer NOT NULL,   -- entries changed in place
        error           text                -- reason of a failure, NULL after a success
    );
    CREATE INDEX polls_by_source ON polls (source_url, id);
    """,
    # 2: source state changes (failing, recovered, moved, gone), for /feeds/_health.atom
    """
    CREATE TABLE source_events (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source_url      text NOT NULL,      -- the source whose state changed (sources.url)
        at              timestamptz NOT NULL,  -- the poll that changed it
        kind            text NOT NULL,      -- failing, recovered, moved or gone
        detail          text                -- the failure's reason, or where it moved
    );
    """,
    # 3: the fallback URL (sources[].urls) the last poll was answered from, NULL: the first
    """
    ALTER TABLE sources ADD COLUMN active_url text;
    """,
    # 4: latest_entries of many sources (a category, all): walk every source's entries
    # newest first and stop at the limit, instead of sorting all of the chosen sources'
    # entries on each render (the PostgreSQL server's main cost on a cold poll)
    """
    CREATE INDEX entries_newest ON entries
        (published DESC, id DESC) INCLUDE (source_url, canonical_link, first_seen);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
