"""The tables both stores keep, written once: every column's name, kind and meaning.

Each store's schema (:mod:`feedhub.store.sqlite.schema`,
:mod:`feedhub.store.postgres.schema`) renders these in its own SQL types
(:class:`Dialect`) and adds its own indexes, so the two cannot drift apart
column by column: :mod:`feedhub.store.rows` reads either's rows alike, and
``feedhub migrate-store`` copies between them. The definitions are part of
shipped migrations: never change one; a new column is a new :class:`Column`
added by a new migration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from feedhub.errors import StoreError

#: ``id``: the storage order (an integer key assigned on insert); ``instant``: a UTC time.
Kind = Literal["id", "text", "integer", "instant", "bytes"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name, kind, what it holds, and constraints beyond its type."""

    name: str
    kind: Kind
    meaning: str
    constraint: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """A table as its first migration creates it."""

    name: str
    columns: tuple[Column, ...]
    #: Table constraints, after the columns.
    constraints: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(c.name for c in self.columns)


#: The ``id`` of entries, polls and events: the order rows were stored in.
STORAGE_ORDER = Column("id", "id", "storage order")

SOURCES = Table("sources", (
    Column("url", "text", "the URL as configured in feeds.yaml", "PRIMARY KEY"),
    Column("etag", "text", "validator for If-None-Match"),
    Column("last_modified", "text", "validator for If-Modified-Since"),
    Column("body_hash", "text", "sha256 of the last body parsed: skip identical bodies"),
    Column("feed_title", "text", "the source's own title"),
    Column("feed_link", "text", "the source's home page"),
    Column("last_poll_at", "instant", "last attempt"),
    Column("last_success_at", "instant", "last ok/not-modified poll"),
    Column("last_status", "text", "PollStatus value of the last attempt"),
    Column("http_status", "integer", "HTTP status of the last attempt, if any"),
    Column("error", "text", "reason of the last failure, NULL after a success"),
    Column("failures", "integer", "consecutive failures, for backoff", "NOT NULL DEFAULT 0"),
    Column("next_poll_at", "instant", "when the source is due; NULL = never (410 Gone)"),
    Column("retry_after", "instant", "not before this (429/503 Retry-After)"),
    Column("moved_to", "text", "target of a permanent redirect, to show the operator"),
))
#: Poll leases, so several nodes sharing a store never poll a source twice.
LEASE_COLUMNS = (
    Column("lease_owner", "text", "the node polling the source now (host:pid), NULL when none"),
    Column("lease_until", "instant", "after this instant another node may claim the source"),
)
ACTIVE_URL = Column("active_url", "text", "the fallback URL (sources[].urls) the last poll was "
                                          "answered from, NULL: the first")

ENTRIES = Table("entries", (
    STORAGE_ORDER,
    Column("source_url", "text", "the source it came from (sources.url)", "NOT NULL"),
    Column("key", "text", "identity within the source: guid, link or hash", "NOT NULL"),
    Column("guid", "text", "the original id/guid as published"),
    Column("link", "text", "the original link, absolute"),
    Column("canonical_link", "text", "link without tracking params: cross-source dedupe"),
    Column("title", "text", "plain text", "NOT NULL"),
    Column("content_html", "text", "sanitized HTML, absolute URLs", "NOT NULL"),
    Column("published", "instant", "the source's date clamped to first_seen", "NOT NULL"),
    Column("first_seen", "instant", "never changes", "NOT NULL"),
    Column("updated", "instant", "last change of title/content", "NOT NULL"),
    Column("authors", "text", "JSON list of names", "NOT NULL"),
    Column("categories", "text", "JSON list of the source's own categories", "NOT NULL"),
    Column("enclosures", "text", "JSON list of {url, type, length}", "NOT NULL"),
    Column("content_hash", "text", "sha256 of what readers see: detects updates", "NOT NULL"),
), ("UNIQUE (source_url, key)",))

DOCUMENTS = Table("documents", (
    Column("path", "text", "URL path without leading slash, e.g. feeds/all.atom", "PRIMARY KEY"),
    Column("body", "bytes", "the bytes served, gzip-compressed (see encoding)", "NOT NULL"),
    Column("content_type", "text", "Content-Type header value", "NOT NULL"),
    Column("etag", "text", "strong ETag of body, quoted", "NOT NULL"),
    Column("modified", "instant", "last time the bytes changed", "NOT NULL"),
))

#: How ``documents.body`` is kept; rows written before it are ``identity`` (compressed
#: when read).
DOCUMENT_ENCODING = Column("encoding", "text", "gzip; identity: stored uncompressed (before "
                                               "schema 8 on SQLite, 6 on PostgreSQL)",
                           "NOT NULL DEFAULT 'identity'")

#: The first columns of a source's logs (polls, source events): which source, and when.
SOURCE_LOG = (
    STORAGE_ORDER,
    Column("source_url", "text", "the source it is about (sources.url)", "NOT NULL"),
    Column("at", "instant", "when the poll (or check) that recorded it started", "NOT NULL"),
)

#: Poll history, for ``feedhub status URL`` (the last ~50 polls of each source).
POLLS = Table("polls", (
    *SOURCE_LOG,
    Column("status", "text", "PollStatus value", "NOT NULL"),
    Column("http_status", "integer", "HTTP status, if the server answered"),
    Column("new", "integer", "entries stored for the first time", "NOT NULL"),
    Column("updated", "integer", "entries changed in place", "NOT NULL"),
    Column("error", "text", "reason of a failure, NULL after a success"),
))

#: Source state changes, for ``/feeds/_health.atom``.
SOURCE_EVENTS = Table("source_events", (
    *SOURCE_LOG,
    Column("kind", "text", "failing, recovered, moved, gone, quiet or resumed", "NOT NULL"),
    Column("detail", "text", "the failure's reason, or where it moved"),
))

#: Webhook deliveries (``notify.webhooks``) not yet accepted by their receiver.
NOTIFICATIONS = Table("notifications", (
    STORAGE_ORDER,
    Column("webhook_url", "text", "the receiver (notify.webhooks[].url)", "NOT NULL"),
    Column("body", "bytes", "the JSON document to POST", "NOT NULL"),
    Column("created", "instant", "when the poll that stored the entries ran", "NOT NULL"),
    Column("attempts", "integer", "deliveries tried so far", "NOT NULL DEFAULT 0"),
    Column("next_at", "instant", "when to try (again); NULL: given up"),
    Column("last_error", "text", "why the last attempt failed"),
))


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database writes the columns down."""

    #: The SQL type of each kind (``id`` with its key clause).
    types: Mapping[Kind, str]
    #: How an instant is stored, when that is not plain from its type (said in comments).
    instant_note: str = ""

    def create_table(self, table: Table, more: Sequence[Column] = ()) -> str:
        """``CREATE TABLE`` with ``table``'s columns (then ``more``), a comment on each."""
        columns = (*table.columns, *more)
        lines = [f"{self._column(c)}{',' if i < len(columns) - 1 or table.constraints else ''}"
                 f"  -- {self._meaning(c)}" for i, c in enumerate(columns)]
        lines += [f"{c}{',' if i < len(table.constraints) - 1 else ''}"
                  for i, c in enumerate(table.constraints)]
        body = "\n".join(f"    {line}" for line in lines)
        return f"CREATE TABLE {table.name} (\n{body}\n);\n"

    def add_column(self, table: Table, column: Column) -> str:
        """``ALTER TABLE … ADD COLUMN``, its meaning as a comment above."""
        return (f"-- {self._meaning(column)}\n"
                f"ALTER TABLE {table.name} ADD COLUMN {self._column(column)};\n")

    def _column(self, column: Column) -> str:
        return " ".join(filter(None, (column.name, self.types[column.kind], column.constraint)))

    def _meaning(self, column: Column) -> str:
        if column.kind == "instant" and self.instant_note:
            return f"{self.instant_note}, {column.meaning}"
        return column.meaning


def refuse_newer(version: int, current: int, where: str) -> None:
    """Stop at a store whose schema a newer feedhub wrote.

    Raises:
        StoreError: ``version`` is past ``current``.
    """
    if version > current:
        raise StoreError(f"the store {where} has schema version {version}, newer than "
                         f"this feedhub's {current}: upgrade feedhub")
