"""Entries read off an HTML page that has no feed (a source's ``scrape:`` rules).

The page is parsed with lxml's HTML parser (forgiving, as browsers are), each
element the ``item`` selector matches becomes one entry: its title and link
from the selectors within it, relative links resolved against the page, the
resolved link as the entry's identity, and dates, as Chinese news sites write
them (``2022-05-06 15:47``, ``2022年05月06日``), read in the source's time zone.
The result is a :class:`ParsedFeed`, so normalizing, storing and rendering
treat a scraped page like any feed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

from lxml import etree, html

from feedhub.decode import html_text
from feedhub.errors import ParseError
from feedhub.model import ParsedEntry, ParsedFeed
from feedhub.selectors import ScrapeRules, Selector

#: Year, month, day (``-``, ``/``, ``.`` or 年月日) and an optional time of day.
_DATE = re.compile(r"(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
                   r"(?:[\sT]*(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?")
#: HTML's own whitespace: an ideographic space (U+3000) in a Chinese title is text.
_SPACE = re.compile(r"[ \t\n\r\f]+")


def scrape(body: bytes, *, url: str, headers: Mapping[str, str], rules: ScrapeRules,
           timezone: ZoneInfo, encoding: str | None = None) -> ParsedFeed:
    """The entries ``rules`` find on the page ``body`` fetched from ``url``.

    Raises:
        ParseError: not an HTML page, or the ``item`` selector matched nothing (a
            page whose layout changed must not read as "no new entries").
    """
    text = html_text(body, headers.get("content-type", ""), encoding)
    try:
        root = html.document_fromstring(text)
    except (etree.ParserError, ValueError) as e:
        raise ParseError(url, f"not an HTML page ({e})") from None
    base = _base_url(root, url)
    items = _select(root, rules.item)
    if not items:
        raise ParseError(url, f"scrape.item {rules.item.text!r} matched nothing on the page: "
                              "has its layout changed? (try feedhub preview)")
    entries = []
    for item in items:
        link = _value(item, rules.link)
        title = _value(item, rules.title)
        if not link or not title:
            continue  # a separator, an advertisement: not an entry
        absolute = urljoin(base, link)
        summary = _outer_html(item, rules.summary) if rules.summary else ""
        when = _date(_value(item, rules.date), timezone) if rules.date else None
        entries.append(ParsedEntry(id=absolute, link=absolute, title=title, content_html=summary,
                                   published=when, updated=None, content_base=base))
    if not entries:
        raise ParseError(url, f"scrape.item {rules.item.text!r} matched {len(items)} elements, "
                              f"but none had both a title ({rules.title.text!r}) and a link "
                              f"({rules.link.text!r})")
    title_element = root.find(".//title")
    page_title = _SPACE.sub(" ", title_element.text_content()).strip() \
        if title_element is not None else ""
    return ParsedFeed(title=page_title, link=url, version="html", encoding="utf-8",
                      entries=tuple(entries))


def _select(context: html.HtmlElement, selector: Selector) -> list[html.HtmlElement]:
    found = context.xpath(selector.xpath)
    return [e for e in found if isinstance(e, html.HtmlElement)]


def _value(item: html.HtmlElement, selector: Selector | None) -> str:
    """The first match's attribute (``a@href``) or whitespace-collapsed text; ``""`` if none."""
    if selector is None:
        return ""
    for element in _select(item, selector):
        raw = element.get(selector.attribute) if selector.attribute else element.text_content()
        if raw and (value := _SPACE.sub(" ", raw).strip()):
            return value
    return ""


def _outer_html(item: html.HtmlElement, selector: Selector) -> str:
    found = _select(item, selector)
    if not found:
        return ""
    if selector.attribute:
        return escape(str(found[0].get(selector.attribute) or ""))
    return "".join(html.tostring(e, encoding="unicode") for e in found[:1])


def _base_url(root: html.HtmlElement, url: str) -> str:
    base = root.find(".//base[@href]")
    return urljoin(url, base.get("href")) if base is not None else url


def _date(text: str, timezone: ZoneInfo) -> datetime | None:
    """A date as listing pages write it, in the source's time zone, as UTC; ``None`` if none."""
    match = _DATE.search(text)
    if match is None:
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    try:
        local = datetime(parts["y"], parts["m"], parts["d"], parts.get("H", 0), parts.get("M", 0),
                         parts.get("S", 0), tzinfo=timezone)
    except ValueError:
        return None
    return local.astimezone(UTC)
