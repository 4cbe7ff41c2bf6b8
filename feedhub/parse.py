"""Parse fetched bytes into a :class:`ParsedFeed`; the only feedparser importer.

RSS 0.9x/1.0/2.0 and Atom go through feedparser (its ``chardet`` support
decodes undeclared CJK text); JSON Feed 1.0/1.1, which feedparser does not
read, is parsed here. Dates without a zone are read in the source's time zone
rather than as UTC, which is what feedparser alone would do.
"""

from __future__ import annotations

import calendar
import codecs
import email.utils
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

import feedparser

from feedhub.decode import transcode_to_utf8
from feedhub.errors import EncodingError, ParseError
from feedhub.model import Enclosure, ParsedEntry, ParsedFeed

log = logging.getLogger("feedhub.parse")

# A trailing zone: Z, +0800, -05:00 or a named zone.
_HAS_ZONE = re.compile(
    r"(?:\dZ|[+-]\d{2}:?\d{2}|\b(?:UTC?|GMT|[ECMP][SD]T|[A-Z]{3,4}))\s*$", re.I)
_JSONFEED = re.compile(r"^https?://jsonfeed\.org/version/1(\.1)?/?$")


def parse(body: bytes, *, url: str, headers: Mapping[str, str], timezone: ZoneInfo,
          encoding: str | None = None) -> ParsedFeed:
    """Parse one source document fetched from ``url``.

    ``timezone`` applies to dates that carry no zone; ``encoding`` (the source's
    override) replaces whatever the document and headers declare.

    Raises:
        EncodingError: the text cannot be decoded without mangling it.
        ParseError: the body is not an RSS, Atom or JSON feed, or it trips the parser.
    """
    try:
        return _parse(body, url=url, headers=headers, timezone=timezone, encoding=encoding)
    except ParseError:
        raise
    except Exception as e:
        # Hostile input must not take down a poll: whatever feedparser (or our reading
        # of its result) raises becomes this source's error, with the cause kept.
        log.exception("unexpected error parsing %s", url)
        raise ParseError(url, f"the feed could not be parsed ({type(e).__name__}: {e})"[:300]) from e


def _parse(body: bytes, *, url: str, headers: Mapping[str, str], timezone: ZoneInfo,
           encoding: str | None) -> ParsedFeed:
    if body.removeprefix(codecs.BOM_UTF8).lstrip()[:1] == b"{":
        return _parse_json(body, url, timezone)
    response_headers = {k.lower(): v for k, v in headers.items()}
    response_headers.setdefault("content-location", url)
    if encoding:
        body = transcode_to_utf8(body, encoding, url)
        response_headers["content-type"] = "application/xml; charset=utf-8"
    d = _feedparser(body, response_headers)
    problem = d.get("bozo_exception")
    if isinstance(problem, feedparser.CharacterEncodingOverride) and not encoding:
        repaired = _nearly_utf8(body)
        if repaired is not None:
            response_headers["content-type"] = "application/xml; charset=utf-8"
            d = _feedparser(repaired, response_headers)
            problem = d.get("bozo_exception")
    if isinstance(problem, feedparser.CharacterEncodingUnknown):
        raise EncodingError(url, "the text encoding could not be determined; "
                                 "set encoding: for this source in feeds.yaml") from problem
    if not d.get("version") and not d.entries:
        reason = f" ({problem})" if problem else ""
        raise ParseError(url, f"not an RSS, Atom or JSON feed{reason}")
    feed = d.feed
    ttl = str(feed.get("ttl", "")).strip()
    return ParsedFeed(
        title=str(feed.get("title", "")),
        link=feed.get("link"),
        version=d.get("version") or "unknown",
        encoding=str(d.get("encoding", "")),
        entries=tuple(_entry(e, timezone) for e in d.entries),
        ttl_minutes=int(ttl) if ttl.isdigit() else None,
    )


def _feedparser(body: bytes, response_headers: dict[str, str]) -> Any:
    # Neither sanitizing nor resolving URLs in content here: feedhub's sanitizer does
    # both in one pass over each entry (against the base feedparser still tracks),
    # where feedparser's own passes cost about a third of its parsing time.
    return feedparser.parse(body, response_headers=response_headers,
                            sanitize_html=False, resolve_relative_uris=False)


def _nearly_utf8(body: bytes) -> bytes | None:
    """UTF-8 ``body`` with a few invalid bytes, repaired; ``None`` if it is not that.

    Without this, feedparser falls back to a guessed single-byte charset for the
    whole document and every CJK character comes out as mojibake.
    """
    text = body.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    non_ascii = sum(1 for c in text if ord(c) > 127)
    if bad == 0 or bad > max(3, non_ascii // 200):
        return None
    return transcode_to_utf8(text.encode("utf-8"), "utf-8", "")


def _entry(e: Any, tz: ZoneInfo) -> ParsedEntry:
    content, base = _content(e)
    return ParsedEntry(
        id=_text(e.get("id")),
        link=_text(e.get("link")),
        title=str(e.get("title", "")),
        content_html=content,
        content_base=base,
        published=_date(e, "published", tz) or _date(e, "created", tz),
        updated=_date(e, "updated", tz),
        authors=_authors(e),
        categories=tuple(dict.fromkeys(
            str(t.get("term") or t.get("label")) for t in e.get("tags", [])
            if t.get("term") or t.get("label"))),
        enclosures=tuple(
            Enclosure(url=str(x.get("href")), type=str(x.get("type", "")),
                      length=_length(x.get("length")))
            for x in e.get("enclosures", []) if x.get("href")),
    )


def _length(value: Any) -> int | None:
    """An enclosure length, if it is a sane number of bytes."""
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) <= 15 else None


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _content(e: Any) -> tuple[str, str | None]:
    """The fullest HTML body — ``content`` (Atom, content:encoded) over ``summary`` — and its base."""
    bodies = [c for c in e.get("content", []) if c.get("value")]
    if bodies:
        html = [c for c in bodies if "html" in c.get("type", "")] or bodies
        best = max(html, key=lambda c: len(c["value"]))
        return _as_html(str(best["value"]), str(best.get("type", ""))), _text(best.get("base"))
    detail = e.get("summary_detail") or {}
    return (_as_html(str(e.get("summary", "")), str(detail.get("type", "text/html"))),
            _text(detail.get("base")))


def _as_html(value: str, mime: str) -> str:
    return escape(value) if mime == "text/plain" else value


def _authors(e: Any) -> tuple[str, ...]:
    names = [a.get("name") or a.get("email") for a in e.get("authors", []) if isinstance(a, dict)]
    if not any(names) and e.get("author"):
        names = [e.get("author")]
    return tuple(dict.fromkeys(str(n).strip() for n in names if n and str(n).strip()))


def _date(e: Any, name: str, tz: ZoneInfo) -> datetime | None:
    """The entry's ``name`` date in UTC; zone-less dates are read in ``tz``."""
    # dict.get: FeedParserDict.get maps published <-> updated with a warning.
    raw = str(dict.get(e, name) or "").strip()
    parsed = dict.get(e, f"{name}_parsed")
    if not raw:
        return None
    if _is_china_cst(raw, tz):
        # "CST" from a source in China means UTC+8, not US Central as feedparser reads it.
        return _text_date(raw[:-3], tz)
    if parsed is None:
        return _text_date(raw, tz)
    as_utc = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    if _HAS_ZONE.search(raw):
        return as_utc
    # feedparser read the wall-clock time as UTC; put it back in the source's zone.
    return as_utc.replace(tzinfo=tz).astimezone(UTC)


def _is_china_cst(raw: str, tz: ZoneInfo) -> bool:
    offset = datetime(2000, 1, 1, tzinfo=tz).utcoffset()
    return raw.upper().endswith(" CST") and offset is not None and offset.total_seconds() == 8 * 3600


def _text_date(raw: str, tz: ZoneInfo) -> datetime | None:
    """An ISO 8601 or RFC 822 date feedparser could not read; zone-less ones in ``tz``."""
    raw = raw.strip()
    try:
        when = datetime.fromisoformat(raw.replace("/", "-"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.astimezone(UTC)


# --- JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1) ---------------------


def _parse_json(body: bytes, url: str, tz: ZoneInfo) -> ParsedFeed:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise EncodingError(url, "JSON body is not UTF-8") from e
    except json.JSONDecodeError as e:
        raise ParseError(url, f"invalid JSON at line {e.lineno} column {e.colno}") from e
    if not isinstance(doc, dict) or not _JSONFEED.match(str(doc.get("version", ""))):
        raise ParseError(url, "JSON, but not a JSON Feed (no jsonfeed.org version)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError(url, "JSON Feed without an items list")
    version = "json11" if str(doc["version"]).rstrip("/").endswith("1.1") else "json10"
    return ParsedFeed(
        title=str(doc.get("title", "")),
        link=_text(doc.get("home_page_url")),
        version=version,
        encoding="utf-8",
        entries=tuple(_json_item(item, tz) for item in items if isinstance(item, dict)),
    )


def _json_item(item: dict[str, Any], tz: ZoneInfo) -> ParsedEntry:
    html = item.get("content_html")
    if not isinstance(html, str):
        html = escape(str(item.get("content_text") or item.get("summary") or ""))
    authors = item.get("authors")
    if not isinstance(authors, list):
        authors = [item["author"]] if isinstance(item.get("author"), dict) else []
    attachments = item.get("attachments")
    return ParsedEntry(
        id=_text(item.get("id")),
        link=_text(item.get("url") or item.get("external_url")),
        title=str(item.get("title") or ""),
        content_html=html,
        published=_text_date(str(item["date_published"]), tz) if item.get("date_published") else None,
        updated=_text_date(str(item["date_modified"]), tz) if item.get("date_modified") else None,
        authors=tuple(str(a["name"]) for a in authors if isinstance(a, dict) and a.get("name")),
        categories=tuple(str(t) for t in item.get("tags") or [] if isinstance(t, str | int)),
        enclosures=tuple(
            Enclosure(url=str(a["url"]), type=str(a.get("mime_type", "")),
                      length=_length(a.get("size_in_bytes")))
            for a in (attachments if isinstance(attachments, list) else [])
            if isinstance(a, dict) and a.get("url")),
    )
