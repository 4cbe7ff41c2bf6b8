"""The HTML home and category pages (with feed autodiscovery) and the OPML list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from feedhub.model import StoredEntry

FORMATS = (("atom", "application/atom+xml", "Atom"), ("rss", "application/rss+xml", "RSS"),
           ("json", "application/feed+json", "JSON Feed"))

_STYLE = """body{font:16px/1.6 system-ui,"PingFang SC","Microsoft YaHei",sans-serif;max-width:46rem;
margin:2rem auto;padding:0 1rem;color:#222}a{color:#0645ad}h2{margin-top:2rem}
ul{padding-left:1.2rem}.meta{color:#666;font-size:.85em}.subscribe a{margin-right:.6rem}"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PageSection:
    """One category as a page shows it."""

    slug: str
    title: str
    description: str
    entries: Sequence[StoredEntry]


def _feed_links(base_url: str, slug: str, title: str) -> str:
    return "\n".join(
        f'<link rel="alternate" type="{mime}" title="{escape(title)} ({name})" '
        f'href="{escape(base_url)}feeds/{slug}.{ext}">' for ext, mime, name in FORMATS)


def _subscribe(base_url: str, slug: str) -> str:
    links = " ".join(f'<a href="{escape(base_url)}feeds/{slug}.{ext}">{name}</a>'
                     for ext, _, name in FORMATS)
    return f'<p class="subscribe">订阅 / Subscribe: {links}</p>'


def _entry_list(entries: Sequence[StoredEntry], tz: ZoneInfo, sources: dict[str, str]) -> str:
    rows = []
    for e in entries:
        when = e.published.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        title = escape(e.title)
        link = f'<a href="{escape(e.link)}">{title}</a>' if e.link else title
        source = escape(sources.get(e.source_url, ""))
        rows.append(f'<li>{link} <span class="meta">{when} · {source}</span></li>')
    return "<ul>\n" + "\n".join(rows) + "\n</ul>" if rows else "<p>暂无内容 / No entries yet.</p>"


def _page(title: str, head_links: str, body: str) -> bytes:
    return (f'<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n{head_links}\n<style>{_STYLE}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n").encode()


def render_home(*, site_title: str, base_url: str, tz: ZoneInfo, sections: Sequence[PageSection],
                sources: dict[str, str]) -> bytes:
    """The home page: every category, its latest entries and subscribe links."""
    parts = [f"<h1>{escape(site_title)}</h1>", _subscribe(base_url, "all"),
             f'<p><a href="{escape(base_url)}opml.xml">OPML</a></p>']
    for s in sections:
        parts.append(f'<h2><a href="{escape(base_url)}category/{s.slug}.html">{escape(s.title)}</a></h2>')
        if s.description:
            parts.append(f"<p>{escape(s.description)}</p>")
        parts.append(_subscribe(base_url, s.slug))
        parts.append(_entry_list(s.entries, tz, sources))
    head = _feed_links(base_url, "all", site_title) + "\n" + "\n".join(
        _feed_links(base_url, s.slug, s.title) for s in sections)
    return _page(site_title, head, "\n".join(parts))


def render_category_page(*, site_title: str, base_url: str, tz: ZoneInfo, section: PageSection,
                         sources: dict[str, str]) -> bytes:
    """One category's page: its entries and subscribe links."""
    body = "\n".join([
        f'<p><a href="{escape(base_url)}">{escape(site_title)}</a></p>',
        f"<h1>{escape(section.title)}</h1>",
        f"<p>{escape(section.description)}</p>" if section.description else "",
        _subscribe(base_url, section.slug),
        _entry_list(section.entries, tz, sources),
    ])
    return _page(f"{section.title} · {site_title}",
                 _feed_links(base_url, section.slug, section.title), body)


def render_opml(*, site_title: str, base_url: str, sections: Sequence[PageSection]) -> bytes:
    """OPML 2.0 listing every republished feed, for readers to import in one go."""
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = site_title
    body = ET.SubElement(opml, "body")
    feeds = [("all", site_title)] + [(s.slug, s.title) for s in sections]
    for slug, title in feeds:
        ET.SubElement(body, "outline", type="rss", text=title, title=title,
                      xmlUrl=f"{base_url}feeds/{slug}.atom",
                      htmlUrl=f"{base_url}category/{slug}.html" if slug != "all" else base_url)
    ET.indent(opml)
    text: bytes = ET.tostring(opml, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
