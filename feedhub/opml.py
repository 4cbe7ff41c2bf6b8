"""OPML in and out: move subscriptions between feedhub and other feed readers.

:func:`read_opml` reads the subscription lists readers export (OPML 1.0/2.0):
feeds are outlines with an ``xmlUrl``, whatever their ``type`` says (some
readers leave it out); folders are outlines without one, and a feed's
innermost folder becomes its feedhub category. :func:`plan_import` maps them
onto a configuration, and :func:`write_opml` exports the configured sources
grouped by category. The folder outlines written carry the category's slug in
OPML's own ``category`` attribute (``/zhengquanshibaowang``), so an export
imported elsewhere keeps its slugs.

The reader never expands entities: a document that declares any (the
"billion laughs" and external-entity attacks) is refused, and nothing is
fetched from the network.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET
from xml.parsers import expat

from feedhub.config import RESERVED_SLUGS, Config
from feedhub.edit import NewCategory, NewSource
from feedhub.errors import FeedhubError
from feedhub.model import SourceState

#: Larger OPML files are refused (a reader's export of thousands of feeds is well under).
MAX_BYTES = 10 * 1024 * 1024
#: Category of feeds that sit in no folder, unless ``--category`` says otherwise.
UNCATEGORIZED = NewCategory(slug="uncategorized", title="未分类")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_DECLARED = re.compile(rb"^\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']")
_EXPAT_ENCODINGS = {"utf-8", "utf8", "utf-16", "utf16", "us-ascii", "ascii", "iso-8859-1", "latin-1",
                    "latin1"}


class OpmlError(FeedhubError):
    """The file is not OPML feedhub can read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OpmlFeed:
    """One subscription found in an OPML file."""

    xml_url: str
    #: The name the reader shows (``text``, else ``title``), if any.
    title: str | None
    html_url: str | None
    #: Labels of the enclosing folders, outermost first.
    folders: tuple[str, ...]
    #: The innermost folder's ``category`` attribute, when it names one slug (``/slug``).
    folder_slug: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpmlDocument:
    """A parsed OPML file."""

    title: str | None
    feeds: tuple[OpmlFeed, ...]
    #: Outlines that are not feeds feedhub can follow: (what, why).
    skipped: tuple[tuple[str, str], ...] = ()


# --- reading -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    name: str
    attrs: dict[str, str]
    children: list[_Node] = field(default_factory=list)
    text: str = ""


def _refuse_entities(*_args: Any) -> None:
    raise OpmlError("the file declares XML entities; feedhub never expands them (remove the "
                    "<!DOCTYPE …> part)")


def _refuse_external(_context: str, _base: str | None, _system_id: str | None,
                     _public_id: str | None) -> int:
    _refuse_entities()
    return 0


def _parse_xml(data: bytes) -> _Node:
    if len(data) > MAX_BYTES:
        raise OpmlError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    declared = _DECLARED.match(data)
    encoding = declared.group(1).decode("ascii").lower() if declared else None
    if encoding and encoding not in _EXPAT_ENCODINGS:
        # Expat reads only UTF-8/16 and Latin-1; decode other charsets (GBK …) here.
        try:
            text = data.decode(encoding)
        except (LookupError, UnicodeDecodeError) as e:
            raise OpmlError(f"cannot decode the file as its declared {encoding} ({e})") from None
        parser = expat.ParserCreate(encoding="utf-8")
        payload: bytes = text.encode("utf-8")
    else:
        parser = expat.ParserCreate()
        payload = data
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.EntityDeclHandler = _refuse_entities
    parser.UnparsedEntityDeclHandler = _refuse_entities
    parser.ExternalEntityRefHandler = _refuse_external
    root = _Node("", {})
    stack = [root]

    def start(name: str, attrs: dict[str, str]) -> None:
        node = _Node(name, attrs)
        stack[-1].children.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        stack[-1].text += text

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(payload, True)
    except expat.ExpatError as e:
        raise OpmlError(f"not well-formed XML ({e})") from None
    if len(root.children) != 1:
        raise OpmlError("not an XML document")
    return root.children[0]


def _attr(node: _Node, name: str) -> str | None:
    """An attribute by name, ignoring case (``xmlUrl``, ``xmlurl`` …); stripped, or None."""
    wanted = name.lower()
    for key, value in node.attrs.items():
        if key.lower() == wanted and value.strip():
            return value.strip()
    return None


def _slug_attr(node: _Node) -> str | None:
    value = _attr(node, "category")
    if value and value.startswith("/") and "," not in value and _SLUG.match(value[1:]):
        return value[1:]
    return None


def read_opml(data: bytes) -> OpmlDocument:
    """The subscriptions of an OPML file.

    Raises:
        OpmlError: not well-formed, not OPML, too large, or declaring entities.
    """
    root = _parse_xml(data)
    if root.name.lower() != "opml":
        raise OpmlError(f"the root element is <{root.name}>, not <opml>")
    head = next((c for c in root.children if c.name == "head"), None)
    body = next((c for c in root.children if c.name == "body"), None)
    if body is None:
        raise OpmlError("no <body> element")
    title_node = next((c for c in head.children if c.name == "title"), None) if head else None
    feeds: list[OpmlFeed] = []
    skipped: list[tuple[str, str]] = []

    def walk(node: _Node, folders: tuple[str, ...], folder_slug: str | None) -> None:
        for child in node.children:
            if child.name != "outline":
                continue
            label = _attr(child, "text") or _attr(child, "title")
            xml_url = _attr(child, "xmlUrl")
            html_url = _attr(child, "htmlUrl")
            if xml_url:
                feeds.append(OpmlFeed(xml_url=xml_url, title=label, html_url=html_url,
                                      folders=folders, folder_slug=folder_slug))
                walk(child, folders, folder_slug)
            elif any(c.name == "outline" for c in child.children):
                walk(child, (*folders, label or "?"), _slug_attr(child))
            elif html_url:
                skipped.append((f"{label or html_url} ({html_url})",
                                f"a web page without a feed address: try feedhub add {html_url}"))
            elif label and _attr(child, "type") not in (None, "rss", "atom"):
                skipped.append((label, f"an outline of type {_attr(child, 'type')!r}, not a feed"))

    walk(body, (), None)
    title = title_node.text.strip() if title_node is not None and title_node.text.strip() else None
    return OpmlDocument(title=title, feeds=tuple(feeds), skipped=tuple(skipped))


# --- mapping onto feeds.yaml -------------------------------------------------------------------


def slugify(label: str) -> str:
    """A category slug for a folder label.

    ASCII labels become lower-case words joined by ``-`` (``Tech News`` →
    ``tech-news``). Others — Chinese ones, say: no transliteration is bundled —
    get a stable ``cat-`` plus 8 hex digits of the label's SHA-1, the same on
    every import.
    """
    text = label.strip()
    if text.isascii():
        slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64].strip("-")
        if slug and _SLUG.match(slug) and slug not in RESERVED_SLUGS:
            return slug
    return "cat-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportPlan:
    """What importing an OPML file would change in feeds.yaml."""

    categories: tuple[NewCategory, ...]
    #: Sources to add, with the folder path they came from.
    sources: tuple[tuple[NewSource, tuple[str, ...]], ...]
    #: (what, why) for each outline left out.
    skipped: tuple[tuple[str, str], ...]

    def by_category(self) -> Iterator[tuple[str, list[NewSource]]]:
        """The sources to add, grouped by category slug, in first-seen order."""
        groups: dict[str, list[NewSource]] = {}
        for source, _ in self.sources:
            groups.setdefault(source.category, []).append(source)
        yield from groups.items()


def plan_import(doc: OpmlDocument, config: Config, *, category: str | None = None,
                label: str | None = None) -> ImportPlan:
    """Map an OPML file's feeds and folders onto ``config``'s sources and categories.

    With ``category``, every feed goes there (created, titled ``label`` or the slug,
    if it does not exist). Otherwise a feed's innermost folder picks its category:
    the slug an export recorded, else an existing category titled like the folder
    (or whose slug it is), else a new one (:func:`slugify`); feeds in no folder go
    to :data:`UNCATEGORIZED`. Feeds already configured, listed twice or without an
    http(s) address are skipped.
    """
    new_categories: dict[str, NewCategory] = {}
    by_title = {c.title.strip(): c.slug for c in config.categories.values()}

    def ensure(slug: str, title: str) -> str:
        if slug not in config.categories and slug not in new_categories:
            new_categories[slug] = NewCategory(slug=slug, title=title)
        return slug

    def category_for(feed: OpmlFeed) -> str:
        if category is not None:
            return ensure(category, label or category)
        if not feed.folders:
            return ensure(UNCATEGORIZED.slug, UNCATEGORIZED.title)
        folder = feed.folders[-1].strip()
        if feed.folder_slug is not None:
            return ensure(feed.folder_slug, folder)
        if folder in by_title:
            return by_title[folder]
        if folder in config.categories:
            return folder
        for made in new_categories.values():
            if made.title == folder:
                return made.slug
        slug, n = slugify(folder), 2
        base = slug
        while slug in config.categories or slug in new_categories:
            slug, n = f"{base}-{n}"[:64], n + 1
        return ensure(slug, folder)

    configured = {s.url for s in config.sources}
    seen: set[str] = set()
    sources: list[tuple[NewSource, tuple[str, ...]]] = []
    skipped = list(doc.skipped)
    for feed in doc.feeds:
        url = feed.xml_url
        what = f"{feed.title} ({url})" if feed.title and feed.title != url else url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            skipped.append((what, "not an http(s) feed address"))
        elif url in configured:
            skipped.append((what, "already in feeds.yaml"))
        elif url in seen:
            skipped.append((what, "listed twice in the file"))
        else:
            seen.add(url)
            name = feed.title if feed.title and feed.title != url else None
            sources.append((NewSource(url=url, category=category_for(feed), name=name),
                            feed.folders))
    return ImportPlan(categories=tuple(new_categories.values()), sources=tuple(sources),
                      skipped=tuple(skipped))


# --- writing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportFeed:
    """One source as an OPML outline."""

    xml_url: str
    title: str
    html_url: str | None = None


Group = tuple[str, str, Sequence[ExportFeed]]


def export_groups(config: Config, states: Mapping[str, SourceState],
                  slug: str | None = None) -> list[Group]:
    """The configured sources (of one category, or all) as ``(slug, label, feeds)`` groups;
    feed titles and home pages come from the stored states when the sources were polled."""
    groups: list[Group] = []
    for category in config.categories.values():
        if slug is not None and category.slug != slug:
            continue
        feeds = []
        for source in config.sources_in(category.slug):
            st = states.get(source.url)
            feeds.append(ExportFeed(xml_url=source.url,
                                    title=source.name or (st.feed_title if st else None) or source.url,
                                    html_url=st.feed_link if st else None))
        if feeds:
            groups.append((category.slug, category.title, feeds))
    return groups


def write_opml(*, title: str, groups: Sequence[Group],
               created: datetime | None = None, owner: Mapping[str, str] | None = None) -> bytes:
    """OPML 2.0 with one folder per ``(slug, label, feeds)`` group, in order."""
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = title
    if created is not None:
        ET.SubElement(head, "dateCreated").text = format_datetime(created)
    for key, value in (owner or {}).items():
        ET.SubElement(head, key).text = value
    body = ET.SubElement(opml, "body")
    for slug, label, feeds in groups:
        folder = ET.SubElement(body, "outline", text=label, title=label, category=f"/{slug}")
        for feed in feeds:
            attrs = {"type": "rss", "text": feed.title, "title": feed.title, "xmlUrl": feed.xml_url}
            if feed.html_url:
                attrs["htmlUrl"] = feed.html_url
            ET.SubElement(folder, "outline", attrs)
    ET.indent(opml, space="  ")
    return bytes(ET.tostring(opml, encoding="utf-8", xml_declaration=True)) + b"\n"
