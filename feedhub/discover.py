"""Find the feeds behind a URL, for ``feedhub add``.

A URL that is a feed is checked by fetching and parsing it, exactly as a poll
would. A URL that is an HTML page is searched for the feeds it announces
(``<link rel="alternate">`` with a feed type, as browsers and readers
autodiscover them); a page that announces none is probed at the paths where
feeds usually live (``/feed``, ``/rss``, ``/atom.xml``, ``/index.xml`` …). Each
candidate is fetched and parsed: only real feeds are offered.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

from feedhub.decode import html_text
from feedhub.errors import SourceError
from feedhub.fetch import Fetcher
from feedhub.model import FetchResult, FetchStatus, ParsedFeed
from feedhub.parse import parse

#: ``type`` values of ``<link rel="alternate">`` that announce a feed.
FEED_TYPES = frozenset({
    "application/rss+xml", "application/atom+xml", "application/feed+json",
    "application/rdf+xml", "application/xml", "text/xml", "application/json"})
#: Where feeds usually live, tried (against the site root and the page's folder) when a
#: page announces none.
COMMON_PATHS = ("feed", "rss", "atom.xml", "index.xml", "feed.xml", "rss.xml", "feed/", "atom")
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>]|head[\s>])", re.I | re.S)


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """One URL fetched and, if it is a feed, parsed."""

    #: The URL as asked for.
    url: str
    fetched: FetchResult
    feed: ParsedFeed | None = None
    #: Why it is not a usable feed.
    error: str | None = None
    #: The title the page's ``<link>`` gave it, if it was announced.
    announced_title: str | None = None

    @property
    def feed_url(self) -> str:
        """The URL to subscribe to: where a permanent redirect points, else the URL asked for."""
        return self.fetched.moved_to or self.url

    @property
    def title(self) -> str:
        """The feed's own title, else the announced one, else its URL."""
        return (self.feed.title if self.feed and self.feed.title else None) \
            or self.announced_title or self.feed_url


@dataclass(frozen=True, slots=True, kw_only=True)
class Discovery:
    """What a URL led to."""

    #: The URL itself, fetched.
    start: Probe
    #: The feeds found (the URL itself when it is one), in the page's order.
    feeds: tuple[Probe, ...]
    #: Every candidate tried on an HTML page, feeds or not.
    tried: tuple[Probe, ...] = ()

    @property
    def page(self) -> bool:
        """Whether the URL was an HTML page rather than a feed."""
        return bool(self.tried) or _is_html(self.start.fetched)


class _AlternateLinks(HTMLParser):
    """Collects ``<base href>`` and feed ``<link rel="alternate">`` of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and attr.get("href") and self.base is None:
            self.base = attr["href"].strip()
        elif tag == "link":
            rel = attr.get("rel", "").lower().split()
            kind = attr.get("type", "").split(";")[0].strip().lower()
            href = attr.get("href", "").strip()
            if "alternate" in rel and kind in FEED_TYPES and href:
                self.links.append((href, attr.get("title", "").strip() or None))


def alternate_links(html: bytes, page_url: str, content_type: str = "") -> list[tuple[str, str | None]]:
    """Absolute URLs (and titles) of the feeds an HTML page announces, in order, deduplicated."""
    parser = _AlternateLinks()
    parser.feed(html_text(html, content_type))
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    seen: set[str] = set()
    found: list[tuple[str, str | None]] = []
    for href, title in parser.links:
        url = urljoin(base, href)
        if urlsplit(url).scheme in ("http", "https") and url not in seen:
            seen.add(url)
            found.append((url, title))
    return found


def common_urls(page_url: str) -> list[str]:
    """The usual feed locations for a page: under the site root, then under its folder."""
    parts = urlsplit(page_url)
    root = f"{parts.scheme}://{parts.netloc}/"
    folder = urljoin(page_url, ".")
    bases = [root] if folder == root else [root, folder]
    urls: list[str] = []
    for base in bases:
        for path in COMMON_PATHS:
            url = urljoin(base, path)
            if url not in urls and url != page_url:
                urls.append(url)
    return urls


async def probe(fetcher: Fetcher, url: str, timezone: ZoneInfo, *, encoding: str | None = None,
                announced_title: str | None = None) -> Probe:
    """Fetch ``url`` and parse it as a poll would; failures are in the result."""
    fetched = await fetcher.fetch(url)
    if fetched.status is not FetchStatus.OK:
        return Probe(url=url, fetched=fetched, error=fetched.error or fetched.status.value,
                     announced_title=announced_title)
    try:
        feed = await asyncio.to_thread(parse, fetched.body, url=fetched.url, headers=fetched.headers,
                                       timezone=timezone, encoding=encoding)
    except SourceError as e:
        return Probe(url=url, fetched=fetched, error=e.message, announced_title=announced_title)
    return Probe(url=url, fetched=fetched, feed=feed, announced_title=announced_title)


async def discover(fetcher: Fetcher, url: str, timezone: ZoneInfo, *,
                   encoding: str | None = None) -> Discovery:
    """The feeds at ``url``: itself if it is one, else those its HTML page leads to."""
    start = await probe(fetcher, url, timezone, encoding=encoding)
    if start.feed is not None or not _is_html(start.fetched):
        return Discovery(start=start, feeds=(start,) if start.feed is not None else ())
    page_url = start.fetched.url
    links = alternate_links(start.fetched.body, page_url, start.fetched.headers.get("content-type", ""))
    if links:
        tried = await asyncio.gather(*(probe(fetcher, link, timezone, encoding=encoding,
                                             announced_title=title) for link, title in links))
    else:
        tried = await asyncio.gather(*(probe(fetcher, guess, timezone, encoding=encoding)
                                       for guess in common_urls(page_url)))
    feeds: list[Probe] = []
    for candidate in tried:
        if candidate.feed is not None and all(f.feed_url != candidate.feed_url for f in feeds):
            feeds.append(candidate)
    return Discovery(start=start, feeds=tuple(feeds), tried=tuple(tried))


def _is_html(fetched: FetchResult) -> bool:
    kind = fetched.headers.get("content-type", "").split(";")[0].strip().lower()
    return bool(fetched.body) and (kind in ("text/html", "application/xhtml+xml")
                                   or _HTML_START.match(fetched.body[:4096]) is not None)
