"""What feedhub republishes, checked by the specs and by real feed readers.

Atom against the RFC 4287 schema (converted from atom.rnc with rnc2rng), RSS
2.0 and JSON Feed 1.1 against their specs, RFC 5005 archives followed to the
end, WebSub pings to a local hub, and the served feeds read by newsboat, the
Python ``reader`` library and the ``rss-parser`` npm package.
"""

from __future__ import annotations

import email.utils
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs

import feedparser
import httpx
import pytest
from lxml import etree

from feedhub.server import RECHECK_SECONDS
from tests.conftest import CORPUS, SourceSpec, config_text, corpus_required, fixture_route, run_cli
from tests.feedserver import FeedServer, Route
from tests.test_server import serving

LABEL = "证券时报网新闻"
SLUG = "zhengquanshibaowang"
SEED_TITLE = "“科创中国”大湾区联合体落户前海"
MAX_ENTRIES = 5
MANY = 23  # entries in the generated source: several archive pages of MAX_ENTRIES
ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
JS_DIR = Path(__file__).parent / "js"


def many_items_rss(count: int) -> bytes:
    """An RSS feed with ``count`` distinct items, one minute apart."""
    items = "".join(
        f"<item><title>第{i:02d}条 市场快讯</title><link>https://news.example.cn/many/{i}.html</link>"
        f"<guid isPermaLink=\"false\">MANY-{i:03d}</guid>"
        f"<pubDate>Fri, 06 May 2022 {8 + i // 60:02d}:{i % 60:02d}:00 +0800</pubDate>"
        f"<description>&lt;p&gt;第{i}条快讯正文。&lt;/p&gt;</description></item>"
        for i in range(count))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>批量快讯</title><link>https://news.example.cn/</link>"
            f"<description>批量</description>{items}</channel></rss>").encode()


@dataclass(frozen=True)
class Site:
    config: Path
    public: Path
    base: str
    sources: FeedServer
    hub_url: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Poll a few sources (one with many entries) with a WebSub hub set, then serve."""
    root = tmp_path_factory.mktemp("syndication")
    with FeedServer() as sources:
        sources.set("/hub", Route(status=204, content_type=None))
        sources.set("/seed.xml", fixture_route("seed.xml", etag='"seed"'))
        sources.set("/rss2.xml", fixture_route("rss2_utf8.xml", etag='"rss2"'))
        sources.set("/many.xml", Route(body=many_items_rss(MANY), etag='"many1"'))
        sources.set("/atom.xml", fixture_route("atom_utf8.xml", etag='"atom"'))
        sources.set("/big5.xml", fixture_route("big5.xml", etag='"big5"'))
        specs = [SourceSpec(sources.url("/seed.xml")), SourceSpec(sources.url("/rss2.xml")),
                 SourceSpec(sources.url("/many.xml")),
                 SourceSpec(sources.url("/atom.xml"), category="other"),
                 SourceSpec(sources.url("/big5.xml"), category="other")]
        hub = sources.url("/hub")
        config = root / "feeds.yaml"
        text = config_text(specs, max_entries=MAX_ENTRIES)
        config.write_text(text.replace("  data_dir: data\n",
                                       f"  data_dir: data\n  websub_hubs: [{hub}]\n"),
                          encoding="utf-8")
        result = run_cli("poll", config=config)
        assert result.code == 0, result.stderr
        with serving(config) as base:
            yield Site(config=config, public=root / "data" / "public", base=base,
                       sources=sources, hub_url=hub)


def atom_docs(public: Path) -> list[Path]:
    return sorted(public.rglob("*.atom"))


# --- validity -------------------------------------------------------------------------


def test_atom_validates_against_rfc4287_schema(site: Site) -> None:
    corpus_required()
    import rnc2rng

    rng_text = rnc2rng.dumps(rnc2rng.load(str(CORPUS / "schemas" / "atom.rnc")))
    # rnc2rng declares the RNC's empty "local" namespace as a prefix, which XML forbids.
    schema = etree.RelaxNG(etree.fromstring(rng_text.replace('xmlns:local=""', "").encode()))
    docs = atom_docs(site.public)
    assert len(docs) >= 6 + 2  # all + 2 categories, plus archive pages
    for path in docs:
        doc = etree.parse(str(path))
        assert schema.validate(doc), (path, schema.error_log.last_error)


def test_every_document_has_unique_ids_and_zoned_dates(site: Site) -> None:
    for path in atom_docs(site.public):
        root = etree.parse(str(path)).getroot()
        ids = [e.findtext(f"{ATOM}id") for e in root.iter(f"{ATOM}entry")]
        assert len(ids) == len(set(ids)), path
        for tag in ("updated", "published"):
            for el in root.iter(f"{ATOM}{tag}"):
                assert datetime.fromisoformat(el.text or "").utcoffset() is not None
                assert (el.text or "").endswith("+08:00"), (path, el.text)
    for path in sorted(site.public.glob("feeds/*.rss")):
        channel = etree.parse(str(path)).getroot().find("channel")
        assert channel is not None
        guids = [i.findtext("guid") for i in channel.iter("item")]
        assert len(guids) == len(set(guids))


def test_rss_follows_the_rss_board_spec(site: Site) -> None:
    root = etree.parse(str(site.public / f"feeds/{SLUG}.rss")).getroot()
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel is not None
    for required in ("title", "link", "description"):
        assert (channel.findtext(required) or "").strip(), required
    self_links = [el for el in channel.findall(f"{ATOM}link") if el.get("rel") == "self"]
    assert [el.get("href") for el in self_links] == [f"http://127.0.0.1:8080/feeds/{SLUG}.rss"]
    hubs = [el.get("href") for el in channel.findall(f"{ATOM}link") if el.get("rel") == "hub"]
    assert hubs == [site.hub_url]
    items = channel.findall("item")
    assert len(items) == MAX_ENTRIES
    for item in items:
        assert email.utils.parsedate_to_datetime(item.findtext("pubDate") or "").utcoffset()
        guid = item.find("guid")
        assert guid is not None
        permalink = guid.get("isPermaLink") == "true"
        # isPermaLink="true" only when the guid is the article's URL
        assert permalink == (guid.text == item.findtext("link")), guid.text
        assert next(c.text for c in item.findall("category")) == LABEL
        source = item.find("source")
        assert source is not None and (source.get("url") or "").startswith("http://127.0.0.1:")


def test_json_feed_follows_version_1_1(site: Site) -> None:
    doc = json.loads((site.public / f"feeds/{SLUG}.json").read_bytes())
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["title"] and doc["feed_url"].endswith(f"feeds/{SLUG}.json")
    assert doc["hubs"] == [{"type": "WebSub", "url": site.hub_url}]
    assert len(doc["items"]) == MAX_ENTRIES
    for item in doc["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert isinstance(item["content_html"], str)
        assert datetime.fromisoformat(item["date_published"]).utcoffset() is not None
        assert item["tags"][0] == LABEL
        for author in item.get("authors", []):
            assert isinstance(author["name"], str)


# --- RFC 5005 archives ----------------------------------------------------------------


def follow_archives(base: str, slug: str) -> tuple[list[str], list[str]]:
    """Walk prev-archive links from the subscription document; (page URLs, entry ids)."""
    client = httpx.Client(timeout=10)
    current = etree.fromstring(client.get(f"{base}/feeds/{slug}.atom").content)
    link = next((el.get("href") for el in current.findall(f"{ATOM}link")
                 if el.get("rel") == "prev-archive"), None)
    pages: list[str] = []
    ids: list[str] = []
    while link:
        path = link.removeprefix("http://127.0.0.1:8080")
        page = etree.fromstring(client.get(base + path).content)
        assert page.find(f"{FH}archive") is not None, path
        current_links = [el.get("href") for el in page.findall(f"{ATOM}link")
                         if el.get("rel") == "current"]
        assert current_links == [f"http://127.0.0.1:8080/feeds/{slug}.atom"]
        pages.append(path)
        ids += [e.findtext(f"{ATOM}id") or "" for e in page.iter(f"{ATOM}entry")]
        link = next((el.get("href") for el in page.findall(f"{ATOM}link")
                     if el.get("rel") == "prev-archive"), None)
    return pages, ids


def stored_count(site: Site, category_urls: list[str]) -> int:
    with sqlite3.connect(site.config.parent / "data" / "feedhub.sqlite3") as db:
        marks = ",".join("?" * len(category_urls))
        return int(db.execute(
            "SELECT COUNT(DISTINCT COALESCE(canonical_link, source_url || ' ' || key)) "
            f"FROM entries WHERE source_url IN ({marks})", category_urls).fetchone()[0])


def test_archives_hold_every_entry_exactly_once(site: Site) -> None:
    urls = [site.sources.url(p) for p in ("/seed.xml", "/rss2.xml", "/many.xml")]
    total = stored_count(site, urls)
    assert total == 1 + 3 + MANY
    pages, ids = follow_archives(site.base, SLUG)
    assert len(pages) == -(-total // MAX_ENTRIES)
    assert len(ids) == len(set(ids)) == total
    # The subscription document's entries are all among them.
    current = feedparser.parse(httpx.get(f"{site.base}/feeds/{SLUG}.atom").content)
    assert {e.id for e in current.entries} <= set(ids)


def test_full_archive_pages_never_change(site: Site, tmp_path: Path) -> None:
    """New entries add to the newest page; full pages keep their bytes and ETag."""
    urls = [site.sources.url(p) for p in ("/seed.xml", "/rss2.xml", "/many.xml")]
    before_total = stored_count(site, urls)
    full_pages = before_total // MAX_ENTRIES
    before = {p: p.read_bytes() for p in sorted((site.public / f"feeds/{SLUG}/archive").iterdir())}
    etags = {p: httpx.get(f"{site.base}/feeds/{SLUG}/archive/{p.name}").headers["etag"]
             for p in before}
    site.sources.set("/many.xml", Route(body=many_items_rss(MANY + 7), etag='"many2"'))
    assert run_cli("poll", "--source", site.sources.url("/many.xml"), config=site.config).code == 0
    # The server caches each document for RECHECK_SECONDS; the pages fetched above are that
    # fresh, so wait out the window a poll in another process is documented to take.
    time.sleep(RECHECK_SECONDS + 0.2)
    after_pages, ids = follow_archives(site.base, SLUG)
    assert len(ids) == len(set(ids)) == before_total + 7
    for n in range(1, full_pages + 1):
        path = site.public / f"feeds/{SLUG}/archive/{n}.atom"
        if n < full_pages:  # the last full page only gains a next-archive link
            assert path.read_bytes() == before[path], n
            assert httpx.get(f"{site.base}/feeds/{SLUG}/archive/{n}.atom").headers["etag"] == \
                etags[path]
    assert len(after_pages) == -(-(before_total + 7) // MAX_ENTRIES)


# --- WebSub -----------------------------------------------------------------------------


def test_websub_hub_pinged_for_changed_feeds(site: Site) -> None:
    pings = [parse_qs(r.body.decode()) for r in site.sources.requests("/hub") if r.method == "POST"]
    topics = {p["hub.url"][0] for p in pings}
    assert all(p["hub.mode"] == ["publish"] for p in pings)
    for slug in ("all", SLUG, "other"):
        for ext in ("atom", "rss", "json"):
            assert f"http://127.0.0.1:8080/feeds/{slug}.{ext}" in topics
    assert not any("/archive/" in t for t in topics)
    atom = etree.parse(str(site.public / f"feeds/{SLUG}.atom")).getroot()
    assert [el.get("href") for el in atom.findall(f"{ATOM}link") if el.get("rel") == "hub"] == \
        [site.hub_url]


def test_websub_retries_a_failing_hub(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.set("/hub", Route(status=503, body=b"busy", content_type="text/plain"))
    feed_server.set("/seed.xml", fixture_route("seed.xml"))
    config = tmp_path / "feeds.yaml"
    config.write_text(config_text([SourceSpec(feed_server.url("/seed.xml"))]).replace(
        "  data_dir: data\n", f"  data_dir: data\n  websub_hubs: [{feed_server.url('/hub')}]\n"),
        encoding="utf-8")
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    pings = [r for r in feed_server.requests("/hub") if r.method == "POST"]
    topics = {parse_qs(r.body.decode())["hub.url"][0] for r in pings}
    assert len(pings) == 3 * len(topics)  # three attempts for each topic
    assert pings[-1].time - pings[0].time >= 1.4  # 0.5 s then 1 s between attempts


# --- real readers -----------------------------------------------------------------------


def test_newsboat_reads_every_entry(site: Site, tmp_path: Path) -> None:
    newsboat = shutil.which("newsboat")
    if newsboat is None:
        if os.environ.get("CI"):
            pytest.fail("newsboat is not installed (.ci/run installs it)")
        pytest.skip("newsboat not installed")
    url = f"{site.base}/feeds/{SLUG}.atom"
    (tmp_path / "urls").write_text(url + "\n", encoding="utf-8")
    (tmp_path / "config").write_text("", encoding="utf-8")
    cache = tmp_path / "cache.db"
    env = {**os.environ, "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    proc = subprocess.run([newsboat, "-x", "reload", "-u", str(tmp_path / "urls"),
                           "-c", str(cache), "-C", str(tmp_path / "config")],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(cache) as db:
        rows = db.execute("SELECT title, url FROM rss_item WHERE feedurl = ?", (url,)).fetchall()
    served = feedparser.parse(httpx.get(url).content)
    assert sorted(rows) == sorted((e.title, e.link) for e in served.entries)
    assert (SEED_TITLE, "http://finews.zning.xyz/html_News/NewsShare.html?infoCode="
            "NW202205062370666142") in rows or len(rows) == MAX_ENTRIES


def test_python_reader_library_reads_entries(site: Site, tmp_path: Path) -> None:
    reader_module = pytest.importorskip("reader")
    url = f"{site.base}/feeds/other.atom"
    reader = reader_module.make_reader(str(tmp_path / "reader.sqlite"))
    try:
        reader.add_feed(url)
        reader.update_feeds(scheduled=False)
        entries = list(reader.get_entries(feed=url))
    finally:
        reader.close()
    served = feedparser.parse(httpx.get(url).content)
    assert {(e.id, e.title, e.link) for e in entries} == \
        {(e.id, e.title, e.link) for e in served.entries}
    assert all(e.source is not None and e.source.url.startswith("http://127.0.0.1:")
               for e in entries)
    assert any(e.title == "證券時報：臺股加權指數收漲1.2%" for e in entries)


def test_javascript_rss_parser_reads_entries(site: Site) -> None:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "rss-parser").is_dir():
        if os.environ.get("CI"):
            pytest.fail("node or tests/js/node_modules is missing (.ci/run installs them)")
        pytest.skip("run `npm ci --prefix tests/js` first")
    for fmt in ("atom", "rss"):
        url = f"{site.base}/feeds/{SLUG}.{fmt}"
        proc = subprocess.run([node, str(JS_DIR / "read_feed.js"), url], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        parsed = json.loads(proc.stdout)
        served = feedparser.parse(httpx.get(url).content)
        assert [i["title"] for i in parsed["items"]] == [e.title for e in served.entries]
        assert [i["link"] for i in parsed["items"]] == [e.link for e in served.entries]
        if fmt == "rss":
            assert all(LABEL in i["categories"] for i in parsed["items"])


# --- pages --------------------------------------------------------------------------------


def test_category_page_screenshot_shows_the_seed(site: Site, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium not installed")
    page = httpx.get(f"{site.base}/category/{SLUG}.html")
    assert page.status_code == 200
    html = page.text
    assert "<script" not in html and "http://127.0.0.1:8080/feeds/zhengquanshibaowang.atom" in html
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "page.png"
    proc = subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=900,1400",
                           f"{site.base}/"], capture_output=True, text=True, timeout=90)
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = subprocess.run([chromium, *flags, "--dump-dom", f"{site.base}/category/{SLUG}.html"],
                         capture_output=True, text=True, timeout=90)
    assert SEED_TITLE in dom.stdout, dom.stderr[-2000:]
    assert "2022-05-06 15:47" in dom.stdout


def test_pages_are_clean_html_with_autodiscovery(site: Site) -> None:
    for path in ("/", f"/category/{SLUG}.html"):
        doc = etree.fromstring(httpx.get(site.base + path).content, etree.HTMLParser())
        alternates = {el.get("type") for el in doc.iter("link") if el.get("rel") == "alternate"}
        assert alternates == {"application/atom+xml", "application/rss+xml",
                              "application/feed+json"}
        assert not list(doc.iter("script"))
        assert all(not (el.get("src") or "").startswith("http") for el in doc.iter("img"))
    home = httpx.get(site.base + "/").text
    assert "opml.xml" in home and "其他财经" in home and LABEL in home


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
