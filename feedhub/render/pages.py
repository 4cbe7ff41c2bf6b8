"""The HTML home and category pages (Jinja2, autoescaped) and the OPML list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from feedhub import __version__
from feedhub.model import StoredEntry
from feedhub.sanitize import clean_text

#: (extension, media type, button label) of each republished format.
FORMATS = (("atom", "application/atom+xml", "Atom"), ("rss", "application/rss+xml", "RSS"),
           ("json", "application/feed+json", "JSON Feed"))
SUMMARY_CHARS = 120


@dataclass(frozen=True, slots=True, kw_only=True)
class PageSection:
    """One category as a page shows it."""

    slug: str
    title: str
    description: str
    entries: Sequence[StoredEntry]


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchLink:
    """A saved search's feed (``/feeds/q/{name}.*``) as pages and the OPML list it."""

    name: str
    title: str
    query: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Link:
    url: str
    mime: str
    name: str
    title: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Item:
    title: str
    link: str | None
    source: str
    when: str
    iso: str
    summary: str


@cache
def _environment() -> Environment:
    return Environment(loader=PackageLoader("feedhub", "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True),
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _links(base_url: str, slug: str, title: str) -> list[_Link]:
    return [_Link(url=f"{base_url}feeds/{slug}.{ext}", mime=mime, name=name,
                  title=f"{title} ({name})") for ext, mime, name in FORMATS]


def _summary(html: str) -> str:
    # A space after each paragraph, so their sentences do not run together.
    text = clean_text(html.replace("</p>", "</p> "))
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS].rstrip() + "…"


def _items(entries: Sequence[StoredEntry], tz: ZoneInfo, sources: Mapping[str, str],
           summaries: bool) -> list[_Item]:
    return [_Item(title=e.title, link=e.link, source=sources.get(e.source_url, ""),
                  when=e.published.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                  iso=e.published.astimezone(tz).isoformat(),
                  summary=_summary(e.content_html) if summaries else "") for e in entries]


def _section(s: PageSection, base_url: str, tz: ZoneInfo, sources: Mapping[str, str],
             summaries: bool) -> dict[str, object]:
    return {"title": s.title, "description": s.description,
            "page": f"{base_url}category/{s.slug}.html", "links": _links(base_url, s.slug, s.title),
            "entries": _items(s.entries, tz, sources, summaries)}


def _opml_link(base_url: str) -> _Link:
    return _Link(url=f"{base_url}opml.xml", mime="text/x-opml", name="OPML", title="OPML")


def render_home(*, site_title: str, base_url: str, tz: ZoneInfo, sections: Sequence[PageSection],
                sources: Mapping[str, str], searches: Sequence[SearchLink] = ()) -> bytes:
    """The home page: every category, its latest entries and subscribe buttons, then the
    saved searches' feeds."""
    all_links = _links(base_url, "all", site_title)
    feeds = all_links + [link for s in sections for link in _links(base_url, s.slug, s.title)]
    html = _environment().get_template("home.html").render(
        version=__version__, site_title=site_title, base_url=base_url, feeds=feeds,
        all_links=[*all_links, _opml_link(base_url)],
        sections=[_section(s, base_url, tz, sources, False) for s in sections],
        searches=[{"title": q.title, "query": q.query,
                   "links": _links(base_url, f"q/{q.name}", q.title)} for q in searches])
    return html.encode("utf-8")


def render_category_page(*, site_title: str, base_url: str, tz: ZoneInfo, section: PageSection,
                         sources: Mapping[str, str]) -> bytes:
    """One category's page: its entries with summaries, and subscribe buttons."""
    html = _environment().get_template("category.html").render(
        version=__version__, site_title=site_title, base_url=base_url,
        feeds=_links(base_url, section.slug, section.title),
        section=_section(section, base_url, tz, sources, True))
    return html.encode("utf-8")


def render_opml(*, site_title: str, base_url: str, sections: Sequence[PageSection],
                searches: Sequence[SearchLink] = (), health: str | None = None) -> bytes:
    """OPML 2.0 listing every republished feed, for readers to import in one go.

    ``health``: the title of the health feed (``feeds/_health.atom``), listed last.
    """
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = site_title
    body = ET.SubElement(opml, "body")
    feeds = [("all", site_title)] + [(s.slug, s.title) for s in sections]
    for slug, title in feeds:
        ET.SubElement(body, "outline", type="rss", text=title, title=title,
                      xmlUrl=f"{base_url}feeds/{slug}.atom",
                      htmlUrl=f"{base_url}category/{slug}.html" if slug != "all" else base_url)
    for search in searches:
        ET.SubElement(body, "outline", type="rss", text=search.title, title=search.title,
                      xmlUrl=f"{base_url}feeds/q/{search.name}.atom", htmlUrl=base_url)
    if health is not None:
        ET.SubElement(body, "outline", type="rss", text=health, title=health,
                      xmlUrl=f"{base_url}feeds/_health.atom", htmlUrl=base_url)
    ET.indent(opml)
    text: bytes = ET.tostring(opml, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
