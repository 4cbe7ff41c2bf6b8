"""Source state changes for the health feed (``/feeds/_health.atom``): pure, no I/O.

A poll changes a source's state when its status class changes — it started
failing (with the reason), recovered, or answered ``410 Gone`` — or when it
moved permanently somewhere new. Polls that stay in the same class are not
news, so a source failing for a week is one entry, not a thousand.
"""

from __future__ import annotations

import uuid
from html import escape

from feedhub.model import PollStatus, SourceState, StoredEntry
from feedhub.store.base import SourceEvent

#: The health feed's URL path stem, and how many state changes it lists.
HEALTH_STEM = "feeds/_health"
HEALTH_ENTRIES = 100

_OK = {PollStatus.OK, PollStatus.NOT_MODIFIED, PollStatus.UNCHANGED}
_FAILING = {PollStatus.ERROR, PollStatus.RATE_LIMITED}


def status_class(status: str | None) -> str | None:
    """``ok``, ``failing``, ``gone``, or ``None`` (never polled, or skipped)."""
    if status is None:
        return None
    try:
        value = PollStatus(status)
    except ValueError:
        return None
    if value in _OK:
        return "ok"
    if value in _FAILING:
        return "failing"
    return "gone" if value is PollStatus.GONE else None


def state_change(before: SourceState, after: SourceState) -> SourceEvent | None:
    """The event a poll that turned ``before`` into ``after`` makes, if any."""
    old, new = status_class(before.last_status), status_class(after.last_status)
    at = after.last_poll_at
    if at is None or new is None:
        return None
    if new != old:
        if new == "failing":
            return SourceEvent(source_url=after.url, at=at, kind="failing",
                               detail=after.error or after.last_status)
        if new == "gone":
            return SourceEvent(source_url=after.url, at=at, kind="gone", detail="410 Gone")
        if old is not None:  # a first successful poll is not a recovery
            return SourceEvent(source_url=after.url, at=at, kind="recovered")
    if after.moved_to and after.moved_to != before.moved_to:
        return SourceEvent(source_url=after.url, at=at, kind="moved", detail=after.moved_to)
    return None


_TITLES = {"failing": "{name} started failing", "recovered": "{name} recovered",
           "gone": "{name} is gone", "moved": "{name} moved"}


def event_entry(event: SourceEvent, name: str) -> StoredEntry:
    """A state change as an entry of the health feed."""
    title = _TITLES.get(event.kind, "{name}: " + event.kind).format(name=name)
    if event.detail:
        title += f": {event.detail}"
    content = f"<p>{escape(title)}</p><p>{escape(event.source_url)}</p>"
    key = f"event:{event.id}:{event.at.isoformat()}"
    guid = uuid.uuid5(uuid.NAMESPACE_URL, f"{event.source_url}\n{key}").urn
    return StoredEntry(source_url=event.source_url, key=key, guid=guid, link=event.source_url,
                       canonical_link=None, title=title, content_html=content, published=event.at,
                       first_seen=event.at, updated=event.at, authors=(), categories=(event.kind,),
                       enclosures=())
