"""Atom 1.0 and RSS 2.0 (feedgen) and JSON Feed 1.1 for one merged feed.

Output is deterministic: the same entries give the same bytes (and so the same
ETag), whenever they are rendered. Every entry is tagged with its category's
label and names the source it came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from feedhub import __version__
from feedhub.model import StoredEntry
from feedhub.urls import derived_id, is_absolute_iri

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JSONFEED_VERSION = "https://jsonfeed.org/version/1.1"
#: RFC 5005 feed history namespace.
FH_NS = "http://purl.org/syndication/history/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveLinks:
    """RFC 5005 links of a subscription document or an archive page."""

    #: The subscription document (rel="current"); ``None`` on the subscription document.
    current: str | None
    #: The next older archive page (rel="prev-archive").
    prev_archive: str | None
    #: The next newer archive page (rel="next-archive").
    next_archive: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceInfo:
    """How a republished entry names where it came from."""

    url: str
    title: str
    link: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedSpec:
    """Everything about one merged feed except its entries."""

    #: URL path stem, e.g. ``feeds/zhengquanshibaowang`` (``.atom``/``.rss``/``.json`` added).
    stem: str
    title: str
    description: str
    #: The HTML page of this feed (home page or category page), absolute.
    home_url: str
    base_url: str
    timezone: ZoneInfo
    #: Label of the category each entry belongs to, by source URL.
    labels: Mapping[str, str]
    sources: Mapping[str, SourceInfo]
    #: WebSub hubs announced with rel="hub".
    hubs: tuple[str, ...] = ()
    archive: ArchiveLinks | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Item:
    """An entry with the ids it goes out with, decided once for every format."""

    entry: StoredEntry
    atom_id: str
    rss_guid: str
    rss_guid_is_permalink: bool
    labels: tuple[str, ...]
    source: SourceInfo


def _items(spec: FeedSpec, entries: Sequence[StoredEntry]) -> list[_Item]:
    items: list[_Item] = []
    atom_ids: set[str] = set()
    guids: set[str] = set()
    for e in entries:
        # An original id that is not an IRI (an RSS guid such as NW2022…) becomes a
        # urn:uuid derived from it; RSS keeps the guid as it was. (Derived only when
        # needed: uuid5 is a tenth of rendering an entry.)
        atom_id = e.guid if e.guid and is_absolute_iri(e.guid) else None if e.guid else e.link or None
        if atom_id is None or atom_id in atom_ids:
            atom_id = derived_id(e.source_url, e.key)
        guid, permalink = (e.guid, e.guid == e.link) if e.guid else (e.link or None, bool(e.link))
        if guid is None or guid in guids:
            guid, permalink = derived_id(e.source_url, e.key), False
        atom_ids.add(atom_id)
        guids.add(guid)
        label = spec.labels.get(e.source_url)
        own = [c for c in e.categories if c != label]
        source = spec.sources.get(e.source_url) or SourceInfo(url=e.source_url, title=e.source_url,
                                                              link=None)
        items.append(_Item(entry=e, atom_id=atom_id, rss_guid=guid,
                           rss_guid_is_permalink=permalink,
                           labels=((label,) if label else ()) + tuple(own), source=source))
    return items


def _updated(entries: Sequence[StoredEntry]) -> datetime:
    return max((e.updated for e in entries), default=_EPOCH)


def _local(when: datetime, tz: ZoneInfo) -> datetime:
    """``when`` in the site's zone, to the second, as dates go out."""
    return when.astimezone(tz).replace(microsecond=0)


class _SourceExtension:
    """feedgen entry extension writing a full Atom ``<source>`` and RSS ``<source url>``.

    feedgen itself can only give an Atom ``<source>`` a title and a link.
    """

    def __init__(self) -> None:
        self.info: SourceInfo | None = None
        self.updated: datetime | None = None

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_atom(self, entry: Any) -> Any:
        if self.info is None:
            return entry
        source = xml_elem("source", entry)
        xml_elem("id", source).text = self.info.url
        xml_elem("title", source).text = self.info.title
        xml_elem("link", source, rel="self", href=self.info.url)
        if self.info.link:
            xml_elem("link", source, rel="alternate", type="text/html", href=self.info.link)
        if self.updated is not None:
            xml_elem("updated", source).text = self.updated.isoformat()
        return entry

    def extend_rss(self, item: Any) -> Any:
        if self.info is not None:
            xml_elem("source", item, url=self.info.url).text = self.info.title
        return item


class _FeedExtension:
    """feedgen feed extension: ``<fh:archive/>`` on archive pages, hub links in RSS."""

    def __init__(self) -> None:
        self.spec: FeedSpec | None = None

    def extend_ns(self) -> dict[str, str]:
        if self.spec is not None and self.spec.archive and self.spec.archive.current:
            return {"fh": FH_NS}
        return {}

    def extend_atom(self, feed: Any) -> Any:
        if self.spec is not None and self.spec.archive and self.spec.archive.current:
            xml_elem(f"{{{FH_NS}}}archive", feed)
        return feed

    def extend_rss(self, feed: Any) -> Any:
        channel = feed.find("channel")
        for hub in self.spec.hubs if self.spec is not None else ():
            xml_elem(f"{{{ATOM_NS}}}link", channel, rel="hub", href=hub)
        return feed


def _generator(spec: FeedSpec, entries: Sequence[StoredEntry], fmt: str) -> FeedGenerator:
    tz = spec.timezone
    fg = FeedGenerator()
    fg.id(f"{spec.base_url}{spec.stem}.atom")
    fg.title(spec.title)
    fg.subtitle(spec.description or spec.title)
    fg.description(spec.description or spec.title)
    # feedgen takes the RSS <link> from the last link given: the HTML page.
    fg.link(href=f"{spec.base_url}{spec.stem}.{fmt}", rel="self")
    if fmt == "atom":
        for hub in spec.hubs:
            fg.link(href=hub, rel="hub")
        archive = spec.archive
        for rel, href in (("current", archive.current if archive else None),
                          ("prev-archive", archive.prev_archive if archive else None),
                          ("next-archive", archive.next_archive if archive else None)):
            if href:
                fg.link(href=href, rel=rel)
    fg.link(href=spec.home_url, rel="alternate")
    fg.updated(_local(_updated(entries), tz))
    fg.lastBuildDate(_local(_updated(entries), tz))
    fg.generator("feedhub", version=__version__)
    fg.docs("https://www.rssboard.org/rss-specification")
    if fmt == "rss":
        fg.load_extension("dc", atom=False, rss=True)
    # feedgen prepends entries; add oldest first so the document reads newest first.
    for item in reversed(_items(spec, entries)):
        e = item.entry
        fe = fg.add_entry()
        fe.register_extension("feedhub_source", _SourceExtension, atom=True, rss=True)
        fe.feedhub_source.info = item.source
        fe.feedhub_source.updated = _local(e.updated, tz)
        fe.title(e.title)
        if fmt == "atom":
            fe.id(item.atom_id)
        else:
            fe.guid(item.rss_guid, permalink=item.rss_guid_is_permalink)
        if e.link:
            fe.link(href=e.link, rel="alternate")
        fe.published(_local(e.published, tz))
        fe.updated(_local(e.updated, tz))
        if fmt == "atom":
            fe.content(e.content_html or e.title, type="html")
            for name in e.authors:
                fe.author(name=name)
        else:
            fe.description(e.content_html or e.title)
            for name in e.authors:
                fe.dc.dc_creator(name, replace=False)
        for label in item.labels:
            fe.category(term=label, label=label)
        for enc in e.enclosures[:1] if fmt == "rss" else e.enclosures:
            length = str(enc.length or 0)
            if fmt == "rss":
                fe.enclosure(enc.url, length, enc.type or "application/octet-stream")
            else:
                fe.link(href=enc.url, rel="enclosure", type=enc.type or None,
                        length=length if enc.length else None)
    # Registered after the entries: feedgen would otherwise want an entry class too.
    fg.register_extension("feedhub_feed", _FeedExtension, atom=True, rss=True)
    fg.feedhub_feed.spec = spec
    return fg


def render_atom(spec: FeedSpec, entries: Sequence[StoredEntry]) -> bytes:
    """Atom 1.0 (RFC 4287) of ``entries``, newest first as given."""
    body: bytes = _generator(spec, entries, "atom").atom_str(pretty=True, encoding="UTF-8")
    return body


def render_rss(spec: FeedSpec, entries: Sequence[StoredEntry]) -> bytes:
    """RSS 2.0 of ``entries``, newest first as given."""
    body: bytes = _generator(spec, entries, "rss").rss_str(pretty=True, encoding="UTF-8")
    return body


def render_json(spec: FeedSpec, entries: Sequence[StoredEntry]) -> bytes:
    """JSON Feed 1.1 of ``entries``, newest first as given."""
    tz = spec.timezone
    items: list[dict[str, Any]] = []
    for item in _items(spec, entries):
        e = item.entry
        out: dict[str, Any] = {"id": item.rss_guid}
        if e.link:
            out["url"] = e.link
        out["title"] = e.title
        out["content_html"] = e.content_html
        out["date_published"] = _local(e.published, tz).isoformat()
        out["date_modified"] = _local(e.updated, tz).isoformat()
        if e.authors:
            out["authors"] = [{"name": name} for name in e.authors]
        out["tags"] = list(item.labels)
        if e.enclosures:
            out["attachments"] = [
                {"url": x.url, "mime_type": x.type or "application/octet-stream",
                 **({"size_in_bytes": x.length} if x.length else {})} for x in e.enclosures]
        out["_feedhub"] = {"source": {"url": item.source.url, "title": item.source.title}}
        items.append(out)
    doc = {
        "version": JSONFEED_VERSION,
        "title": spec.title,
        "home_page_url": spec.home_url,
        "feed_url": f"{spec.base_url}{spec.stem}.json",
        "description": spec.description or spec.title,
        **({"hubs": [{"type": "WebSub", "url": hub} for hub in spec.hubs]} if spec.hubs else {}),
        "items": items,
    }
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
