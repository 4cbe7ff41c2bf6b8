"""Turn a :class:`ParsedFeed` into store-ready :class:`Entry` values.

Decides identity (id/guid, else link, else a content hash), sanitizes HTML,
makes links absolute, and clamps dates in the future. Pure: no I/O.
:func:`parse_and_normalize` is what a parse worker process runs, so this
module imports only what parsing needs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from feedhub.model import Entry, NormalizedFeed, ParsedEntry, ParsedFeed
from feedhub.parse import parse
from feedhub.sanitize import clean_html, clean_text, safe_url, xml_safe
from feedhub.urls import canonical_link

if TYPE_CHECKING:
    from feedhub.selectors import ScrapeRules

_UNTITLED_CHARS = 60


def parse_and_normalize(body: bytes, *, url: str, headers: Mapping[str, str], timezone: ZoneInfo,
                        encoding: str | None, source_url: str, seen_at: datetime,
                        scrape_rules: ScrapeRules | None = None) -> NormalizedFeed:
    """Parse a body fetched from ``url`` for the source ``source_url`` and normalize it:
    as a feed, or, with ``scrape_rules``, as an HTML page to read entries off.

    Raises:
        EncodingError, ParseError: as :func:`feedhub.parse.parse` and
            :func:`feedhub.scrape.scrape`.
    """
    if scrape_rules is not None:
        from feedhub.scrape import scrape  # lxml: only in the workers of scraped sources

        feed = scrape(body, url=url, headers=headers, rules=scrape_rules, timezone=timezone,
                      encoding=encoding)
    else:
        feed = parse(body, url=url, headers=headers, timezone=timezone, encoding=encoding)
    return NormalizedFeed(title=clean_text(feed.title), link=safe_url(feed.link, url),
                          ttl_minutes=feed.ttl_minutes,
                          entries=normalize(feed, source_url=source_url, feed_url=url,
                                            seen_at=seen_at))


def normalize(feed: ParsedFeed, *, source_url: str, feed_url: str,
              seen_at: datetime) -> list[Entry]:
    """The feed's entries, normalized; a key repeated within the feed keeps its first entry."""
    entries: dict[str, Entry] = {}
    for parsed in feed.entries:
        entry = normalize_entry(parsed, source_url=source_url, feed_url=feed_url, seen_at=seen_at)
        entries.setdefault(entry.key, entry)
    return list(entries.values())


def normalize_entry(parsed: ParsedEntry, *, source_url: str, feed_url: str,
                    seen_at: datetime) -> Entry:
    """One entry, normalized (see :func:`normalize`)."""
    link = safe_url(parsed.link, feed_url)
    content = clean_html(parsed.content_html, parsed.content_base or feed_url)
    title = clean_text(parsed.title) or _title_from(content) or link or "(untitled)"
    date = parsed.published or parsed.updated
    published = seen_at if date is None or date > seen_at else date
    authors = tuple(clean_text(a) for a in parsed.authors if clean_text(a))
    categories = tuple(clean_text(c) for c in parsed.categories if clean_text(c))
    enclosures = tuple(replace(e, type=clean_text(e.type)) for e in parsed.enclosures
                       if safe_url(e.url, feed_url) == e.url)
    guid = xml_safe(parsed.id).strip() or None if parsed.id else None
    fingerprint = json.dumps(
        [title, content, link, authors, categories, [(e.url, e.type, e.length) for e in enclosures]],
        ensure_ascii=False)
    content_hash = hashlib.sha256(fingerprint.encode()).hexdigest()
    return Entry(
        source_url=source_url,
        key=identity_key(parsed, link),
        guid=guid,
        link=link,
        canonical_link=canonical_link(link),
        title=title,
        content_html=content,
        published=published,
        authors=authors,
        categories=categories,
        enclosures=enclosures,
        content_hash=content_hash,
    )


def identity_key(parsed: ParsedEntry, link: str | None) -> str:
    """An entry's identity within its source: id/guid, else link, else a hash of its text."""
    if parsed.id:
        return parsed.id
    if link:
        return link
    date = (parsed.published or parsed.updated)
    basis = "\x1f".join([parsed.title, date.isoformat() if date else "", parsed.content_html])
    return "sha256:" + hashlib.sha256(basis.encode()).hexdigest()


def _title_from(content_html: str) -> str:
    text = clean_text(content_html)
    return text if len(text) <= _UNTITLED_CHARS else text[:_UNTITLED_CHARS] + "…"
