"""Rows read back from either store, made into value objects (and deduplicated).

Both stores keep the same columns; only how a timestamp comes back differs
(ISO text in SQLite, ``timestamptz`` in PostgreSQL), so each passes its own
converter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from feedhub.model import Document, Enclosure, SourceState, StoredEntry
from feedhub.store.base import PollRecord

Row = Mapping[str, Any]
#: A stored timestamp (or NULL) as a UTC datetime (or ``None``).
ToTime = Callable[[Any], datetime | None]


def _must(to_time: ToTime, value: Any) -> datetime:
    when = to_time(value)
    if when is None:
        raise ValueError("a required timestamp is missing")
    return when


def state_from(row: Row, to_time: ToTime) -> SourceState:
    """A ``sources`` row."""
    return SourceState(
        url=row["url"], etag=row["etag"], last_modified=row["last_modified"],
        body_hash=row["body_hash"], feed_title=row["feed_title"], feed_link=row["feed_link"],
        last_poll_at=to_time(row["last_poll_at"]), last_success_at=to_time(row["last_success_at"]),
        last_status=row["last_status"], http_status=row["http_status"], error=row["error"],
        failures=row["failures"], next_poll_at=to_time(row["next_poll_at"]),
        retry_after=to_time(row["retry_after"]), moved_to=row["moved_to"],
        active_url=row["active_url"])


def entry_from(row: Row, to_time: ToTime) -> StoredEntry:
    """An ``entries`` row."""
    return StoredEntry(
        source_url=row["source_url"], key=row["key"], guid=row["guid"], link=row["link"],
        canonical_link=row["canonical_link"], title=row["title"],
        content_html=row["content_html"], published=_must(to_time, row["published"]),
        first_seen=_must(to_time, row["first_seen"]), updated=_must(to_time, row["updated"]),
        authors=tuple(json.loads(row["authors"])), categories=tuple(json.loads(row["categories"])),
        enclosures=tuple(Enclosure(url=x["url"], type=x["type"], length=x["length"])
                         for x in json.loads(row["enclosures"])))


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


def document_from(row: Row, to_time: ToTime) -> Document:
    """A ``documents`` row."""
    return Document(path=row["path"], body=bytes(row["body"]), content_type=row["content_type"],
                    etag=row["etag"], modified=_must(to_time, row["modified"]))


def poll_from(row: Row, to_time: ToTime) -> PollRecord:
    """A ``polls`` row."""
    return PollRecord(source_url=row["source_url"], at=_must(to_time, row["at"]),
                      status=row["status"], http_status=row["http_status"], new=row["new"],
                      updated=row["updated"], error=row["error"])
