"""Tests for parsing fetched documents (feedhub.parse) with real HTTP headers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest

from feedhub.errors import EncodingError, ParseError
from feedhub.model import ParsedEntry, ParsedFeed
from feedhub.normalize import parse_and_normalize
from feedhub.parse import parse
from feedhub.sanitize import clean_html
from feedhub.workers import POOL_AFTER, Workers, worker_count, worker_pool
from tests.conftest import FIXTURES, fixture_route
from tests.feedserver import FeedServer, Route

SHANGHAI = ZoneInfo("Asia/Shanghai")
T = TypeVar("T")


def _utc(*args: int) -> datetime:
    """A UTC datetime."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]


def _get(server: FeedServer, path: str, route: Route) -> httpx.Response:
    """Serve ``route`` at ``path`` and fetch it over real HTTP."""
    server.set(path, route)
    response = httpx.get(server.url(path))
    assert response.status_code == 200
    return response


def _parse_response(response: httpx.Response, *, timezone: ZoneInfo = SHANGHAI,
                    encoding: str | None = None) -> ParsedFeed:
    """Parse a response with its real URL and headers."""
    return parse(response.content, url=str(response.url), headers=dict(response.headers),
                 timezone=timezone, encoding=encoding)


def _fixture(server: FeedServer, name: str, *, timezone: ZoneInfo = SHANGHAI,
             encoding: str | None = None) -> ParsedFeed:
    """Fetch fixture ``name`` from the server (with its Content-Type) and parse it."""
    response = _get(server, f"/feeds/{name}", fixture_route(name))
    return _parse_response(response, timezone=timezone, encoding=encoding)


def _date(entry: ParsedEntry) -> datetime | None:
    """The entry's date as normalize uses it."""
    return entry.published or entry.updated


def _all_text(feed: ParsedFeed) -> str:
    """Every text field of a parsed feed, joined."""
    parts = [feed.title, feed.link or ""]
    for e in feed.entries:
        parts += [e.id or "", e.link or "", e.title, e.content_html, *e.authors, *e.categories]
    return "\n".join(parts)


# --- formats ---------------------------------------------------------------------------


def test_rss2(feed_server: FeedServer) -> None:
    """Plain RSS 2.0: guid, +0800 dates, author, category, HTML description."""
    feed = _fixture(feed_server, "rss2_utf8.xml")
    assert feed.version == "rss20"
    assert feed.title == "证券时报网 要闻"
    assert [e.id for e in feed.entries] == ["NW202205062370658801", "NW202205062370640217",
                                            "NW202205052369912345"]
    first = feed.entries[0]
    assert first.title == "沪深两市成交额连续第五日突破万亿元"
    assert first.link == "https://news.example.cn/a/20220506/1001.html"
    assert first.published == _utc(2022, 5, 6, 6, 5, 11)
    assert first.authors == ("王一鸣",)
    assert first.categories == ("市场",)
    assert "<strong>北向资金</strong>" in first.content_html
    assert [e.published for e in feed.entries[1:]] == [_utc(2022, 5, 6, 1, 20), _utc(2022, 5, 5, 13, 18, 45)]


def test_rss1(feed_server: FeedServer) -> None:
    """RSS 1.0 (RDF) with dc:date, dc:creator and dc:subject."""
    feed = _fixture(feed_server, "rss1_utf8.rdf")
    assert feed.version == "rss10"
    assert [(e.title, e.link, _date(e)) for e in feed.entries] == [
        ("创业板指午盘涨1.35% 新能源赛道走强", "https://news.example.cn/kx/20220506/2001.html",
         _utc(2022, 5, 6, 2, 30)),
        ("人民币兑美元中间价下调", "https://news.example.cn/kx/20220505/1987.html",
         _utc(2022, 5, 5, 8, 2, 10)),
    ]
    assert feed.entries[0].authors == ("赵磊",)
    assert feed.entries[0].categories == ("行情",)


def test_atom(feed_server: FeedServer) -> None:
    """Atom 1.0: tag: ids, published and updated, html content, author, category."""
    feed = _fixture(feed_server, "atom_utf8.xml")
    assert feed.version == "atom10"
    first, second, third = feed.entries
    assert first.id == "tag:news.example.cn,2022-05-06:jijin/70001"
    assert first.title == "新发基金规模环比回升"
    assert first.published == _utc(2022, 5, 6, 5)
    assert first.updated == _utc(2022, 5, 6, 5, 25)
    assert first.authors == ("张晓",)
    assert first.categories == ("基金",)
    assert "<strong>215亿元</strong>" in first.content_html
    assert second.title == "ETF份额连续三周净增加"
    assert second.published == _utc(2022, 5, 5, 10, 40)
    assert third.title == "养老目标基金迎来新成员"
    assert (third.published, third.updated) == (_utc(2022, 5, 4, 0, 5), _utc(2022, 5, 5, 1))


def test_rss_ttl(feed_server: FeedServer) -> None:
    """An RSS <ttl> is reported in minutes; a feed without one has none."""
    assert _fixture(feed_server, "rss2_utf8.xml").ttl_minutes == 10
    assert _fixture(feed_server, "atom_utf8.xml").ttl_minutes is None


# --- encodings -------------------------------------------------------------------------


def test_gbk_declared_gb2312(feed_server: FeedServer) -> None:
    """GBK-only characters in a file declared GB2312 come out right."""
    feed = _fixture(feed_server, "gbk_declared_gb2312.xml")
    assert [e.title for e in feed.entries] == ["《朱镕基讲话实录》再版 出版板块午后走强",
                                               "基金经理张喆：看好消费复苏主线",
                                               "昇腾生态伙伴大会召开 算力概念股活跃"]
    assert "李堃、王玥" in feed.entries[1].content_html
    assert "\ufffd" not in _all_text(feed)


def test_gb18030_from_header_only(feed_server: FeedServer) -> None:
    """The charset only in Content-Type decodes 4-byte GB18030 and €."""
    feed = _fixture(feed_server, "gb18030_header_only.xml")
    first, second = feed.entries
    assert first.title == "𠮷野家中国门店扩张提速"
    assert first.published == _utc(2022, 5, 6, 8)
    assert second.title == "欧元区通胀创新高 欧洲奢侈品股承压"
    assert "3200€" in second.content_html


def test_big5(feed_server: FeedServer) -> None:
    """Declared Big5 with traditional characters."""
    feed = _fixture(feed_server, "big5.xml")
    assert [(e.title, e.published) for e in feed.entries] == [
        ("證券時報：臺股加權指數收漲1.2%", _utc(2022, 5, 6, 5, 35)),
        ("港股恆生指數午後回升 科技股領漲", _utc(2022, 5, 6, 7, 10)),
    ]


def test_undeclared_gbk_detected(feed_server: FeedServer) -> None:
    """Undeclared GBK served as bare text/xml is read right by charset detection."""
    feed = _fixture(feed_server, "undeclared_gbk.xml")
    assert len(feed.entries) == 5
    assert feed.entries[0].title == "国内成品油价格迎来年内第八次调整，汽油柴油每吨分别上调一百五十元"
    assert feed.entries[0].published == _utc(2022, 5, 6, 7, 30)
    assert feed.entries[-1].title == "外汇储备规模保持基本稳定，黄金储备连续多月持平"
    assert feed.entries[-1].published == _utc(2022, 5, 5, 3, 25)
    assert "\ufffd" not in _all_text(feed)


GBK_TITLES = ["《朱镕基讲话实录》再版 出版板块午后走强", "基金经理张喆：看好消费复苏主线",
              "昇腾生态伙伴大会召开 算力概念股活跃"]


def _gbk_lying_utf8(server: FeedServer) -> httpx.Response:
    """GBK bytes that claim to be UTF-8 in both the XML declaration and the header."""
    body = (FIXTURES / "gbk_declared_gb2312.xml").read_bytes()
    assert b'encoding="gb2312"' in body
    body = body.replace(b'encoding="gb2312"', b'encoding="utf-8"')
    return _get(server, "/lies.xml", Route(body=body, content_type="application/rss+xml; charset=utf-8"))


def test_encoding_override(feed_server: FeedServer) -> None:
    """A source's ``encoding:`` override beats what the document and header claim."""
    feed = _parse_response(_gbk_lying_utf8(feed_server), encoding="gbk")
    assert [e.title for e in feed.entries] == GBK_TITLES
    assert feed.title == "财经人物"


def test_lying_utf8_without_override_is_not_mangled(feed_server: FeedServer) -> None:
    """Without an override, lying bytes are either read right or reported, never mangled."""
    response = _gbk_lying_utf8(feed_server)
    try:
        feed = _parse_response(response)
    except EncodingError:
        return
    assert [e.title for e in feed.entries] == GBK_TITLES


def test_utf8_with_a_stray_byte_is_not_mangled(feed_server: FeedServer) -> None:
    """One invalid byte in a UTF-8 feed must not turn all its Chinese into mojibake."""
    body = (FIXTURES / "rss2_utf8.xml").read_bytes()
    body = body.replace("沪深两市".encode(), "沪深两市".encode() + b"\xff", 1)
    response = _get(feed_server, "/stray.xml",
                    Route(body=body, content_type="application/rss+xml; charset=utf-8"))
    try:
        feed = _parse_response(response)
    except EncodingError:
        return
    assert feed.title == "证券时报网 要闻"
    assert feed.entries[1].title == "央行开展100亿元7天期逆回购操作"


def test_wrong_override_is_reported(feed_server: FeedServer) -> None:
    """An override the bytes are not valid in is an EncodingError naming the setting."""
    response = _gbk_lying_utf8(feed_server)
    with pytest.raises(EncodingError) as info:
        _parse_response(response, encoding="utf-8")
    assert "encoding" in str(info.value)
    assert info.value.url == str(response.url)


def test_override_on_a_right_declaration(feed_server: FeedServer) -> None:
    """An override that matches the truth changes nothing."""
    feed = _fixture(feed_server, "big5.xml", encoding="big5")
    assert feed.entries[0].title == "證券時報：臺股加權指數收漲1.2%"


# --- dates -----------------------------------------------------------------------------


def test_zoneless_iso_dates_read_in_source_zone(feed_server: FeedServer) -> None:
    """``2022-05-06 15:47:32`` in Asia/Shanghai is 07:47:32 UTC; 06:30 is the previous UTC day."""
    feed = _fixture(feed_server, "zoneless_dates.xml")
    by_id = {e.id: e for e in feed.entries}
    assert by_id["SJ7001"].published == _utc(2022, 5, 6, 7, 47, 32)
    assert by_id["SJ7003"].published == _utc(2022, 5, 5, 22, 30)


def test_zoneless_rfc822_date_read_in_source_zone(feed_server: FeedServer) -> None:
    """``Fri, 06 May 2022 15:47:32`` without a zone is read in Asia/Shanghai too."""
    feed = _fixture(feed_server, "zoneless_dates.xml")
    by_id = {e.id: e for e in feed.entries}
    assert by_id["SJ7002"].published == _utc(2022, 5, 6, 7, 47, 32)


def test_zoneless_dates_follow_the_given_zone(feed_server: FeedServer) -> None:
    """The timezone argument is what zone-less dates are read in."""
    feed = _fixture(feed_server, "zoneless_dates.xml", timezone=ZoneInfo("UTC"))
    assert feed.entries[0].published == _utc(2022, 5, 6, 15, 47, 32)


def test_dates_with_zone_are_not_shifted(feed_server: FeedServer) -> None:
    """A date that carries its zone is unaffected by the source's timezone."""
    feed = _fixture(feed_server, "rss2_utf8.xml", timezone=ZoneInfo("America/New_York"))
    assert feed.entries[0].published == _utc(2022, 5, 6, 6, 5, 11)


def test_zoneless_atom_date() -> None:
    """A zone-less W3C date in Atom is read in the source's zone."""
    body = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>tag:x,2022:f</id>
<updated>2022-05-06T15:47:32</updated>
<entry><id>tag:x,2022:1</id><title>一</title><updated>2022-05-06T15:47:32</updated>
<published>2022-05-06T15:00:00Z</published></entry></feed>""".encode()
    feed = parse(body, url="http://127.0.0.1/a.atom", headers={"content-type": "application/atom+xml"},
                 timezone=SHANGHAI)
    (entry,) = feed.entries
    assert entry.updated == _utc(2022, 5, 6, 7, 47, 32)
    assert entry.published == _utc(2022, 5, 6, 15)


# --- JSON Feed -------------------------------------------------------------------------


def test_json_feed_11(feed_server: FeedServer) -> None:
    """JSON Feed 1.1: ids, urls, titles, dates, tags and authors."""
    feed = _fixture(feed_server, "json_feed_11.json")
    assert feed.version == "json11"
    assert feed.title == "证券时报网 快讯（JSON Feed）"
    assert feed.link == "http://news.example.cn/"
    first, second = feed.entries
    assert first.id == "JF20220506001"
    assert first.link == "https://news.example.cn/jf/20220506/001.html"
    assert first.title == "沪指收复3000点 成交量温和放大"
    assert first.published == _utc(2022, 5, 6, 7, 5)
    assert first.authors == ("吴涛",)
    assert first.categories == ("市场", "A股")
    assert first.content_html == "<p>沪指收盘报3001.56点，两市成交额9876亿元。</p>"
    assert (second.id, second.title, second.published) == ("JF20220506002", "国债期货全线收涨",
                                                           _utc(2022, 5, 6, 7, 20))
    assert second.authors == ("郑洁",)


def _json(doc: object) -> bytes:
    """A JSON document as UTF-8 bytes."""
    return json.dumps(doc, ensure_ascii=False).encode()


def test_json_feed_10_and_text_content() -> None:
    """JSON Feed 1.0 ``author``, ``content_text`` (escaped) and zone-less dates in the source zone."""
    body = _json({"version": "https://jsonfeed.org/version/1", "title": "一", "items": [
        {"id": 7, "url": "https://x.example/7", "content_text": "a < b & <script>",
         "date_published": "2022-05-06T15:47:32", "author": {"name": "甲"},
         "attachments": [{"url": "https://x.example/7.mp3", "mime_type": "audio/mpeg",
                          "size_in_bytes": 12}]}]})
    feed = parse(body, url="http://127.0.0.1/f.json", headers={}, timezone=SHANGHAI)
    assert feed.version == "json10"
    (entry,) = feed.entries
    assert entry.id == "7"
    assert entry.content_html == "a &lt; b &amp; &lt;script&gt;"
    assert entry.published == _utc(2022, 5, 6, 7, 47, 32)
    assert entry.authors == ("甲",)
    assert [(x.url, x.type, x.length) for x in entry.enclosures] == [
        ("https://x.example/7.mp3", "audio/mpeg", 12)]


def test_json_feed_with_bom() -> None:
    """A JSON Feed starting with a UTF-8 BOM is still read."""
    body = b"\xef\xbb\xbf" + (FIXTURES / "json_feed_11.json").read_bytes()
    feed = parse(body, url="http://127.0.0.1/f.json", headers={"content-type": "application/feed+json"},
                 timezone=SHANGHAI)
    assert len(feed.entries) == 2


@pytest.mark.parametrize(("body", "words"), [
    (b"{", "invalid JSON"),
    (b'{"title": "x", "items": []', "invalid JSON"),
    (b'{"a": 1}', "not a JSON Feed"),
    (b'{"version": "https://example.org/version/1.1", "items": []}', "not a JSON Feed"),
    (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "items"),
    (b'{"version": "https://jsonfeed.org/version/1.1"}', "items"),
])
def test_bad_json_is_parse_error(body: bytes, words: str) -> None:
    """Invalid JSON and JSON that is not a feed are ParseErrors naming the problem."""
    with pytest.raises(ParseError) as info:
        parse(body, url="http://127.0.0.1/f.json", headers={"content-type": "application/json"},
              timezone=SHANGHAI)
    assert words in str(info.value)
    assert info.value.url == "http://127.0.0.1/f.json"


def test_json_not_utf8_is_encoding_error() -> None:
    """A JSON Feed that is not UTF-8 is an EncodingError."""
    body = '{"version": "https://jsonfeed.org/version/1.1", "title": "财经", "items": []}'.encode("gbk")
    with pytest.raises(EncodingError):
        parse(body, url="http://127.0.0.1/f.json", headers={}, timezone=SHANGHAI)


# --- not feeds -------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "content_type"), [
    (b"<!DOCTYPE html><html><head><title>x</title></head><body><p>hi</p></body></html>", "text/html"),
    (b"<html><body><a href='/feed.xml'>RSS</a></body></html>", "text/html; charset=utf-8"),
    (b"\x00\x01\x02garbage\xff\xfe", "application/octet-stream"),
    (b"just some text", "text/plain"),
    (b'<?xml version="1.0"?><config><name>1</name></config>', "application/xml"),
    (b"", "application/rss+xml"),
    (b"[1, 2, 3]", "application/json"),
])
def test_not_a_feed_is_parse_error(feed_server: FeedServer, body: bytes, content_type: str) -> None:
    """HTML, garbage and other XML/JSON are ParseErrors, not empty feeds."""
    feed_server.set("/x", Route(body=body, content_type=content_type))
    response = httpx.get(feed_server.url("/x"))
    with pytest.raises(ParseError):
        _parse_response(response)


# --- hostile XML -----------------------------------------------------------------------


def test_billion_laughs_not_expanded(feed_server: FeedServer) -> None:
    """Nested entities are not expanded: rejected, or read without them."""
    try:
        feed = _fixture(feed_server, "billion_laughs.xml")
    except ParseError:
        return
    text = _all_text(feed)
    assert "lollol" not in text
    assert len(text) < 10_000


def test_xxe_not_resolved(feed_server: FeedServer) -> None:
    """An external entity pointing at /etc/passwd is never read."""
    try:
        feed = _fixture(feed_server, "xxe.xml")
    except ParseError:
        return
    text = _all_text(feed)
    assert "root:" not in text
    assert "/bin/" not in text
    assert feed.entries[0].id == "XXE1"


# --- relative URLs ---------------------------------------------------------------------


def test_xml_base_resolution(feed_server: FeedServer) -> None:
    """Links and content URLs resolve against the feed's and the entry's xml:base."""
    feed = _fixture(feed_server, "xml_base_atom.xml")
    a, b = feed.entries
    assert a.link == "http://example.org/news/2022/05/a.html"
    assert a.content_base == "http://example.org/news/"
    assert 'src="img/x.png"' in a.content_html  # raw: the sanitizer resolves it
    assert 'src="http://example.org/news/img/x.png"' in _resolved(a)
    assert 'href="http://example.org/b.html"' in _resolved(a)
    assert b.link == "http://example.org/other/section/2022/05/b.html"
    assert 'src="http://example.org/other/section/img/x.png"' in _resolved(b)
    assert 'href="http://example.org/other/b.html"' in _resolved(b)


def _resolved(entry: ParsedEntry) -> str:
    """The entry's content as normalization makes it: sanitized, URLs resolved."""
    return clean_html(entry.content_html, entry.content_base)


def test_relative_links_resolve_against_feed_url(feed_server: FeedServer) -> None:
    """Without xml:base, relative links resolve against the URL the feed came from."""
    feed = _fixture(feed_server, "relative_rss.xml")
    root = feed_server.base_url
    first, second = feed.entries
    assert first.link == f"{root}/news/1.html"
    assert second.link == f"{root}/feeds/news/2.html"
    assert first.content_base == f"{root}/feeds/relative_rss.xml"
    assert f'src="{root}/img/1.png"' in _resolved(first)
    assert f'src="{root}/feeds/img/2.png"' in _resolved(second)
    assert f'href="{root}/news/1.html"' in _resolved(second)


async def _in_worker(workers: Workers, job: Callable[[], T]) -> T:
    """``job`` run by a worker process: the thread is kept busy meanwhile, for longer
    than the work after which a pool starts."""
    _, result = await asyncio.gather(workers.run(partial(time.sleep, POOL_AFTER + 0.25)),
                                     workers.run(job))
    return result


async def test_parse_errors_come_back_from_a_worker_process() -> None:
    """A body that is not a feed is a ParseError in the caller; the process pool lives on.

    Errors travel back pickled: one that could not be rebuilt broke the whole pool.
    """
    rss = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
           b"<item><title>a</title><guid>g1</guid></item></channel></rss>")
    with worker_pool(2) as workers:
        pids = set()
        for _ in range(3):
            with pytest.raises(ParseError) as caught:
                await _in_worker(workers, partial(parse, b"<html><body>not a feed</body></html>",
                                                  url="http://127.0.0.1:9/x", headers={},
                                                  timezone=SHANGHAI))
            assert caught.value.url == "http://127.0.0.1:9/x"
            feed = await _in_worker(workers, partial(parse, rss, url="http://127.0.0.1:9/y",
                                                     headers={}, timezone=SHANGHAI))
            assert [e.title for e in feed.entries] == ["a"]
            pids.add(await _in_worker(workers, os.getpid))
        assert os.getpid() not in pids


async def test_jobs_run_in_a_thread_until_two_wait() -> None:
    """One job at a time runs in this process (no worker started for a poll of one
    source); jobs that overlap once the thread has worked a while go to worker
    processes, and keep going there."""
    with worker_pool(2) as workers:
        assert await workers.run(os.getpid) == os.getpid()
        assert await workers.run(os.getpid) == os.getpid()
        assert await _in_worker(workers, os.getpid) != os.getpid()
        assert await workers.run(os.getpid) != os.getpid()
    with worker_pool(1) as workers:
        assert set(await asyncio.gather(*(workers.run(os.getpid) for _ in range(3)))) == {
            os.getpid()}


async def test_a_little_work_never_starts_a_pool() -> None:
    """Overlapping jobs that are all quick (a small poll and its republish) take turns in
    the thread: starting worker processes would cost more than the work."""
    with worker_pool(2) as workers:
        done = await asyncio.gather(*(workers.run(partial(_sleep_then_pid, 0.01))
                                      for _ in range(10)))
        assert set(done) == {os.getpid()}
        assert not workers.started
        # A job waiting while the thread works past the threshold: now the pool starts.
        slow = await asyncio.gather(workers.run(partial(_sleep_then_pid, POOL_AFTER + 0.25)),
                                    workers.run(os.getpid))
        assert slow[0] == os.getpid() and slow[1] != os.getpid()
        assert workers.started


def _sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


async def test_a_dead_worker_is_replaced() -> None:
    """A worker killed mid-job: that job runs here instead, later jobs in a new pool."""
    with worker_pool(2) as workers:
        first = await _in_worker(workers, os.getpid)
        killed = await _in_worker(workers, partial(_kill_self_unless, os.getpid()))
        assert killed == os.getpid()  # ran again in this process
        assert await _in_worker(workers, os.getpid) not in (first, os.getpid())


def _kill_self_unless(pid: int) -> int:
    if os.getpid() != pid:
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def _signal_handlers() -> tuple[object, object]:
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)


async def test_workers_ignore_ctrl_c_but_not_sigterm() -> None:
    """Workers leave Ctrl-C to the parent, but can be terminated: the pool ends them with
    SIGTERM when another one dies, and one that ignored it hung the shutdown."""
    with worker_pool(2) as workers:
        assert await _in_worker(workers, _signal_handlers) == (signal.SIG_IGN, signal.SIG_DFL)


async def test_workers_import_only_the_parser() -> None:
    """A worker runs parse_and_normalize without the rest of feedhub (config, store,
    HTTP client): each module imported there is memory every worker pays for."""
    rss = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
           b"<item><title>a</title><guid>g1</guid><description>&lt;p&gt;x&lt;/p&gt;</description>"
           b"</item></channel></rss>")
    job = partial(parse_and_normalize, rss, url="http://127.0.0.1:9/f", headers={},
                  timezone=SHANGHAI, encoding=None, source_url="http://127.0.0.1:9/f",
                  seen_at=datetime(2024, 1, 1, tzinfo=UTC))
    with worker_pool(2) as workers:
        assert [e.title for e in (await _in_worker(workers, job)).entries] == ["a"]
        loaded = await _in_worker(workers, partial(eval, "sorted(__import__('sys').modules)"))
    assert "feedhub.normalize" in loaded
    heavy = {"feedhub.config", "feedhub.pipeline", "feedhub.store", "feedhub.render.site",
             "pydantic", "httpx", "aiosqlite"}
    assert heavy.isdisjoint(loaded), heavy & set(loaded)


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("1", 1), (None, "cores"),
                                                 ("auto", "cores"), ("many", "cores")])
def test_worker_count_setting(monkeypatch: pytest.MonkeyPatch, value: str | None,
                               expected: int | str) -> None:
    """FEEDHUB_PARSE_WORKERS: a number, else (unset, ``auto``, nonsense) one per core."""
    if value is None:
        monkeypatch.delenv("FEEDHUB_PARSE_WORKERS", raising=False)
    else:
        monkeypatch.setenv("FEEDHUB_PARSE_WORKERS", value)
    assert worker_count() == (len(os.sched_getaffinity(0)) if expected == "cores" else expected)
