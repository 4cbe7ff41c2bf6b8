"""Tests for normalize (identity, dates, hashes), sanitize (HTML) and urls (canonical links, IRIs)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from feedhub.model import Enclosure, Entry, ParsedEntry, ParsedFeed
from feedhub.normalize import identity_key, normalize, normalize_entry
from feedhub.parse import parse
from feedhub.sanitize import clean_html, clean_text, safe_url
from feedhub.urls import canonical_link, is_absolute_iri
from tests.conftest import FIXTURES

FEED_URL = "http://127.0.0.1:8001/feeds/x.xml"
SEEN = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _entry(**fields: object) -> ParsedEntry:
    """A parsed entry with sensible defaults."""
    values: dict[str, object] = {
        "id": "ID-1", "link": "https://news.example.cn/a/1.html", "title": "标题",
        "content_html": "<p>正文</p>", "published": datetime(2022, 5, 6, 7, 47, 32, tzinfo=UTC),
        "updated": None,
    }
    values.update(fields)
    return ParsedEntry(**values)  # type: ignore[arg-type]


def _norm(parsed: ParsedEntry, seen_at: datetime = SEEN) -> Entry:
    """Normalize one entry from FEED_URL."""
    return normalize_entry(parsed, source_url=FEED_URL, feed_url=FEED_URL, seen_at=seen_at)


def _feed(*entries: ParsedEntry) -> ParsedFeed:
    """A parsed feed holding ``entries``."""
    return ParsedFeed(title="t", link=None, version="rss20", encoding="utf-8", entries=entries)


def _fixture_entries(name: str, feed_url: str = FEED_URL) -> list[Entry]:
    """Parse and normalize a fixture as if fetched from ``feed_url``."""
    feed = parse((FIXTURES / name).read_bytes(), url=feed_url,
                 headers={"content-type": "application/rss+xml"}, timezone=SHANGHAI)
    return normalize(feed, source_url=feed_url, feed_url=feed_url, seen_at=SEEN)


# --- identity --------------------------------------------------------------------------


def test_identity_is_the_id_first() -> None:
    """An id/guid is the key, whatever the link."""
    entry = _norm(_entry(id="NW202205062370666142"))
    assert entry.key == "NW202205062370666142"
    assert entry.guid == "NW202205062370666142"
    assert entry.source_url == FEED_URL


def test_identity_falls_back_to_link() -> None:
    """Without an id the (absolute) link is the key."""
    assert _norm(_entry(id=None)).key == "https://news.example.cn/a/1.html"
    assert _norm(_entry(id=None, link="/a/2.html")).key == "http://127.0.0.1:8001/a/2.html"


def test_identity_falls_back_to_hash() -> None:
    """Without id or link the key is a stable sha256 of title, date and text."""
    parsed = _entry(id=None, link=None)
    key = _norm(parsed).key
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", key)
    assert _norm(parsed).key == key
    assert identity_key(parsed, None) == key
    assert _norm(dataclasses.replace(parsed, title="另一个标题")).key != key
    assert _norm(dataclasses.replace(parsed, content_html="<p>别的</p>")).key != key
    assert _norm(dataclasses.replace(
        parsed, published=datetime(2022, 5, 7, tzinfo=UTC))).key != key


def test_unsafe_link_does_not_become_identity() -> None:
    """A ``javascript:`` link is dropped, so the key is the hash, not the link."""
    entry = _norm(_entry(id=None, link="javascript:alert(1)"))
    assert entry.link is None
    assert entry.key.startswith("sha256:")


def test_duplicate_ids_keep_the_first() -> None:
    """Two entries with the same id in one feed: the first wins."""
    entries = normalize(_feed(_entry(id="X", title="第一"), _entry(id="Y", title="中间"),
                              _entry(id="X", title="第二")),
                        source_url=FEED_URL, feed_url=FEED_URL, seen_at=SEEN)
    assert [(e.key, e.title) for e in entries] == [("X", "第一"), ("Y", "中间")]


# --- dates -----------------------------------------------------------------------------


def test_future_date_clamped_to_seen_at() -> None:
    """A date after seen_at becomes seen_at; the fixture's 2099 item too."""
    assert _norm(_entry(published=datetime(2099, 1, 1, tzinfo=UTC))).published == SEEN
    by_key = {e.key: e for e in _fixture_entries("future_date.xml")}
    assert by_key["FUT1"].published == SEEN
    assert by_key["FUT2"].published == datetime(2022, 5, 6, 2, tzinfo=UTC)


def test_date_equal_to_seen_at_kept() -> None:
    """A date exactly at seen_at is not a future date."""
    assert _norm(_entry(published=SEEN)).published == SEEN


def test_missing_date_is_seen_at() -> None:
    """No date at all: seen_at."""
    assert _norm(_entry(published=None, updated=None)).published == SEEN


def test_updated_used_when_no_published() -> None:
    """Only an updated date (RSS 1.0 dc:date, Atom updated): that one."""
    when = datetime(2022, 5, 6, 2, 30, tzinfo=UTC)
    assert _norm(_entry(published=None, updated=when)).published == when


# --- content hash ----------------------------------------------------------------------


def test_content_hash_tracks_what_readers_see() -> None:
    """The hash changes with title or content, not with the date or seen_at."""
    base = _norm(_entry())
    assert re.fullmatch(r"[0-9a-f]{64}", base.content_hash)
    assert _norm(_entry()).content_hash == base.content_hash
    assert _norm(_entry(title="标题（更正）")).content_hash != base.content_hash
    assert _norm(_entry(content_html="<p>正文已修改</p>")).content_hash != base.content_hash
    assert _norm(_entry(published=datetime(2022, 5, 7, tzinfo=UTC))).content_hash == base.content_hash
    assert _norm(_entry(), seen_at=SEEN + timedelta(days=3)).content_hash == base.content_hash


def test_updated_fixture_changes_hash_of_renamed_entry() -> None:
    """updated_v1 → updated_v2: UP8001's hash changes, UP8002's does not."""
    v1 = {e.key: e for e in _fixture_entries("updated_v1.xml")}
    v2 = {e.key: e for e in _fixture_entries("updated_v2.xml")}
    assert set(v2) == {"UP8001", "UP8002", "UP8003"}
    assert v1["UP8001"].content_hash != v2["UP8001"].content_hash
    assert v2["UP8001"].title == "某银行拟发行300亿元二级资本债（更正）"
    assert v1["UP8002"].content_hash == v2["UP8002"].content_hash


# --- titles ----------------------------------------------------------------------------


def test_title_markup_stripped() -> None:
    """Titles are plain text: tags and scripts removed, entities decoded, spaces collapsed."""
    title = "<b>沪指</b>  <script>alert(1)</script>收涨 &amp; 放量"
    assert _norm(_entry(title=title)).title == "沪指 收涨 & 放量"


def test_missing_title_falls_back() -> None:
    """No title: the text of the content (cut at 60 chars), else the link, else a placeholder."""
    assert _norm(_entry(title="", content_html="<p>短<b>正文</b></p>")).title == "短正文"
    long = _norm(_entry(title=" ", content_html="<p>" + "长" * 80 + "</p>")).title
    assert long == "长" * 60 + "…"
    assert _norm(_entry(title="", content_html="")).title == "https://news.example.cn/a/1.html"
    assert _norm(_entry(title="", content_html="", link=None)).title == "(untitled)"


# --- hostile content -------------------------------------------------------------------


HOSTILE_PATTERNS = [r"<script", r"\son\w+\s*=", r"javascript:", r"data:", r"<iframe", r"<style",
                    r"<svg", r"alert\(", r"display:none"]


def test_hostile_content_sanitized() -> None:
    """No script, handler, iframe, style, svg, javascript: or data: survives in hostile.xml."""
    entries = _fixture_entries("hostile.xml")
    assert [e.key for e in entries] == ["H1", "H2", "H3"]
    for entry in entries:
        for pattern in HOSTILE_PATTERNS:
            assert not re.search(pattern, entry.content_html, re.I), (entry.key, pattern,
                                                                       entry.content_html)
        assert '<p class="em_media">（文章来源：证券时报网）</p>' in entry.content_html
    h1, h2, h3 = entries
    assert "<p>正文一</p>" in h1.content_html
    assert "点击" in h1.content_html
    assert "点我" in h2.content_html and "再点" in h2.content_html
    assert "<p>正文三</p>" in h3.content_html


def test_hostile_item_link_dropped() -> None:
    """H3's ``javascript:`` item link is dropped, the others kept."""
    h1, h2, h3 = _fixture_entries("hostile.xml")
    assert h1.link == "https://news.example.cn/hostile/1.html"
    assert h2.link == "https://news.example.cn/hostile/2.html"
    assert h3.link is None
    assert h3.canonical_link is None


def test_unsafe_enclosures_dropped() -> None:
    """Enclosures with non-http(s) URLs do not survive."""
    entry = _norm(_entry(enclosures=(Enclosure(url="https://x.example/a.mp3", type="audio/mpeg"),
                                     Enclosure(url="javascript:alert(1)"),
                                     Enclosure(url="data:audio/mpeg;base64,AAAA"))))
    assert [e.url for e in entry.enclosures] == ["https://x.example/a.mp3"]


@pytest.mark.parametrize(("html", "forbidden"), [
    ('<a href="  javascript:alert(1)">x</a>', "javascript"),
    ('<a href="java&#x09;script:alert(1)">x</a>', "script:"),
    ('<a href="&#106;avascript:alert(1)">x</a>', "avascript"),
    ('<a href="vbscript:msgbox(1)">x</a>', "vbscript"),
    ("<img src=x onerror=alert(1)>", "onerror"),
    ('<div style="background:url(javascript:alert(1))">x</div>', "style"),
    ("<object data='x.swf'></object><embed src='x.swf'>", "swf"),
    ("<form action='https://evil.example/'><input name=p></form>", "form"),
    ("<math><mi xlink:href='javascript:alert(1)'>x</mi></math>", "javascript"),
    ("<base href='https://evil.example/'>", "base"),
    ("<meta http-equiv='refresh' content='0;url=https://evil.example/'>", "refresh"),
    ("<link rel=stylesheet href='https://evil.example/x.css'>", "evil"),
    ("<!-- <script>alert(1)</script> -->", "script"),
    ('<img src="data:image/png;base64,AAAA">', "data:"),
])
def test_clean_html_removes(html: str, forbidden: str) -> None:
    """Each dangerous construct is removed."""
    assert forbidden not in clean_html(html, FEED_URL).lower()


def test_clean_html_keeps_harmless_markup() -> None:
    """Structure, class, alt and http(s)/mailto links survive; rel is not added."""
    html = ('<p class="em_media">一</p><h2>二</h2><ul><li>三</li></ul><blockquote>四</blockquote>'
            '<table><tbody><tr><td>五</td></tr></tbody></table><a href="mailto:a@example.org">信</a>'
            '<img alt="图" src="https://img.example/1.png">')
    assert clean_html(html, FEED_URL) == html


def test_srcset_is_dropped_src_kept() -> None:
    """srcset (several URLs in one attribute) is dropped; the plain src stays, absolute."""
    out = clean_html('<picture><source srcset="img/a.png 1x, javascript:alert(1) 2x">'
                     '<img src="img/a.png"></picture>', "https://site.example/news/a.html")
    assert "javascript" not in out and "srcset" not in out
    assert 'src="https://site.example/news/img/a.png"' in out


def test_seed_html_survives_unchanged() -> None:
    """The golden article's HTML comes out of parse + sanitize byte for byte."""
    feed = parse((FIXTURES / "seed.xml").read_bytes(), url=FEED_URL,
                 headers={"content-type": "application/rss+xml"}, timezone=SHANGHAI)
    html = feed.entries[0].content_html
    assert html.endswith('<p class="em_media">（文章来源：证券时报网）</p>')
    assert clean_html(html, FEED_URL) == html


# --- relative URLs ---------------------------------------------------------------------


def test_relative_urls_made_absolute() -> None:
    """Relative links and content URLs resolve against the feed's URL."""
    url = "http://127.0.0.1:8001/feeds/relative_rss.xml"
    first, second = _fixture_entries("relative_rss.xml", url)
    assert first.link == "http://127.0.0.1:8001/news/1.html"
    assert second.link == "http://127.0.0.1:8001/feeds/news/2.html"
    assert 'src="http://127.0.0.1:8001/img/1.png"' in first.content_html
    assert 'src="http://127.0.0.1:8001/feeds/img/2.png"' in second.content_html
    assert 'href="http://127.0.0.1:8001/news/1.html"' in second.content_html


def test_clean_html_resolves_against_base() -> None:
    """clean_html resolves href/src against its base; protocol-relative URLs get the scheme."""
    out = clean_html('<a href="../b.html">b</a><img src="//cdn.example/x.png">'
                     '<video poster="p.jpg" src="v.mp4"></video>', "https://site.example/news/a/index.html")
    assert 'href="https://site.example/news/b.html"' in out
    assert 'src="https://cdn.example/x.png"' in out
    assert 'poster="https://site.example/news/a/p.jpg"' in out
    assert 'src="https://site.example/news/a/v.mp4"' in out


@pytest.mark.parametrize(("url", "base", "expected"), [
    ("https://a.example/x", None, "https://a.example/x"),
    (" https://a.example/x ", None, "https://a.example/x"),
    ("/x", "http://127.0.0.1:8001/feeds/f.xml", "http://127.0.0.1:8001/x"),
    ("x", "http://127.0.0.1:8001/feeds/f.xml", "http://127.0.0.1:8001/feeds/x"),
    ("/x", None, None),
    ("javascript:alert(1)", FEED_URL, None),
    ("JavaScript:alert(1)", FEED_URL, None),
    ("data:text/html,x", FEED_URL, None),
    ("ftp://a.example/x", FEED_URL, None),
    ("mailto:a@example.org", FEED_URL, None),
    ("http://", None, None),
    ("", FEED_URL, None),
    (None, FEED_URL, None),
])
def test_safe_url(url: str | None, base: str | None, expected: str | None) -> None:
    """Only absolute http(s) URLs with a host pass; relative ones resolve against the base."""
    assert safe_url(url, base) == expected


def test_clean_text() -> None:
    """Plain text is trimmed; markup removed and entities decoded."""
    assert clean_text("  沪指收涨  ") == "沪指收涨"
    assert clean_text("A股 &lt;2% 涨幅") == "A股 <2% 涨幅"
    assert clean_text("<style>p{}</style><i>斜</i>体") == "斜体"


# --- canonical links -------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("https://news.example.cn/a/123.html?utm_source=rss&utm_medium=feed#top",
     "https://news.example.cn/a/123.html"),
    ("https://news.example.cn/a/123.html?utm_campaign=x", "https://news.example.cn/a/123.html"),
    ("https://news.example.cn/a?id=5&utm_source=rss&page=2#c", "https://news.example.cn/a?id=5&page=2"),
    ("http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202205062370666142",
     "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202205062370666142"),
    ("HTTPS://News.Example.CN:443/A.html", "https://news.example.cn/A.html"),
    ("http://news.example.cn:80/a", "http://news.example.cn/a"),
    ("http://news.example.cn:8080/a", "http://news.example.cn:8080/a"),
    ("https://news.example.cn", "https://news.example.cn/"),
    ("https://news.example.cn/a?UTM_Source=x&fbclid=1&gclid=2", "https://news.example.cn/a"),
    (None, None),
    ("", None),
])
def test_canonical_link(url: str | None, expected: str | None) -> None:
    """Tracking parameters, fragments, default ports and host case are dropped; the rest kept."""
    assert canonical_link(url) == expected


def test_duplicate_sources_share_canonical_link() -> None:
    """The article in dup_source_a and dup_source_b gets one canonical link."""
    a = _fixture_entries("dup_source_a.xml", "http://127.0.0.1:8001/a.xml")[0]
    b = _fixture_entries("dup_source_b.xml", "http://127.0.0.1:8001/b.xml")[0]
    assert a.key != b.key
    assert a.link != b.link
    assert a.canonical_link == b.canonical_link == "https://news.example.cn/a/123.html"
    assert a.link == "https://news.example.cn/a/123.html?utm_source=rss&utm_medium=feed#top"


# --- absolute IRIs ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("tag:news.example.cn,2022-05-06:jijin/70001", True),
    ("https://news.example.cn/a/1.html", True),
    ("http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW1", True),
    ("urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6", True),
    ("urn:feedhub:x", True),
    ("mailto:a@example.org", True),
    ("http://中文.example/路径", True),
    ("NW202205062370666142", False),
    ("JF20220506001", False),
    ("/a/1.html", False),
    ("a/1.html", False),
    ("http://", False),
    ("https:///path", False),
    ("tag:", False),
    ("", False),
    ("http://a.example/x y", False),
    ("1tag:x", False),
    (" tag:x,2022:1", False),
])
def test_is_absolute_iri(value: str, expected: bool) -> None:
    """Atom ids must be absolute IRIs; RSS guids often are not."""
    assert is_absolute_iri(value) is expected
