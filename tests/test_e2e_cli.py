"""End to end: the real CLI polls fixture feeds from a real HTTP server on 127.0.0.1.

These are the issue's acceptance tests: outputs are read back with feedparser and
lxml, and served once through the real ``feedhub serve``.
"""

from __future__ import annotations

import calendar
import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from lxml import etree

from tests.conftest import CliResult, SourceSpec, config_text, fixture_route, run_cli
from tests.daemonproc import free_port
from tests.feedserver import FeedServer, Route
from tests.test_server import serving

SLUG, LABEL = "zhengquanshibaowang", "证券时报网新闻"
ATOM = f"feeds/{SLUG}.atom"
FIXTURES = ["rss2_utf8.xml", "rss1_utf8.rdf", "atom_utf8.xml", "gbk_declared_gb2312.xml",
            "gb18030_header_only.xml", "big5.xml", "zoneless_dates.xml", "xml_base_atom.xml",
            "relative_rss.xml", "dup_source_a.xml", "dup_source_b.xml", "hostile.xml",
            "future_date.xml", "billion_laughs.xml", "xxe.xml", "json_feed_11.json"]
ATOM_NS = {"a": "http://www.w3.org/2005/Atom"}

#: Title → published instant (UTC), from tests/data/feeds/README.md.
PUBLISHED = {
    "沪深两市成交额连续第五日突破万亿元": "2022-05-06T06:05:11",
    "央行开展100亿元7天期逆回购操作": "2022-05-06T01:20:00",
    "多家券商上调科技板块盈利预测": "2022-05-05T13:18:45",
    "创业板指午盘涨1.35% 新能源赛道走强": "2022-05-06T02:30:00",
    "人民币兑美元中间价下调": "2022-05-05T08:02:10",
    "新发基金规模环比回升": "2022-05-06T05:00:00",
    "ETF份额连续三周净增加": "2022-05-05T10:40:00",
    "养老目标基金迎来新成员": "2022-05-04T00:05:00",
    "《朱镕基讲话实录》再版 出版板块午后走强": "2022-05-06T05:40:00",
    "基金经理张喆：看好消费复苏主线": "2022-05-06T02:15:00",
    "昇腾生态伙伴大会召开 算力概念股活跃": "2022-05-05T07:30:00",
    "𠮷野家中国门店扩张提速": "2022-05-06T08:00:00",
    "證券時報：臺股加權指數收漲1.2%": "2022-05-06T05:35:00",
    "港股恆生指數午後回升 科技股領漲": "2022-05-06T07:10:00",
    "两市早盘震荡 沪指微涨": "2022-05-06T07:47:32",
    "早间公告精选": "2022-05-05T22:30:00",
    "正常日期的快讯": "2022-05-06T02:00:00",
    "沪指收复3000点 成交量温和放大": "2022-05-06T07:05:00",
    "国债期货全线收涨": "2022-05-06T07:20:00",
    "深市公司一季度营业收入同比增长12.3%": "2022-05-06T01:30:00",
}
OTHER_TITLES = {
    "欧元区通胀创新高 欧洲奢侈品股承压", "继承频道的 xml:base", "条目自带 xml:base",
    "相对链接一：根路径", "相对链接二：当前目录", "来源甲独家：北交所新股首日表现",
    "来源乙独家：可转债市场周度回顾", "脚本与事件处理器", "危险链接、内嵌框架与样式",
    "SVG脚本与data地址", "日期写成了2099年的公告", "期货市场收盘：黑色系集体走低",
}
#: Strings that must not survive anywhere in any output (compared lower-cased, unescaped).
FORBIDDEN = ["<script", "javascript:", "onerror", "onclick", "onload", "<iframe", "alert(",
             "display:none", "data:text/html", "data:image", "evil.example", "lollollol"]


def serve_fixtures(server: FeedServer, names: list[str]) -> list[str]:
    """Serve fixtures under /feeds/ with an ETag each; return their URLs."""
    for name in names:
        server.set(f"/feeds/{name}", fixture_route(name, etag=f'"{name}-v1"'))
    return [server.url(f"/feeds/{name}") for name in names]


def lines(result: CliResult) -> list[str]:
    """The non-empty lines of a command's standard output."""
    return [line for line in result.stdout.splitlines() if line.strip()]


def line_for(result: CliResult, url: str) -> str:
    """The one output line of ``poll`` that names ``url``."""
    found = [line for line in lines(result) if re.search(rf"\s{re.escape(url)}(\s|$)", line)]
    assert len(found) == 1, (url, result.stdout)
    return found[0]


def published_utc(entry: Any) -> datetime:
    """An entry's published time, as feedparser read it, in UTC."""
    return datetime.fromtimestamp(calendar.timegm(entry.published_parsed), UTC)


def public_files(public: Path) -> dict[str, Path]:
    """Every output file under data/public by relative path."""
    return {p.relative_to(public).as_posix(): p for p in public.rglob("*") if p.is_file()}


def snapshot(public: Path) -> dict[str, tuple[int, bytes]]:
    """mtime and bytes of every output file."""
    return {rel: (p.stat().st_mtime_ns, p.read_bytes()) for rel, p in public_files(public).items()}


@dataclass(frozen=True)
class Polled:
    """All sixteen fixtures polled once."""

    config: Path
    public: Path
    server: FeedServer
    urls: dict[str, str]
    result: CliResult
    before: datetime
    after: datetime


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Polled]:
    """Poll every fixture feed once through the CLI."""
    root = tmp_path_factory.mktemp("e2e")
    with FeedServer() as server:
        urls = dict(zip(FIXTURES, serve_fixtures(server, FIXTURES), strict=True))
        config = root / "feeds.yaml"
        config.write_text(config_text([SourceSpec(u) for u in urls.values()]), encoding="utf-8")
        before = datetime.now(UTC)
        result = run_cli("poll", config=config)
        after = datetime.now(UTC)
        yield Polled(config=config, public=root / "data" / "public", server=server, urls=urls,
                     result=result, before=before, after=after)


@pytest.fixture(scope="module")
def atom(polled: Polled) -> Any:
    """The category Atom feed, as feedparser reads it."""
    return feedparser.parse((polled.public / ATOM).read_bytes())


def by_title(atom: Any) -> dict[str, Any]:
    """Entries by title; a title seen twice fails."""
    titles = [e.title for e in atom.entries]
    assert len(titles) == len(set(titles)), [t for t in titles if titles.count(t) > 1]
    return {e.title: e for e in atom.entries}


def test_poll_reports_every_source(polled: Polled) -> None:
    """Exit 0, one ok line per source, and a total line."""
    assert polled.result.code == 0, polled.result.stderr
    out = lines(polled.result)
    assert len(out) == len(FIXTURES) + 1, polled.result.stdout
    for url in polled.urls.values():
        assert line_for(polled.result, url).startswith("ok ")
    assert out[-1].startswith(f"polled {len(FIXTURES)} sources:")
    assert "0 failed" in out[-1]


def test_entries_and_titles(atom: Any) -> None:
    """The category feed has every expected article, Chinese text intact, each once."""
    assert not atom.bozo, atom.get("bozo_exception")
    titles = set(by_title(atom))
    assert set(PUBLISHED) | OTHER_TITLES <= titles
    # 16 sources, 37 items, minus the shared article read twice, minus hostile/billion laughs/xxe
    # variants that may or may not be stored: at least every named article is present.
    assert len(titles) >= len(PUBLISHED) + len(OTHER_TITLES)
    assert all("\ufffd" not in t for t in titles)
    ids = [e.id for e in atom.entries]
    assert len(ids) == len(set(ids))
    links = [e.link for e in atom.entries]
    assert len(links) == len(set(links))


def test_every_entry_tagged_and_sourced(atom: Any) -> None:
    """Every republished entry carries the category label and names its source."""
    assert atom.entries
    for e in atom.entries:
        assert LABEL in [t.term for t in e.tags], e.title
        assert e.source.get("title"), e.title
        assert e.content[0].type == "text/html"


def test_times(polled: Polled, atom: Any) -> None:
    """Dates go out at +08:00; zone-less dates were read as Shanghai time; 2099 is clamped."""
    entries = by_title(atom)
    for title, when in PUBLISHED.items():
        assert published_utc(entries[title]) == datetime.fromisoformat(when).replace(tzinfo=UTC), title
    root = etree.parse(str(polled.public / ATOM))
    for node in root.iterfind(".//a:entry/a:published", ATOM_NS):
        assert str(node.text).endswith("+08:00"), node.text
    for node in root.iterfind(".//a:entry/a:updated", ATOM_NS):
        assert str(node.text).endswith("+08:00"), node.text
    future = published_utc(entries["日期写成了2099年的公告"])
    assert polled.before.replace(microsecond=0) <= future <= polled.after
    for e in atom.entries:
        assert e.updated_parsed >= e.published_parsed, e.title


def test_zoneless_rfc822_date_read_as_shanghai(atom: Any) -> None:
    """``Fri, 06 May 2022 15:47:32`` (no zone) is 2022-05-06T07:47:32Z."""
    entry = by_title(atom)["期货市场收盘：黑色系集体走低"]
    assert published_utc(entry) == datetime(2022, 5, 6, 7, 47, 32, tzinfo=UTC)


def test_links_absolute_and_resolved(polled: Polled, atom: Any) -> None:
    """Every link is absolute; relative links and xml:base are resolved as the README says."""
    port_base = polled.server.base_url
    entries = by_title(atom)
    root = etree.parse(str(polled.public / ATOM))
    hrefs = [str(link.get("href")) for link in root.iterfind(".//a:entry/a:link", ATOM_NS)]
    assert len(hrefs) >= len(atom.entries) - 1  # H3's javascript: link was dropped
    for href in hrefs:
        assert re.match(r"^https?://[^/]+/", href), href
    assert entries["相对链接一：根路径"].link == f"{port_base}/news/1.html"
    assert entries["相对链接二：当前目录"].link == f"{port_base}/feeds/news/2.html"
    rel2 = entries["相对链接二：当前目录"].content[0].value
    assert f'src="{port_base}/feeds/img/2.png"' in rel2
    assert f'href="{port_base}/news/1.html"' in rel2
    assert f'src="{port_base}/img/1.png"' in entries["相对链接一：根路径"].content[0].value
    a, b = entries["继承频道的 xml:base"], entries["条目自带 xml:base"]
    assert a.link == "http://example.org/news/2022/05/a.html"
    assert 'src="http://example.org/news/img/x.png"' in a.content[0].value
    assert 'href="http://example.org/b.html"' in a.content[0].value
    assert b.link == "http://example.org/other/section/2022/05/b.html"
    assert 'src="http://example.org/other/section/img/x.png"' in b.content[0].value
    assert 'href="http://example.org/other/b.html"' in b.content[0].value
    for name in ("src", "href"):
        for e in atom.entries:
            for url in re.findall(rf'{name}="([^"]*)"', e.content[0].value):
                assert re.match(r"^https?://", url), (e.title, url)


def test_encodings(atom: Any) -> None:
    """GBK-only, GB18030 4-byte and Big5 text comes out right."""
    entries = by_title(atom)
    assert "3200€" in entries["欧元区通胀创新高 欧洲奢侈品股承压"].content[0].value
    assert "𠮷野家" in entries["𠮷野家中国门店扩张提速"].content[0].value
    for e in atom.entries:
        assert "\ufffd" not in e.content[0].value


def test_duplicate_article_appears_once(atom: Any) -> None:
    """The article reached through both dup sources is in the merged feed once."""
    shared = [e for e in atom.entries if e.link.split("?")[0] == "https://news.example.cn/a/123.html"]
    assert len(shared) == 1
    assert sum(e.title == "深市公司一季度营业收入同比增长12.3%" for e in atom.entries) == 1


def test_nothing_hostile_in_any_output(polled: Polled, atom: Any) -> None:
    """No script, handler, javascript:/data: URL, /etc/passwd or entity blow-up in any file."""
    files = public_files(polled.public)
    assert {ATOM, "feeds/all.atom", "feeds/all.rss", "feeds/all.json", "index.html",
            "opml.xml"} <= set(files)
    passwd_first = Path("/etc/passwd").read_text(errors="replace").splitlines()[0]
    for rel, path in files.items():
        raw = path.read_text(encoding="utf-8")
        if rel.endswith(".json"):
            raw = json.dumps(json.loads(raw), ensure_ascii=False)
        text = html.unescape(html.unescape(raw)).lower()
        for bad in FORBIDDEN:
            assert bad not in text, (rel, bad)
        assert "root:" not in text, rel
        assert passwd_first.lower() not in text, rel
    entries = by_title(atom)
    em_media = '<p class="em_media">（文章来源：证券时报网）</p>'
    for title in ("脚本与事件处理器", "危险链接、内嵌框架与样式", "SVG脚本与data地址"):
        assert em_media in entries[title].content[0].value, title
    assert not entries["SVG脚本与data地址"].get("link", "").startswith("javascript")


def test_served_feed_matches_file(polled: Polled) -> None:
    """``feedhub serve`` serves the category Atom bytes that poll wrote, readable by feedparser."""
    with serving(polled.config) as base:
        r = httpx.get(f"{base}/{ATOM}")
    assert r.status_code == 200
    assert r.content == (polled.public / ATOM).read_bytes()
    served = feedparser.parse(r.content)
    assert "沪深两市成交额连续第五日突破万亿元" in {e.title for e in served.entries}
    assert all(LABEL in [t.term for t in e.tags] for e in served.entries)


def test_second_poll_is_conditional_and_writes_nothing(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """Second poll: If-None-Match sent, 304 answered, outputs untouched, "not modified" printed."""
    names = ["rss2_utf8.xml", "atom_utf8.xml", "big5.xml", "json_feed_11.json"]
    urls = serve_fixtures(feed_server, names)
    config = write_config([SourceSpec(u) for u in urls])
    assert run_cli("poll", config=config).code == 0
    public = config.parent / "data" / "public"
    before = snapshot(public)
    assert ATOM in before

    second = run_cli("poll", config=config)
    assert second.code == 0, second.stderr
    for name, url in zip(names, urls, strict=True):
        requests = feed_server.requests(f"/feeds/{name}")
        assert len(requests) == 2
        assert requests[-1].headers.get("if-none-match") == f'"{name}-v1"'
        assert line_for(second, url).startswith("not modified")
    assert snapshot(public) == before
    rows = json.loads(run_cli("status", "--json", config=config).stdout)
    assert [(r["status"], r["http_status"]) for r in rows] == [("not_modified", 304)] * len(names)


def test_updated_source(feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """v1 then v2: the corrected title replaces the old one, the new entry appears, no duplicate."""
    feed_server.set("/up.xml", fixture_route("updated_v1.xml", etag='"v1"'))
    url = feed_server.url("/up.xml")
    config = write_config([SourceSpec(url)])
    first = run_cli("poll", config=config)
    assert first.code == 0, first.stderr
    atom_path = config.parent / "data" / "public" / ATOM
    v1 = feedparser.parse(atom_path.read_bytes())
    assert "某银行拟发行200亿元二级资本债" in {e.title for e in v1.entries}
    v1_published = {e.id: e.published for e in v1.entries}

    feed_server.set("/up.xml", fixture_route("updated_v2.xml", etag='"v2"'))
    second = run_cli("poll", config=config)
    assert second.code == 0, second.stderr
    assert "1 new, 1 updated" in line_for(second, url)
    assert feed_server.requests("/up.xml")[-1].headers.get("if-none-match") == '"v1"'
    v2 = feedparser.parse(atom_path.read_bytes())
    titles = [e.title for e in v2.entries]
    assert len(titles) == 3 == len(set(titles))
    assert "某银行拟发行200亿元二级资本债" not in titles
    assert "某银行拟发行300亿元二级资本债（更正）" in titles
    assert "保险资金权益投资比例上限拟调整" in titles
    assert len({e.id for e in v2.entries}) == 3
    new = next(e for e in v2.entries if e.title == "保险资金权益投资比例上限拟调整")
    assert published_utc(new) == datetime(2022, 5, 6, 8, 30, tzinfo=UTC)
    # The corrected entry keeps its id and published date (updated in place).
    corrected = next(e for e in v2.entries if e.title == "某银行拟发行300亿元二级资本债（更正）")
    assert v1_published[corrected.id] == corrected.published
    assert corrected.updated != corrected.published


def test_failing_sources_do_not_stop_the_others(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """A 404 and a closed port are reported as errors; the good source is stored; exit 0."""
    [good] = serve_fixtures(feed_server, ["rss2_utf8.xml"])
    missing = feed_server.url("/feeds/missing.xml")
    closed = f"http://127.0.0.1:{free_port()}/feed.xml"
    config = write_config([SourceSpec(missing), SourceSpec(closed), SourceSpec(good)])
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    assert line_for(result, good).startswith("ok ")
    assert "3 new" in line_for(result, good)
    assert line_for(result, missing).startswith("error")
    assert "404" in line_for(result, missing)
    closed_line = line_for(result, closed)
    assert closed_line.startswith("error")
    assert closed_line.split(closed, 1)[1].strip(" —-"), closed_line  # a reason is given
    assert len(lines(result)) == 4

    status = run_cli("status", config=config)
    assert status.code == 0
    missing_row = next(line for line in status.stdout.splitlines() if missing in line)
    assert "error" in missing_row and "404" in missing_row
    rows = {row["source"]: row for row in json.loads(run_cli("status", "--json", config=config).stdout)}
    assert set(rows) == {missing, closed, good}
    assert rows[missing]["status"] == "error" and "404" in rows[missing]["error"]
    assert rows[missing]["http_status"] == 404
    assert rows[closed]["status"] == "error" and rows[closed]["error"]
    assert rows[good]["status"] == "ok" and rows[good]["error"] is None
    assert rows[good]["entries"] == 3
    atom = feedparser.parse((config.parent / "data" / "public" / ATOM).read_bytes())
    assert len(atom.entries) == 3


def test_poll_one_source(feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """``poll --source URL`` polls only that source; an unknown URL is a usage error (2)."""
    one, two = serve_fixtures(feed_server, ["rss2_utf8.xml", "big5.xml"])
    config = write_config([SourceSpec(one), SourceSpec(two)])
    result = run_cli("poll", "--source", two, config=config)
    assert result.code == 0, result.stderr
    assert len(lines(result)) == 2
    assert line_for(result, two).startswith("ok ")
    assert one not in result.stdout
    assert feed_server.requests("/feeds/rss2_utf8.xml") == []
    assert len(feed_server.requests("/feeds/big5.xml")) == 1

    unknown = run_cli("poll", "--source", feed_server.url("/feeds/nope.xml"), config=config)
    assert unknown.code == 2
    assert feed_server.requests("/feeds/nope.xml") == []


def test_warm_poll_loads_no_parser_renderer_or_terminal_libraries(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """A scripted poll of unchanged sources imports neither the parser, the renderer, the
    process pool (parsing in a thread) nor Rich (nor httpx's command line, which would bring
    Rich): start-up is most of its time."""
    urls = serve_fixtures(feed_server, ["rss2_utf8.xml", "atom_utf8.xml"])
    config = write_config([SourceSpec(urls[0]), SourceSpec(urls[1])])
    assert run_cli("poll", config=config).code == 0
    script = ("import runpy, sys\n"
              f"sys.argv = ['feedhub', '--config', {str(config)!r}, 'poll']\n"
              "try:\n    runpy.run_module('feedhub', run_name='__main__')\n"
              "except SystemExit as e:\n    assert not e.code, e.code\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'pygments', "
              "'feedparser', 'jinja2', 'feedgen', 'multiprocessing'} | {m for m in sys.modules "
              "if m == 'httpx._main' and sys.modules[m] is not None}), file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k != "FEEDHUB_PARSE_WORKERS"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "not modified" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_build_writes_every_output(feed_server: FeedServer, write_config: Callable[..., Path],
                                   tmp_path: Path) -> None:
    """``build --out DIR`` writes every feed, page and the OPML, all well-formed."""
    urls = serve_fixtures(feed_server, ["rss2_utf8.xml", "atom_utf8.xml"])
    config = write_config([SourceSpec(urls[0]), SourceSpec(urls[1], category="other")])
    assert run_cli("poll", config=config).code == 0
    out = tmp_path / "site"
    result = run_cli("build", "--out", str(out), config=config)
    assert result.code == 0, result.stderr
    expected = {f"feeds/{slug}.{ext}" for slug in ("all", SLUG, "other") for ext in ("atom", "rss", "json")}
    expected |= {"index.html", f"category/{SLUG}.html", "category/other.html", "opml.xml",
                 "feeds/_health.atom"}
    assert set(public_files(out)) == expected
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    for rel, path in public_files(out).items():
        if rel.endswith((".atom", ".rss", ".xml")):
            etree.fromstring(path.read_bytes(), parser)
        elif rel.endswith(".json"):
            json.loads(path.read_bytes())
    assert len(feedparser.parse((out / "feeds/other.atom").read_bytes()).entries) == 3
    assert len(feedparser.parse((out / "feeds/all.atom").read_bytes()).entries) == 6


def test_poll_publishes_every_linked_feed(feed_server: FeedServer,
                                          write_config: Callable[..., Path]) -> None:
    """After the first poll every feed that the OPML and pages link to exists in data/public."""
    [url] = serve_fixtures(feed_server, ["rss2_utf8.xml"])
    config = write_config([SourceSpec(url)])
    assert run_cli("poll", config=config).code == 0
    public = config.parent / "data" / "public"
    opml = etree.parse(str(public / "opml.xml"))
    for outline in opml.iterfind(".//outline"):
        rel = str(outline.get("xmlUrl")).removeprefix("http://127.0.0.1:8080/")
        assert (public / rel).is_file(), rel


def test_gone_source_skipped_then_forced(feed_server: FeedServer,
                                         write_config: Callable[..., Path]) -> None:
    """410 → reported gone; next poll skips it without a request; --force polls it again."""
    feed_server.set("/gone.xml", Route(status=410, body=b"gone", content_type="text/plain"))
    [good] = serve_fixtures(feed_server, ["rss2_utf8.xml"])
    gone = feed_server.url("/gone.xml")
    config = write_config([SourceSpec(gone), SourceSpec(good)])

    first = run_cli("poll", config=config)
    assert first.code == 0, first.stderr
    assert line_for(first, gone).startswith("gone")
    assert len(feed_server.requests("/gone.xml")) == 1

    second = run_cli("poll", config=config)
    assert second.code == 0, second.stderr
    assert line_for(second, gone).startswith("skipped")
    assert len(feed_server.requests("/gone.xml")) == 1
    assert len(feed_server.requests("/feeds/rss2_utf8.xml")) == 2

    forced = run_cli("poll", "--force", config=config)
    assert forced.code == 0, forced.stderr
    assert line_for(forced, gone).startswith("gone")
    assert len(feed_server.requests("/gone.xml")) == 2
    rows = {row["source"]: row for row in json.loads(run_cli("status", "--json", config=config).stdout)}
    assert rows[gone]["status"] == "gone"
    assert rows[gone]["http_status"] == 410
