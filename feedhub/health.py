"""Source state changes for the health feed (``/feeds/_health.atom``): pure, no I/O.

A poll changes a source's state when its status class changes — it started
failing (with the reason), recovered, or answered ``410 Gone`` — or when it
moved permanently somewhere new. Polls that stay in the same class are not
news, so a source failing for a week is one entry, not a thousand. A source
that answers but has published nothing for many times its usual gap went
quiet (:func:`quiet_changes`), and is publishing again once it does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from html import escape
from itertools import pairwise

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


#: Event kinds :func:`quiet_changes` records.
QUIET_KINDS = ("quiet", "resumed")
#: Entries needed before a source's usual gap between entries is known.
RHYTHM_ENTRIES = 20


def quiet_changes(*, now: datetime, states: Iterable[SourceState],
                  times: Mapping[str, Sequence[tuple[datetime, datetime]]],
                  last: Mapping[str, SourceEvent], factor: int, minimum: timedelta
                  ) -> list[SourceEvent]:
    """Sources that went quiet, or are publishing again, as of ``now``.

    ``times``: each source's newest entries as (published, first seen), newest first;
    ``last``: each source's latest ``quiet``/``resumed`` event. A source is quiet when
    its newest entry is older than ``factor`` times its median gap between entries, and
    at least ``minimum`` old (so a busy source's night or weekend is not news). A source
    that was already quiet when its newest entry was first seen (a stale feed just
    added) did not go quiet under the hub's watch; failing or gone sources are
    reported as such.
    """
    events = []
    for state in states:
        seen = times.get(state.url, ())
        if status_class(state.last_status) != "ok" or len(seen) < 3:
            continue
        published = [p for p, _ in seen]
        gaps = sorted(newer - older for newer, older in pairwise(published))
        usual = gaps[len(gaps) // 2]
        limit = max(usual * factor, minimum)
        if seen[0][1] - seen[0][0] > limit:
            continue
        silent = now - seen[0][0]
        quiet = silent > limit
        was_quiet = (previous := last.get(state.url)) is not None and previous.kind == "quiet"
        if quiet and not was_quiet:
            events.append(SourceEvent(
                source_url=state.url, at=now, kind="quiet",
                detail=f"nothing new for {_span(silent)}, usually every {_span(usual)}"))
        elif was_quiet and not quiet:
            events.append(SourceEvent(source_url=state.url, at=now, kind="resumed"))
    return events


def _span(span: timedelta) -> str:
    seconds = span.total_seconds()
    if span >= timedelta(days=2):
        return f"{span.days} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


_TITLES = {"failing": "{name} started failing", "recovered": "{name} recovered",
           "gone": "{name} is gone", "moved": "{name} moved", "quiet": "{name} went quiet",
           "resumed": "{name} is publishing again"}


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
