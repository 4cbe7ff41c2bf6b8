"""render(store, config) on a real SQLite store: Atom, RSS, JSON Feed, pages and OPML."""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from lxml import etree

from feedhub.config import Config, load_config
from feedhub.model import Document, Entry, SourceState
from feedhub.render.site import render
from feedhub.store import Store, open_store
from feedhub.workers import worker_pool
from tests.conftest import CORPUS, SourceSpec, corpus_required

BASE = "http://127.0.0.1:8080/"
SLUG, LABEL = "zhengquanshibaowang", "证券时报网新闻"
OTHER, OTHER_LABEL = "other", "其他财经"
A = "http://127.0.0.1:9/stcn/yw.xml"
B = "http://127.0.0.1:9/stcn/kx.xml"
C = "http://127.0.0.1:9/other/rss.xml"
NS = {"a": "http://www.w3.org/2005/Atom"}
ATOM_NS = "{http://www.w3.org/2005/Atom}"
SEED_GUID = "NW202205062370666142"
SEED_LINK = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202205062370666142"
SEED_TITLE = "“科创中国”大湾区联合体落户前海"
SEED_HTML = ('<p>5月6日，深圳市科学技术协会与前海管理局联合召开新闻发布会。</p>'
             '<p class="em_media">（文章来源：证券时报网）</p>')
TAG_ID = "tag:news.example.cn,2022-05-06:jijin/70001"
DUP_CANON = "https://news.example.cn/a/123.html"
RFC822 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct"
                    r"|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} \+0800$")
RFC3339_SHANGHAI = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")


def utc(text: str) -> datetime:
    """A UTC datetime from ISO text."""
    return datetime.fromisoformat(text).astimezone(UTC)


def entry(source_url: str, guid: str, title: str, published: str, *, link: str,
          canonical_link: str | None = None, content: str = "<p>正文</p>",
          authors: tuple[str, ...] = ("王一鸣",)) -> Entry:
    """One store-ready entry."""
    digest = hashlib.sha256(f"{title}\x1f{content}\x1f{link}".encode()).hexdigest()
    return Entry(source_url=source_url, key=guid, guid=guid, link=link,
                 canonical_link=canonical_link or link, title=title, content_html=content,
                 published=utc(published), authors=authors, categories=("市场",),
                 enclosures=(), content_hash=digest)


A_ENTRIES = [
    entry(A, SEED_GUID, SEED_TITLE, "2022-05-06T07:47:32+00:00", link=SEED_LINK, content=SEED_HTML,
          authors=("证券时报网",)),
    entry(A, "SHARED1", "甲源：共用guid的快讯", "2022-05-06T06:00:00+00:00",
          link="https://news.example.cn/a/1.html"),
    entry(A, "DUP-A", "深市公司一季度营业收入同比增长12.3%", "2022-05-06T05:00:00+00:00",
          link=DUP_CANON + "?utm_source=rss#top", canonical_link=DUP_CANON),
]
B_ENTRIES = [
    entry(B, "SHARED1", "乙源：共用guid的快讯", "2022-05-06T05:30:00+00:00",
          link="https://news.example.cn/b/1.html"),
    entry(B, TAG_ID, "新发基金规模环比回升", "2022-05-06T04:00:00+00:00",
          link="https://news.example.cn/jijin/70001.html"),
    entry(B, "DUP-B", "深市公司一季度营业收入同比增长12.3%", "2022-05-06T05:00:00+00:00",
          link=DUP_CANON + "?utm_medium=feed", canonical_link=DUP_CANON),
]
C_ENTRIES = [
    entry(C, "OT1", "其他：美股三大指数收涨", "2022-05-06T08:00:00+00:00",
          link="https://other.example.com/1.html", authors=()),
]
#: Distinct articles per category after cross-source dedupe.
CATEGORY_COUNT, ALL_COUNT = 5, 6


@dataclass
class Rendered:
    """A config, its open store, and one render's documents by path."""

    config: Config
    store: Store
    docs: dict[str, Document]


async def build(write_config: Callable[..., Path], max_entries: int = 50) -> Rendered:
    """Write a config with three sources, store their entries, render everything."""
    path = write_config([SourceSpec(A, extra="    name: 甲源"), SourceSpec(B, extra="    name: 乙源"),
                         SourceSpec(C, category=OTHER, extra="    name: 丙源")],
                        base_url=BASE, max_entries=max_entries)
    config = load_config(path)
    store = await open_store(config.store_path)
    seen = datetime(2022, 5, 7, tzinfo=UTC)
    for url, entries, link in ((A, A_ENTRIES, "http://finews.zning.xyz/"),
                               (B, B_ENTRIES, "https://news.example.cn/kx/"),
                               (C, C_ENTRIES, "https://other.example.com/")):
        await store.save_poll(SourceState(url=url, feed_title="源标题", feed_link=link), entries, seen)
        seen += timedelta(minutes=1)
    docs = {d.path: d async for d in render(store, config)}
    return Rendered(config=config, store=store, docs=docs)


@pytest.fixture
async def rendered(write_config: Callable[..., Path]) -> AsyncIterator[Rendered]:
    """Everything rendered from the three-source store."""
    result = await build(write_config)
    try:
        yield result
    finally:
        await result.store.close()


def xml(doc: Document) -> etree._Element:
    """Parse an XML document safely."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(doc.body, parser)


def atom_entries(doc: Document) -> list[etree._Element]:
    """The <entry> elements of an Atom document."""
    return list(xml(doc).findall("a:entry", NS))


def rss_items(doc: Document) -> list[etree._Element]:
    """The <item> elements of an RSS document."""
    return list(xml(doc).findall("channel/item"))


def json_feed(doc: Document) -> dict[str, Any]:
    """A JSON Feed as a dict."""
    data: dict[str, Any] = json.loads(doc.body)
    return data


def entry_by_title(entries: list[etree._Element], title: str) -> etree._Element:
    """The single Atom entry with this title."""
    found = [e for e in entries if e.findtext("a:title", namespaces=NS) == title]
    assert len(found) == 1, f"{title!r} appears {len(found)} times"
    return found[0]


def test_documents_rendered(rendered: Rendered) -> None:
    """Every contract path is rendered with its content type."""
    expected = {f"feeds/{slug}.{ext}" for slug in ("all", SLUG, OTHER) for ext in ("atom", "rss", "json")}
    expected |= {"index.html", f"category/{SLUG}.html", f"category/{OTHER}.html", "opml.xml",
                 "feeds/_health.atom"}
    assert set(rendered.docs) == expected
    types = {p: d.content_type.split(";")[0] for p, d in rendered.docs.items()}
    assert types[f"feeds/{SLUG}.atom"] == "application/atom+xml"
    assert types[f"feeds/{SLUG}.rss"] == "application/rss+xml"
    assert types[f"feeds/{SLUG}.json"] == "application/feed+json"
    assert types["index.html"] == "text/html"


def test_atom_validates_against_rfc4287_schema(rendered: Rendered) -> None:
    """Each Atom output is valid against the RFC 4287 RELAX NG schema."""
    corpus_required()
    schema = etree.RelaxNG(etree.parse(str(CORPUS / "schemas" / "atom.rng")))
    for path in ("feeds/all.atom", f"feeds/{SLUG}.atom", f"feeds/{OTHER}.atom"):
        assert schema.validate(xml(rendered.docs[path])), (path, schema.error_log)


def test_atom_entries_tagged_sourced_dated(rendered: Rendered) -> None:
    """Category label, full <source>, +08:00 dates and html content on every entry."""
    entries = atom_entries(rendered.docs[f"feeds/{SLUG}.atom"])
    assert len(entries) == CATEGORY_COUNT
    for e in entries:
        assert LABEL in [c.get("term") for c in e.findall("a:category", NS)]
        source = e.find("a:source", NS)
        assert source is not None
        assert source.findtext("a:id", namespaces=NS) in (A, B)
        assert source.findtext("a:title", namespaces=NS) in ("甲源", "乙源")
        assert source.find("a:link", NS) is not None
        for name in ("published", "updated"):
            value = e.findtext(f"a:{name}", namespaces=NS)
            assert value is not None and RFC3339_SHANGHAI.match(value), (name, value)
        content = e.find("a:content", NS)
        assert content is not None and content.get("type") == "html"

    seed = entry_by_title(entries, SEED_TITLE)
    assert seed.findtext("a:published", namespaces=NS) == "2022-05-06T15:47:32+08:00"
    assert seed.findtext("a:content", namespaces=NS) == SEED_HTML
    alternates = [link.get("href") for link in seed.findall("a:link", NS)
                  if link.get("rel", "alternate") == "alternate"]
    assert alternates == [SEED_LINK]
    assert seed.findtext("a:author/a:name", namespaces=NS) == "证券时报网"
    source = seed.find("a:source", NS)
    assert source is not None
    assert source.findtext("a:id", namespaces=NS) == A
    assert source.findtext("a:title", namespaces=NS) == "甲源"


def test_rss_keeps_guid_not_permalink(rendered: Rendered) -> None:
    """An RSS guid that is not a URL goes out unchanged with isPermaLink="false"."""
    items = rss_items(rendered.docs[f"feeds/{SLUG}.rss"])
    [seed] = [i for i in items if i.findtext("title") == SEED_TITLE]
    guid = seed.find("guid")
    assert guid is not None
    assert guid.text == SEED_GUID
    assert guid.get("isPermaLink") == "false"
    assert seed.findtext("link") == SEED_LINK


def test_atom_keeps_absolute_iri_id(rendered: Rendered) -> None:
    """An original id that already is an absolute IRI (tag:) stays the Atom id."""
    entries = atom_entries(rendered.docs[f"feeds/{SLUG}.atom"])
    assert entry_by_title(entries, "新发基金规模环比回升").findtext("a:id", namespaces=NS) == TAG_ID


async def test_atom_id_of_plain_guid_is_stable_urn_uuid(rendered: Rendered) -> None:
    """A guid like NW202205062370666142 becomes a stable urn:uuid: id in Atom."""
    first = entry_by_title(atom_entries(rendered.docs[f"feeds/{SLUG}.atom"]), SEED_TITLE)
    again = {d.path: d async for d in render(rendered.store, rendered.config)}
    second = entry_by_title(atom_entries(again[f"feeds/{SLUG}.atom"]), SEED_TITLE)
    atom_id = first.findtext("a:id", namespaces=NS)
    assert atom_id is not None and atom_id.startswith("urn:uuid:")
    assert second.findtext("a:id", namespaces=NS) == atom_id


def test_no_duplicate_ids_when_sources_share_a_guid(rendered: Rendered) -> None:
    """Two sources using guid SHARED1 both appear, with distinct ids in every format."""
    for slug, count in ((SLUG, CATEGORY_COUNT), ("all", ALL_COUNT)):
        atom = atom_entries(rendered.docs[f"feeds/{slug}.atom"])
        ids = [e.findtext("a:id", namespaces=NS) for e in atom]
        assert len(ids) == count and len(set(ids)) == count, ids
        entry_by_title(atom, "甲源：共用guid的快讯")
        entry_by_title(atom, "乙源：共用guid的快讯")
        guids = [i.findtext("guid") for i in rss_items(rendered.docs[f"feeds/{slug}.rss"])]
        assert len(guids) == count and len(set(guids)) == count, guids
        items = json_feed(rendered.docs[f"feeds/{slug}.json"])["items"]
        assert len({i["id"] for i in items}) == len(items) == count


def test_cross_source_duplicate_appears_once(rendered: Rendered) -> None:
    """The article linked by both A and B (utm/fragment differ) shows once: A's, seen first."""
    atom = atom_entries(rendered.docs[f"feeds/{SLUG}.atom"])
    dup = entry_by_title(atom, "深市公司一季度营业收入同比增长12.3%")
    source = dup.find("a:source", NS)
    assert source is not None and source.findtext("a:id", namespaces=NS) == A


def test_rss_channel_and_items(rendered: Rendered) -> None:
    """RSS: self link, channel metadata, RFC 822 +0800 dates, <source url>, label category."""
    root = xml(rendered.docs[f"feeds/{SLUG}.rss"])
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel is not None
    self_links = [link for link in channel.findall(f"{ATOM_NS}link") if link.get("rel") == "self"]
    assert [link.get("href") for link in self_links] == [f"{BASE}feeds/{SLUG}.rss"]
    assert channel.findtext("title") == LABEL
    assert channel.findtext("link") == f"{BASE}category/{SLUG}.html"
    assert channel.findtext("description") == "证券时报网要闻与快讯"
    items = channel.findall("item")
    assert len(items) == CATEGORY_COUNT
    for item in items:
        pub = item.findtext("pubDate")
        assert pub is not None and RFC822.match(pub), pub
        source = item.find("source")
        assert source is not None and source.get("url") in (A, B)
        assert LABEL in [c.text for c in item.findall("category")]
    [seed] = [i for i in items if i.findtext("title") == SEED_TITLE]
    assert seed.findtext("pubDate") == "Fri, 06 May 2022 15:47:32 +0800"
    source = seed.find("source")
    assert source is not None and (source.get("url"), source.text) == (A, "甲源")
    assert seed.findtext("description") == SEED_HTML


def test_json_feed(rendered: Rendered) -> None:
    """JSON Feed 1.1: version, ids, html, RFC 3339 +08:00 dates, label tag, authors."""
    feed = json_feed(rendered.docs[f"feeds/{SLUG}.json"])
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == LABEL
    assert feed["feed_url"] == f"{BASE}feeds/{SLUG}.json"
    items = feed["items"]
    assert len(items) == CATEGORY_COUNT
    for item in items:
        assert isinstance(item["id"], str) and item["id"]
        assert isinstance(item["content_html"], str) and item["content_html"]
        assert RFC3339_SHANGHAI.match(item["date_published"]), item["date_published"]
        assert LABEL in item["tags"]
        assert item["authors"] and all(a["name"] for a in item["authors"])
    [seed] = [i for i in items if i["title"] == SEED_TITLE]
    assert seed["id"] == SEED_GUID
    assert seed["url"] == SEED_LINK
    assert seed["content_html"] == SEED_HTML
    assert seed["date_published"] == "2022-05-06T15:47:32+08:00"
    assert seed["authors"] == [{"name": "证券时报网"}]


def test_newest_first_in_every_format(rendered: Rendered) -> None:
    """Entries are ordered by published date, newest first, in Atom, RSS and JSON."""
    for slug in (SLUG, "all"):
        atom = [datetime.fromisoformat(e.findtext("a:published", namespaces=NS) or "")
                for e in atom_entries(rendered.docs[f"feeds/{slug}.atom"])]
        rss = [email.utils.parsedate_to_datetime(i.findtext("pubDate") or "")
               for i in rss_items(rendered.docs[f"feeds/{slug}.rss"])]
        js = [datetime.fromisoformat(i["date_published"])
              for i in json_feed(rendered.docs[f"feeds/{slug}.json"])["items"]]
        for dates in (atom, rss, js):
            assert dates == sorted(dates, reverse=True), (slug, dates)
        assert atom == rss == js
    first = atom_entries(rendered.docs["feeds/all.atom"])[0]
    assert first.findtext("a:title", namespaces=NS) == "其他：美股三大指数收涨"


async def test_max_entries_respected(write_config: Callable[..., Path]) -> None:
    """max_entries caps every feed; the newest entries are the ones kept."""
    result = await build(write_config, max_entries=2)
    try:
        docs = result.docs
        titles = [e.findtext("a:title", namespaces=NS) for e in atom_entries(docs[f"feeds/{SLUG}.atom"])]
        assert titles == [SEED_TITLE, "甲源：共用guid的快讯"]
        assert len(rss_items(docs[f"feeds/{SLUG}.rss"])) == 2
        assert len(json_feed(docs[f"feeds/{SLUG}.json"])["items"]) == 2
        assert len(atom_entries(docs["feeds/all.atom"])) == 2
    finally:
        await result.store.close()


async def test_render_is_deterministic(rendered: Rendered) -> None:
    """Rendering the same store twice gives the same bytes and ETags."""
    again = {d.path: d async for d in render(rendered.store, rendered.config)}
    assert set(again) == set(rendered.docs)
    for path, doc in rendered.docs.items():
        assert again[path].body == doc.body, path
        assert again[path].etag == doc.etag, path


async def test_render_in_worker_processes_gives_the_same_documents(
        write_config: Callable[..., Path]) -> None:
    """Rendered by worker processes, several at once: the same documents in the same
    order, archive pages included."""
    result = await build(write_config, max_entries=2)
    try:
        inline = [d async for d in render(result.store, result.config)]
        with worker_pool(2, pool_after=0) as workers:
            pooled = [d async for d in render(result.store, result.config, None, workers)]
            assert workers.started
        assert any("/archive/" in d.path for d in inline)
        assert [(d.path, d.etag) for d in pooled] == [(d.path, d.etag) for d in inline]
        assert [d.body for d in pooled] == [d.body for d in inline]
    finally:
        await result.store.close()


def test_all_merges_categories_with_own_labels(rendered: Rendered) -> None:
    """all.* holds every category; each entry carries its own category's label."""
    atom = atom_entries(rendered.docs["feeds/all.atom"])
    assert len(atom) == ALL_COUNT
    for e in atom:
        source = e.findtext("a:source/a:id", namespaces=NS)
        terms = [c.get("term") for c in e.findall("a:category", NS)]
        if source == C:
            assert OTHER_LABEL in terms and LABEL not in terms
        else:
            assert LABEL in terms and OTHER_LABEL not in terms
    for item in rss_items(rendered.docs["feeds/all.rss"]):
        source = item.find("source")
        assert source is not None
        label = OTHER_LABEL if source.get("url") == C else LABEL
        assert label in [c.text for c in item.findall("category")]
    for item in json_feed(rendered.docs["feeds/all.json"])["items"]:
        label = OTHER_LABEL if item["_feedhub"]["source"]["url"] == C else LABEL
        assert label in item["tags"]
    other = atom_entries(rendered.docs[f"feeds/{OTHER}.atom"])
    assert [e.findtext("a:title", namespaces=NS) for e in other] == ["其他：美股三大指数收涨"]


def autodiscovery(doc: Document) -> dict[str, str]:
    """Feed autodiscovery links of an HTML page: href → type."""
    page = lxml.html.fromstring(doc.body)
    return {str(link.get("href")): str(link.get("type"))
            for link in page.xpath("//head/link[@rel='alternate']")}


def test_pages_have_autodiscovery(rendered: Rendered) -> None:
    """Home and category pages announce their Atom feeds and list the entries."""
    home = autodiscovery(rendered.docs["index.html"])
    assert home[f"{BASE}feeds/all.atom"] == "application/atom+xml"
    assert home[f"{BASE}feeds/{SLUG}.atom"] == "application/atom+xml"
    category = autodiscovery(rendered.docs[f"category/{SLUG}.html"])
    assert category[f"{BASE}feeds/{SLUG}.atom"] == "application/atom+xml"
    assert category[f"{BASE}feeds/{SLUG}.rss"] == "application/rss+xml"
    page = lxml.html.fromstring(rendered.docs[f"category/{SLUG}.html"].body)
    assert SEED_LINK in page.xpath("//a/@href")
    assert SEED_TITLE in page.text_content()


def test_opml_lists_every_feed(rendered: Rendered) -> None:
    """opml.xml parses and lists all plus every category's feed."""
    root = xml(rendered.docs["opml.xml"])
    assert root.tag == "opml"
    outlines = root.findall("body//outline")
    urls = {o.get("xmlUrl") for o in outlines}
    assert urls == {f"{BASE}feeds/{slug}.atom" for slug in ("all", SLUG, OTHER, "_health")}
    titles = {o.get("title") for o in outlines}
    assert {LABEL, OTHER_LABEL} <= titles
    for url in urls:
        assert str(url).removeprefix(BASE) in rendered.docs
