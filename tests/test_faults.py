"""Hostile sources: every fault is a recorded, clearly explained outcome, and loses nothing.

One world for all scenarios: each source first serves a good feed (polled and
stored), then its fault. After the second poll, for every scenario: the run
went on (exit 0), the good source is unaffected, the source's state says what
happened, entries stored before are all still there and still published, and
nothing hostile reached any output.
"""

from __future__ import annotations

import gzip
import html
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from tests.conftest import SourceSpec, config_text, fixture_route, run_cli
from tests.feedserver import FeedServer, Route
from tests.hostile import HostileServer

MAX_BODY = 4 * 1024 * 1024
HOSTILE = ("<script", "onerror", "onclick", "javascript:", "data:text/html", "<iframe",
           "<style", "root:x:0", "<svg")


def item(name: str, n: int, *, title: str | None = None, guid: str | None = None,
         link: str | None = None, date: str | None = "Fri, 06 May 2022 10:00:00 +0800",
         body: str = "<p>正文</p>", extra: str = "") -> str:
    title = title if title is not None else f"{name} 正常条目{n}"
    guid = guid if guid is not None else f"{name}-{n}"
    link = link if link is not None else f"https://news.example.cn/{name}/{n}.html"
    date_el = f"<pubDate>{date}</pubDate>" if date else ""
    return (f"<item><title>{html.escape(title)}</title><link>{html.escape(link)}</link>"
            f'<guid isPermaLink="false">{html.escape(guid)}</guid>{date_el}'
            f"<description>{html.escape(body)}</description>{extra}</item>")


def rss(items: str, *, decl: str = '<?xml version="1.0" encoding="utf-8"?>', head: str = "") -> str:
    return (f'{decl}{head}<rss version="2.0"><channel><title>测试源</title>'
            f"<link>https://news.example.cn/</link><description>d</description>{items}"
            "</channel></rss>")


def good_feed(name: str) -> bytes:
    return rss(item(name, 1) + item(name, 2)).encode()


@dataclass(frozen=True)
class Scenario:
    """One fault: what the source serves the second time, and what must follow."""

    name: str
    #: Route for the second poll; ``None`` when ``hostile_path`` is used instead.
    route: Route | None = None
    #: Path on the raw-socket server, for faults the stdlib server cannot play.
    hostile_path: str | None = None
    statuses: tuple[str, ...] = ("error",)
    reason: str | None = None
    #: Titles that must be published after the fault (besides the first poll's).
    titles: tuple[str, ...] = ()
    moved: bool | None = None


def _redirect(status: int, location: str) -> Route:
    return Route(status=status, headers={"Location": location}, body=b"", content_type=None)


def scenarios(feeds: FeedServer) -> list[Scenario]:
    big = b"<!-- " + b"x" * (MAX_BODY + 10) + b" -->"
    bomb = gzip.compress(rss(item("bomb", 9) + "<!--" + " " * (60 * 1024 * 1024) + "-->").encode())
    http_date = format_datetime(datetime.now(UTC) + timedelta(minutes=30), usegmt=True)
    gbk_title, gb18030_title = "朱镕基讲话实录再版", "𠮷野家门店扩张"
    ten_thousand = "".join(item("many", n, title=f"第{n}条", date=None) for n in range(10_000))
    feeds.set("/moved/new.xml", Route(body=rss(item("moved", 3)).encode()))
    feeds.set("/chain/end.xml", Route(body=rss(item("chain", 3)).encode()))
    for i in range(8):
        feeds.set(f"/chain/{i}", _redirect(302, f"/chain/{i + 1}" if i < 7 else "/chain/end.xml"))
    return [
        Scenario("malformed", Route(body=b"\x00\x01<<<not xml at all {{{"), reason="not an RSS"),
        Scenario("truncated", Route(body=good_feed("truncated")[:150]),
                 statuses=("ok", "error")),
        Scenario("empty", Route(body=b""), reason="empty body"),
        Scenario("html_page", Route(
            body=b'<!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml" '
                 b'href="/feed.xml"></head><body>hi</body></html>', content_type="text/html"),
            reason="HTML page"),
        Scenario("json_not_feed", Route(body=b'{"data": [1, 2, 3]}',
                                        content_type="application/json"), reason="JSON"),
        Scenario("gbk_as_utf8", Route(body=rss(item("gbk_as_utf8", 3, title=gbk_title)).encode(
            "gb18030"), content_type="application/rss+xml"), statuses=("ok",),
            titles=(gbk_title,)),
        Scenario("gb2312_with_gb18030", Route(body=rss(
            item("gb2312_with_gb18030", 3, title=gb18030_title),
            decl='<?xml version="1.0" encoding="gb2312"?>').encode("gb18030")),
            statuses=("ok",), titles=(gb18030_title,)),
        Scenario("text_xml_no_charset", Route(
            body=rss(item("text_xml_no_charset", 3, title="无字符集声明"), decl="").encode(),
            content_type="text/xml"), statuses=("ok",), titles=("无字符集声明",)),
        Scenario("bom_disagrees", Route(
            body=b"\xef\xbb\xbf" + rss(item("bom_disagrees", 3, title="字节序标记优先"),
                                       decl='<?xml version="1.0" encoding="gb2312"?>').encode()),
            statuses=("ok",), titles=("字节序标记优先",)),
        Scenario("too_large", Route(body=big), reason="cap"),
        Scenario("gzip_bomb", Route(body=bomb, headers={"Content-Encoding": "gzip"}),
                 reason="after decompression"),
        Scenario("slow_drip", hostile_path="/drip", reason="timed out"),
        Scenario("never_answers", hostile_path="/hang", reason="time"),
        Scenario("reset_mid_body", hostile_path="/reset", reason="closed"),
        Scenario("redirect_loop", _redirect(302, "/s/redirect_loop"), reason="redirects"),
        Scenario("long_chain", _redirect(302, "/chain/0"), reason="redirects"),
        Scenario("moved_301", _redirect(301, "/moved/new.xml"), statuses=("ok",),
                 titles=("moved 正常条目3",), moved=True),
        Scenario("found_302", _redirect(302, "/moved/new.xml"), statuses=("ok",), moved=False),
        Scenario("temporary_307", _redirect(307, "/moved/new.xml"), statuses=("ok",), moved=False),
        Scenario("permanent_308", _redirect(308, "/moved/new.xml"), statuses=("ok",), moved=True),
        Scenario("redirect_ftp", _redirect(301, "ftp://news.example.cn/feed.xml"),
                 reason="non-HTTP"),
        Scenario("redirect_javascript", _redirect(302, "javascript:alert(1)"), reason="refused"),
        Scenario("not_found", Route(status=404, body=b"no"), reason="HTTP 404"),
        Scenario("gone", Route(status=410, body=b"gone"), statuses=("gone",), reason="410"),
        Scenario("too_many_seconds", Route(status=429, body=b"", headers={"Retry-After": "120"}),
                 statuses=("rate_limited",), reason="429"),
        Scenario("unavailable_date", Route(status=503, body=b"",
                                           headers={"Retry-After": http_date}),
                 statuses=("rate_limited",), reason="503"),
        Scenario("server_error", Route(status=500, body=b"boom"), reason="HTTP 500"),
        Scenario("html_content_type", Route(body=b"<html><body>maintenance</body></html>",
                                            content_type="text/html"), reason="HTML page"),
        Scenario("feed_as_text_html", Route(body=rss(item("feed_as_text_html", 3)).encode(),
                                            content_type="text/html"),
                 statuses=("ok",), titles=("feed_as_text_html 正常条目3",)),
        Scenario("billion_laughs", fixture_route("billion_laughs.xml"), statuses=("ok", "error")),
        Scenario("external_entity", fixture_route("xxe.xml"), statuses=("ok", "error")),
        Scenario("huge_attribute", Route(body=rss(item(
            "huge_attribute", 3, title="巨大属性",
            extra=f'<enclosure url="https://news.example.cn/a.mp3" type="audio/mpeg" '
                  f'length="{"9" * 2_000_000}"/>')).encode()),
            statuses=("ok", "error")),
        Scenario("hostile_entries", fixture_route("hostile.xml"), statuses=("ok",)),
        Scenario("hostile_everywhere", Route(body=rss(item(
            "hostile_everywhere", 3, title="<script>alert(1)</script>标题<img src=x onerror=a()>",
            link="javascript:alert(1)",
            body='<svg onload="alert(1)"><script>alert(2)</script></svg><a href="data:text/html,'
                 'x">d</a><iframe src="https://evil.example/"></iframe><p class="em_media">留下</p>',
            extra='<enclosure url="javascript:alert(1)" type="audio/mpeg" length="1"/>')).encode()),
            statuses=("ok",)),
        Scenario("bad_dates", Route(body=rss(
            item("bad_dates", 3, date="not a date at all")
            + item("bad_dates", 4, date=None)
            + item("bad_dates", 5, date="Sat, 01 Jan 2150 00:00:00 +0000")
            + item("bad_dates", 6, date="Mon, 01 Jan 1900 00:00:00 +0000")).encode()),
            statuses=("ok",), titles=tuple(f"bad_dates 正常条目{n}" for n in (3, 4, 5, 6))),
        Scenario("duplicate_guids", Route(body=rss(
            item("duplicate_guids", 3, guid="same") + item("duplicate_guids", 4, guid="same")
        ).encode()), statuses=("ok",), titles=("duplicate_guids 正常条目3",)),
        Scenario("ten_thousand_entries", Route(body=rss(ten_thousand).encode()),
                 statuses=("ok",)),
        Scenario("guid_changes_every_fetch", Route(body=rss(item(
            "guid_changes_every_fetch", 1, guid="fresh-guid-2")).encode()), statuses=("ok",)),
    ]


@dataclass
class World:
    config: Path
    public: Path
    db: Path
    urls: dict[str, str]
    cases: dict[str, Scenario]
    first: dict[str, int]
    first_titles: dict[str, set[str]]
    status: dict[str, dict[str, object]] = field(default_factory=dict)
    poll_output: str = ""
    poll_code: int = -1


#: The one scenario kept in its own category, so its 10,000 entries crowd out no others.
CROWD = "ten_thousand_entries"


def _published_titles(public: Path) -> set[str]:
    feed = (public / "feeds/zhengquanshibaowang.atom").read_bytes()
    return {e.title for e in feedparser.parse(feed).entries}


def _counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT source_url, COUNT(*) FROM entries GROUP BY source_url"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("faults")
    with FeedServer() as feeds, HostileServer() as hostile:
        cases = {s.name: s for s in scenarios(feeds)}
        urls = {"good": feeds.url("/s/good")}
        feeds.set("/s/good", fixture_route("rss2_utf8.xml"))
        for name in cases:
            feeds.set(f"/s/{name}", Route(body=good_feed(name), etag=f'"{name}-1"'))
            urls[name] = feeds.url(f"/s/{name}")
        config = root / "feeds.yaml"
        text = config_text([SourceSpec(u, category="other" if name == CROWD else
                                       "zhengquanshibaowang") for name, u in urls.items()],
                           max_entries=1000)
        config.write_text(text + "fetch:\n  timeout: 3s\n  max_body: 4MB\n  per_host: 8\n"
                          "  concurrency: 16\n", encoding="utf-8")
        first = run_cli("poll", config=config, timeout=300)
        assert first.code == 0, first.stderr[-3000:]
        public, db = root / "data" / "public", root / "data" / "feedhub.sqlite3"
        world = World(config=config, public=public, db=db, urls=urls, cases=cases,
                      first=_counts(db), first_titles={}, poll_output=first.stdout)
        titles = _published_titles(public)
        world.first_titles = {name: {t for t in titles if t.startswith(f"{name} ")}
                              for name in cases}
        for name, case in cases.items():
            if case.hostile_path:
                feeds.set(f"/s/{name}", _redirect(307, hostile.url(case.hostile_path)))
            else:
                assert case.route is not None
                feeds.set(f"/s/{name}", case.route)
        second = run_cli("poll", config=config, timeout=300)
        world.poll_code, world.poll_output = second.code, second.stdout + second.stderr
        status = run_cli("status", "--json", config=config)
        assert status.code == 0, status.stderr
        world.status = {row["source"]: row for row in json.loads(status.stdout)}
        yield world


def test_the_run_goes_on(world: World) -> None:
    assert world.poll_code == 0, world.poll_output[-3000:]
    assert "Traceback" not in world.poll_output
    assert world.status[world.urls["good"]]["status"] in ("ok", "not_modified", "unchanged")


CASE_NAMES = [s.name for s in scenarios(FeedServer())]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_fault_is_recorded_and_loses_nothing(world: World, name: str) -> None:
    case, url = world.cases[name], world.urls[name]
    row = world.status[url]
    assert row["status"] in case.statuses, (name, row)
    if case.reason is not None:
        assert row["error"] and case.reason.lower() in str(row["error"]).lower(), (name, row)
        assert url in world.poll_output and str(row["error"]) in world.poll_output
    if case.moved is not None:
        assert bool(row["moved_to"]) is case.moved, row
    counts = _counts(world.db)
    assert counts.get(url, 0) >= world.first[url]  # nothing stored before is lost
    if name == CROWD:
        return
    published = _published_titles(world.public)
    assert world.first_titles[name] <= published, name
    for title in case.titles:
        assert title in published, (name, title)


def test_nothing_hostile_in_any_output(world: World) -> None:
    for path in world.public.rglob("*"):
        if path.is_file():
            text = html.unescape(html.unescape(path.read_text(encoding="utf-8"))).lower()
            if path.suffix == ".html":  # our own pages carry our own stylesheet
                text = re.sub(r"<style>.*?</style>", "", text, flags=re.S)
            for bad in HOSTILE:
                assert bad not in text, (path, bad)
            if path.suffix in (".atom", ".rss", ".xml"):
                etree.parse(str(path))


def test_specific_outcomes(world: World) -> None:
    counts = _counts(world.db)
    assert counts[world.urls["ten_thousand_entries"]] == 2 + 10_000
    assert counts[world.urls["duplicate_guids"]] == 2 + 1
    all_atom = (world.public / "feeds/zhengquanshibaowang.atom").read_text(encoding="utf-8")
    # A guid that changed for the same link is one article, republished once.
    assert all_atom.count("https://news.example.cn/guid_changes_every_fetch/1.html") == 1
    # Future dates clamped to when first seen; the 1900 date kept as the source gave it.
    feed = feedparser.parse(all_atom.encode())
    by_title = {e.title: e for e in feed.entries}
    future = datetime(*by_title["bad_dates 正常条目5"].published_parsed[:6], tzinfo=UTC)
    assert future < datetime.now(UTC) + timedelta(minutes=1)
    assert by_title["bad_dates 正常条目6"].published.startswith("1900-01-01")
    assert '<p class="em_media">留下</p>' in html.unescape(all_atom)
    html_page = world.status[world.urls["html_page"]]["error"]
    assert "/feed.xml" in str(html_page)  # suggests the feed the page links to
