"""Rows of either store: read back into value objects (and deduplicated), and written.

Both stores keep the same columns (:mod:`feedhub.store.tables`); only how an
instant is stored differs (ISO text in SQLite, ``timestamptz`` in PostgreSQL),
so each makes its :class:`Rows` with its own two conversions. No database
driver is imported here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from feedhub.model import Document, Enclosure, Entry, SourceState, StoredEntry
from feedhub.store.base import PollRecord, QueuedNotification, SourceEvent


class Row(Protocol):
    """A row whose columns are read by name (:class:`sqlite3.Row`, psycopg's dict rows)."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class Rows:
    """One store's mapping between rows and value objects."""

    #: A stored instant (or NULL) as a UTC datetime (or ``None``).
    read_time: Callable[[Any], datetime | None]
    #: A datetime (or ``None``) as the store keeps it.
    write_time: Callable[[datetime | None], Any]

    def instant(self, value: Any) -> datetime:
        """A stored instant of a ``NOT NULL`` column."""
        when = self.read_time(value)
        if when is None:
            raise ValueError("a required timestamp is missing")
        return when

    def state(self, row: Row) -> SourceState:
        """A ``sources`` row."""
        t = self.read_time
        return SourceState(
            url=row["url"], etag=row["etag"], last_modified=row["last_modified"],
            body_hash=row["body_hash"], feed_title=row["feed_title"], feed_link=row["feed_link"],
            last_poll_at=t(row["last_poll_at"]), last_success_at=t(row["last_success_at"]),
            last_status=row["last_status"], http_status=row["http_status"], error=row["error"],
            failures=row["failures"], next_poll_at=t(row["next_poll_at"]),
            retry_after=t(row["retry_after"]), moved_to=row["moved_to"],
            active_url=row["active_url"])

    def entry(self, row: Row) -> StoredEntry:
        """An ``entries`` row."""
        return StoredEntry(
            source_url=row["source_url"], key=row["key"], guid=row["guid"], link=row["link"],
            canonical_link=row["canonical_link"], title=row["title"],
            content_html=row["content_html"], published=self.instant(row["published"]),
            first_seen=self.instant(row["first_seen"]), updated=self.instant(row["updated"]),
            authors=tuple(json.loads(row["authors"])),
            categories=tuple(json.loads(row["categories"])),
            enclosures=tuple(Enclosure(url=x["url"], type=x["type"], length=x["length"])
                             for x in json.loads(row["enclosures"])))

    def document(self, row: Row) -> Document:
        """A ``documents`` row."""
        fields = {"path": row["path"], "content_type": row["content_type"],
                  "etag": row["etag"], "modified": self.instant(row["modified"])}
        if row["encoding"] == "gzip":
            return Document(gzipped=bytes(row["body"]), **fields)
        return Document.of(body=bytes(row["body"]), **fields)  # stored before compression

    def poll(self, row: Row) -> PollRecord:
        """A ``polls`` row."""
        return PollRecord(source_url=row["source_url"], at=self.instant(row["at"]),
                          status=row["status"], http_status=row["http_status"], new=row["new"],
                          updated=row["updated"], error=row["error"])

    def event(self, row: Row) -> SourceEvent:
        """A ``source_events`` row."""
        return SourceEvent(source_url=row["source_url"], at=self.instant(row["at"]),
                           kind=row["kind"], detail=row["detail"], id=row["id"])

    def notification(self, row: Row) -> QueuedNotification:
        """A ``notifications`` row."""
        return QueuedNotification(webhook_url=row["webhook_url"], body=bytes(row["body"]),
                                  created=self.instant(row["created"]),
                                  attempts=row["attempts"], next_at=self.read_time(row["next_at"]),
                                  last_error=row["last_error"])

    def state_values(self, s: SourceState) -> tuple[Any, ...]:
        """A source's state in :data:`~feedhub.store.sql.STATE_COLUMNS` order."""
        t = self.write_time
        return (s.url, s.etag, s.last_modified, s.body_hash, s.feed_title, s.feed_link,
                t(s.last_poll_at), t(s.last_success_at), s.last_status, s.http_status, s.error,
                s.failures, t(s.next_poll_at), t(s.retry_after), s.moved_to, s.active_url)

    def entry_values(self, e: Entry | StoredEntry, *, published: datetime, first_seen: datetime,
                     updated: datetime, content_hash: str) -> tuple[Any, ...]:
        """An entry with these dates, in :data:`~feedhub.store.sql.ENTRY_COLUMNS` order."""
        t = self.write_time
        return (e.source_url, e.key, e.guid, e.link, e.canonical_link, e.title, e.content_html,
                t(published), t(first_seen), t(updated), *json_lists(e), content_hash)

    def changed_values(self, e: Entry, seen_at: datetime) -> tuple[Any, ...]:
        """A changed entry's values for its update in place: ``guid`` to ``content_html``,
        ``published`` (the store clamps it to ``first_seen``), ``updated`` (``seen_at``), the
        JSON lists and ``content_hash``; then its ``source_url`` and ``key``, to find it."""
        return (e.guid, e.link, e.canonical_link, e.title, e.content_html,
                self.write_time(e.published), self.write_time(seen_at), *json_lists(e),
                e.content_hash, e.source_url, e.key)

    def poll_values(self, p: PollRecord) -> tuple[Any, ...]:
        """A poll record in ``polls`` column order (without ``id``)."""
        return (p.source_url, self.write_time(p.at), p.status, p.http_status, p.new, p.updated,
                p.error)

    def notification_values(self, n: QueuedNotification) -> tuple[Any, ...]:
        """A delivery in ``notifications`` column order (without ``id``)."""
        return (n.webhook_url, n.body, self.write_time(n.created), n.attempts,
                self.write_time(n.next_at), n.last_error)

    def event_values(self, e: SourceEvent) -> tuple[Any, ...]:
        """A source event in ``source_events`` column order (without ``id``)."""
        return (e.source_url, self.write_time(e.at), e.kind, e.detail)


def polled(state: SourceState, new: int, updated: int) -> PollRecord | None:
    """The poll ``state`` records for the history, or ``None`` if it records none."""
    if state.last_poll_at is None or state.last_status is None:
        return None
    return PollRecord(source_url=state.url, at=state.last_poll_at, status=state.last_status,
                      http_status=state.http_status, new=new, updated=updated, error=state.error)


def json_lists(e: Entry | StoredEntry) -> tuple[str, str, str]:
    """The entry's ``authors``, ``categories`` and ``enclosures`` columns (JSON)."""
    return (json.dumps(list(e.authors), ensure_ascii=False),
            json.dumps(list(e.categories), ensure_ascii=False),
            json.dumps([{"url": x.url, "type": x.type, "length": x.length} for x in e.enclosures],
                       ensure_ascii=False))


def one_per_link(entries: Iterable[StoredEntry], limit: int) -> list[StoredEntry]:
    """The first ``limit`` entries, skipping later copies of one canonical link."""
    found: list[StoredEntry] = []
    links: set[str] = set()
    for entry in entries:
        if entry.canonical_link in links:
            continue
        if entry.canonical_link:
            links.add(entry.canonical_link)
        found.append(entry)
        if len(found) == limit:
            break
    return found
