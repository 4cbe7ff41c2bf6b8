"""Scraped sources: an HTML listing page with no feed, polled through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import feedparser

from tests.conftest import SourceSpec, run_cli
from tests.feedserver import FeedServer, Route

#: A listing in the style of a Chinese news site: relative links, local dates, and noise
#: (a navigation bar, an advertisement item with no link) around the list.
LISTING = """<!DOCTYPE html>
<html><head><meta charset="gbk"><title>证券时报网 要闻</title></head>
<body>
<div class="nav"><a href="/">首页</a> <a href="/yw/">要闻</a></div>
<ul class="news-list">
  <li><a href="/article/1.html">央行：保持流动性合理充裕</a>
      <span class="time">2022-05-06 15:47</span><p>央行今日开展逆回购操作。</p></li>
  <li><a href="2.html">沪指收涨0.5%
        成交额超万亿</a>
      <span class="time">2022-05-06 09:30</span><p>两市<b>成交</b>活跃。<script>x()</script></p></li>
  <li class="ad"><span>广告</span></li>
  <li><a href="https://other.example.cn/3.html"> 证监会发布新规 </a>
      <span class="time">2022年05月05日</span></li>
</ul>
</body></html>
"""

SCRAPE = """    scrape:
      item: "ul.news-list li"
      title: "a"
      link: "a@href"
      date: "span.time"
      summary: "p"
"""


def _page(text: str = LISTING, charset: str = "gbk") -> Route:
    return Route(body=text.encode(charset), content_type=f"text/html; charset={charset}")


def test_listing_page_becomes_entries_with_links_titles_and_local_dates(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    feed_server.set("/yw/list.html", _page())
    config = write_config([SourceSpec(feed_server.url("/yw/list.html"), extra=SCRAPE)])
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    assert "3 new" in result.stdout, result.stdout

    atom = feedparser.parse((config.parent / "data/public/feeds/zhengquanshibaowang.atom")
                            .read_bytes())
    by_title = {e.title: e for e in atom.entries}
    assert set(by_title) == {"央行：保持流动性合理充裕", "沪指收涨0.5% 成交额超万亿", "证监会发布新规"}
    first = by_title["央行：保持流动性合理充裕"]
    assert first.link == feed_server.url("/article/1.html")
    assert by_title["沪指收涨0.5% 成交额超万亿"].link == feed_server.url("/yw/2.html")
    assert by_title["证监会发布新规"].link == "https://other.example.cn/3.html"
    assert any(t.term == "证券时报网新闻" or t.label == "证券时报网新闻" for t in first.tags)
    # 15:47 in Asia/Shanghai, written with its offset.
    published = datetime.fromisoformat(first.published)
    assert published.utcoffset() == timedelta(hours=8)
    assert (published.hour, published.minute) == (15, 47)
    # The summary went through the sanitizer: markup kept, scripts dropped.
    summary = by_title["沪指收涨0.5% 成交额超万亿"].summary
    assert "<b>成交</b>" in summary and "<script" not in summary and "x()" not in summary

    # A second poll of the same page stores nothing twice (identity: the resolved link).
    again = run_cli("poll", "--force", config=config)
    assert again.code == 0, again.stderr
    assert "3 new" not in again.stdout
    status = json.loads(run_cli("status", "--json", config=config).stdout)
    assert status[0]["entries"] == 3


def test_selector_matching_nothing_is_an_error_for_the_source(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    feed_server.set("/list.html", _page())
    config = write_config([SourceSpec(feed_server.url("/list.html"), extra=SCRAPE)])
    assert run_cli("poll", config=config).code == 0
    # The site changes its layout: the list is gone.
    feed_server.set("/list.html", _page(LISTING.replace("news-list", "headlines")))
    result = run_cli("poll", "--force", config=config)
    assert "matched nothing" in result.stdout + result.stderr
    status = json.loads(run_cli("status", "--json", config=config).stdout)[0]
    assert status["status"] == "error" and "ul.news-list li" in status["error"], status
    assert status["entries"] == 3  # what was stored stays


def test_invalid_selector_is_a_check_error_with_its_line(
        write_config: Callable[..., Path]) -> None:
    config = write_config([SourceSpec("http://127.0.0.1:9/list.html",
                                      extra=SCRAPE.replace('"a@href"', '"a[href@href"'))])
    result = run_cli("check", config=config)
    assert result.code == 2
    assert f"{config}:" in result.stderr and "sources[0].scrape.link" in result.stderr
    assert "not a CSS selector" in result.stderr


def test_category_scrape_applies_to_its_sources(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    feed_server.set("/list.html", _page(charset="utf-8"))
    config = write_config([SourceSpec(feed_server.url("/list.html"), category="pages")],
                          extra_categories="  pages:\n    title: 网页\n"
                          + SCRAPE)
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    assert "3 new" in result.stdout, result.stdout


def test_preview_shows_what_a_page_would_give_and_stores_nothing(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    feed_server.set("/yw/list.html", _page())
    config = write_config([SourceSpec(feed_server.url("/feed.xml"))])
    result = run_cli("preview", feed_server.url("/yw/list.html"),
                     "--scrape-item", "ul.news-list li", "--scrape-title", "a",
                     "--scrape-link", "a@href", "--scrape-date", "span.time",
                     "--scrape-summary", "p", config=config)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"证券时报网 要闻 — {feed_server.url('/yw/list.html')} (3 entries)"
    assert lines[1] == "2022-05-06 15:47  央行：保持流动性合理充裕"
    assert lines[2] == f"    {feed_server.url('/article/1.html')}"
    assert lines[3] == "    央行今日开展逆回购操作。"
    assert not (config.parent / "data" / "feedhub.sqlite3").exists()

    missing = run_cli("preview", feed_server.url("/yw/list.html"), "--scrape-item", "li",
                      config=config)
    assert missing.code == 2 and "--scrape-title, --scrape-link" not in missing.stderr
    assert "missing: title, link" in missing.stderr
    bad = run_cli("preview", feed_server.url("/yw/list.html"), "--scrape-item", "li[[",
                  "--scrape-title", "a", "--scrape-link", "a@href", config=config)
    assert bad.code == 2 and "--scrape-item" in bad.stderr and "not a CSS selector" in bad.stderr
