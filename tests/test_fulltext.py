"""Full text: each new entry's link fetched and its article put in place of the summary.

A summary-only RSS feed served on 127.0.0.1 links to article pages in the style of a
Chinese news site (navigation, advertisements, a sidebar, scripts, a footer around the
article), in UTF-8 and in GBK, plus a page that is missing and one that is far too big.
Polled through the real CLI; read back from the Atom, RSS and JSON documents.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

import feedparser
import pytest

from feedhub.errors import ExtractError
from feedhub.extract import extract_article
from feedhub.selectors import compile_selector
from feedhub.ssrf import link_guard
from tests.conftest import SourceSpec, run_cli
from tests.feedserver import FeedServer, Route

#: The article's own paragraphs: what extraction must recover, and all it may keep.
PARAGRAPHS = (
    "证券时报网讯，中国人民银行今日开展了一千亿元七天期逆回购操作，中标利率维持不变，"
    "以维护银行体系流动性合理充裕。",
    "业内人士表示，近期资金面总体平稳，短端利率在政策利率附近运行，预计央行将继续灵活开展"
    "公开市场操作，保持流动性合理充裕。",
    "分析人士指出，随着稳增长政策发力，后续仍有降准降息的空间，货币政策将更加注重精准直达"
    "实体经济。",
    "文章来源：证券时报网",
)
#: Text around the article that must not leak into the entry.
BOILERPLATE = ("栏目3", "开户送好礼", "热门新闻标题", "分享到", "版权所有", "ICP备", "广告脚本",
               "trackPageView")


def article_page(title: str, paragraphs: tuple[str, ...] = PARAGRAPHS) -> str:
    """An article page as Chinese news sites lay them out, noise all around."""
    nav = "".join(f'<li><a href="/c/{i}.html">栏目{i}</a></li>' for i in range(12))
    side = "".join(f'<li><a href="/n/{i}.html">热门新闻标题第{i}条，点击查看详情</a></li>'
                   for i in range(10))
    body = "".join(f"<p>{p}</p>" for p in paragraphs[:-1])
    return f"""<!DOCTYPE html><html><head><meta charset="{{charset}}"><title>{title}_证券时报网</title>
<script>window.ads = ["x"]; document.write("广告脚本");</script><style>.x {{ color: red }}</style>
</head><body><div class="header"><ul class="nav">{nav}</ul></div>
<div class="ad-banner">广告：开户送好礼，立即下载证券APP</div>
<div class="main"><div class="detail-title"><h1>{title}</h1>
<div class="info"><span>2022-05-06 15:47</span><span>来源：证券时报网</span></div></div>
<div class="article-content">{body}<img src="/img/chart.png" alt="走势图"><p>{paragraphs[-1]}</p></div>
<div class="share">分享到：微信 微博</div></div>
<div class="sidebar"><h3>热门</h3><ul>{side}</ul></div>
<div class="footer"><p>版权所有 &copy; 证券时报社 未经书面授权禁止转载</p><p>粤ICP备0000000号</p></div>
<script>trackPageView();</script></body></html>"""


def html_route(text: str, charset: str = "utf-8", *, header: bool = True) -> Route:
    body = text.replace("{charset}", charset).encode(charset)
    return Route(body=body, content_type=f"text/html; charset={charset}" if header else "text/html")


def summary_feed(items: list[tuple[str, str, str]]) -> Route:
    """RSS whose items (title, link, summary) carry only a short summary."""
    when = format_datetime(datetime(2022, 5, 6, 7, 47, tzinfo=UTC))
    xml = "".join(f"<item><title>{escape(t)}</title><link>{escape(link)}</link>"
                  f"<guid>{escape(link)}</guid><pubDate>{when}</pubDate>"
                  f"<description>{escape(s)}</description></item>" for t, link, s in items)
    return Route(body=f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                      f"<title>要闻</title><link>http://127.0.0.1/</link>{xml}</channel></rss>"
                      .encode())


FULL_TEXT = "    full_text: true\n"


def _serve_articles(server: FeedServer, links: dict[str, str] | None = None) -> dict[str, str]:
    """The four article pages and the summary feed linking to them; title → link."""
    server.set("/a/utf8.html", html_route(article_page("央行：保持流动性合理充裕")))
    # GBK named only by <meta>, as many Chinese sites do.
    server.set("/a/gbk.html", html_route(article_page("沪指收涨0.5%"), "gbk", header=False))
    server.set("/a/huge.html", html_route("<html><body>" + "<p>很长</p>" * 700_000 + "</body></html>"))
    links = links or {"央行：保持流动性合理充裕": server.url("/a/utf8.html"),
                      "沪指收涨0.5%": server.url("/a/gbk.html"),
                      "证监会发布新规": server.url("/a/missing.html"),
                      "超大页面": server.url("/a/huge.html")}
    server.set("/feed.xml", summary_feed([(t, u, f"{t}（摘要）") for t, u in links.items()]))
    return links


def _entries(config: Path) -> dict[str, feedparser.FeedParserDict]:
    atom = feedparser.parse((config.parent / "data/public/feeds/zhengquanshibaowang.atom")
                            .read_bytes())
    return {e.title: e for e in atom.entries}


def _status(config: Path) -> dict[str, object]:
    rows = json.loads(run_cli("status", "--json", config=config).stdout)
    assert len(rows) == 1, rows
    return dict(rows[0])


def _article_requests(server: FeedServer) -> int:
    return sum(len(server.requests(p)) for p in
               ("/a/utf8.html", "/a/gbk.html", "/a/missing.html", "/a/huge.html"))


def _recovered(text: str) -> float:
    """Share of the article's characters found in ``text``."""
    total = sum(len(p) for p in PARAGRAPHS)
    return sum(len(p) for p in PARAGRAPHS if p in text) / total


def test_articles_replace_summaries_in_every_format_and_failures_keep_the_summary(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    _serve_articles(feed_server)
    config = write_config([SourceSpec(feed_server.url("/feed.xml"), extra=FULL_TEXT)])
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    assert "4 new" in result.stdout, result.stdout

    entries = _entries(config)
    for title in ("央行：保持流动性合理充裕", "沪指收涨0.5%"):
        content = entries[title].content[0].value
        assert _recovered(content) == 1.0, (title, content)
        leaked = [b for b in BOILERPLATE if b in content]
        assert not leaked, (title, leaked)
        assert "<script" not in content and "<style" not in content
        assert "<p>" in content and f"{title}（摘要）" not in content
    # Relative URLs made absolute, as for feed content.
    assert f'src="{feed_server.url("/img/chart.png")}"' in entries["央行：保持流动性合理充裕"] \
        .content[0].value
    # The missing page and the page over the size cap: the feed's summary, stored anyway.
    assert entries["证监会发布新规"].summary == "证监会发布新规（摘要）"
    assert entries["超大页面"].summary == "超大页面（摘要）"

    status = _status(config)
    assert status["status"] == "ok" and status["entries"] == 4
    error = str(status["error"])
    assert error.startswith("full text: 2 of 4 articles kept the feed's summary"), error
    assert "404" in error or "exceeds" in error

    rss = feedparser.parse((config.parent / "data/public/feeds/zhengquanshibaowang.rss")
                           .read_bytes())
    rss_text = {e.title: e.get("content", [{"value": e.summary}])[0]["value"]
                for e in rss.entries}
    assert _recovered(rss_text["沪指收涨0.5%"]) == 1.0
    feed_json = json.loads((config.parent / "data/public/feeds/zhengquanshibaowang.json")
                           .read_text(encoding="utf-8"))
    json_text = {i["title"]: i.get("content_html", "") for i in feed_json["items"]}
    assert _recovered(json_text["央行：保持流动性合理充裕"]) == 1.0


def test_a_page_is_fetched_once_until_the_entry_changes(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    links = _serve_articles(feed_server)
    config = write_config([SourceSpec(feed_server.url("/feed.xml"), extra=FULL_TEXT)])
    assert run_cli("poll", config=config).code == 0
    first = _article_requests(feed_server)
    assert first == 4

    again = run_cli("poll", "--force", config=config)  # parsed again, nothing new
    assert again.code == 0, again.stderr
    assert _article_requests(feed_server) == first
    assert _recovered(_entries(config)["沪指收涨0.5%"].content[0].value) == 1.0

    # The feed changes one entry: its page, and only it, is fetched again.
    items = [(t, u, f"{t}（摘要）") for t, u in links.items()]
    items[0] = (items[0][0], items[0][1], "更新后的摘要")
    feed_server.set("/feed.xml", summary_feed(items))
    assert run_cli("poll", "--force", config=config).code == 0
    assert len(feed_server.requests("/a/utf8.html")) == 2
    assert _article_requests(feed_server) == first + 1


def test_selector_takes_the_article_and_a_selector_matching_nothing_is_recorded(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    _serve_articles(feed_server, {"央行：保持流动性合理充裕": feed_server.url("/a/utf8.html")})
    config = write_config([SourceSpec(feed_server.url("/feed.xml"),
                                      extra='    full_text_selector: "div.article-content"\n')])
    assert run_cli("poll", config=config).code == 0
    content = _entries(config)["央行：保持流动性合理充裕"].content[0].value
    assert _recovered(content) == 1.0 and "article-content" in content
    assert not [b for b in BOILERPLATE if b in content]

    config.write_text(config.read_text(encoding="utf-8").replace("div.article-content",
                                                                 "div.story-body"),
                      encoding="utf-8")
    feed_server.set("/feed.xml", summary_feed([("央行：保持流动性合理充裕",
                                               feed_server.url("/a/utf8.html"), "新摘要")]))
    assert run_cli("poll", "--force", config=config).code == 0
    status = _status(config)
    assert "'div.story-body' matched nothing" in str(status["error"]), status
    assert _entries(config)["央行：保持流动性合理充裕"].summary == "新摘要"


def test_category_full_text_and_scraped_listing_combine(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    _serve_articles(feed_server)
    listing = ('<html><head><meta charset="utf-8"><title>要闻</title></head><body>'
               '<ul class="news-list"><li><a href="/a/utf8.html">央行：保持流动性合理充裕</a>'
               '<span class="time">2022-05-06 15:47</span></li></ul></body></html>')
    feed_server.set("/list.html", html_route(listing))
    config = write_config(
        [SourceSpec(feed_server.url("/list.html"), category="pages")],
        extra_categories='  pages:\n    title: 网页\n    full_text: true\n    scrape:\n'
                         '      item: "ul.news-list li"\n      title: "a"\n      link: "a@href"\n'
                         '      date: "span.time"\n')
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    atom = feedparser.parse((config.parent / "data/public/feeds/pages.atom").read_bytes())
    assert len(atom.entries) == 1
    assert _recovered(atom.entries[0].content[0].value) == 1.0
    assert datetime.fromisoformat(atom.entries[0].published).utcoffset() == timedelta(hours=8)


def test_links_to_private_addresses_are_refused_unless_allowed(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    # The feed is on 127.0.0.1; its entry points at another host name that resolves to
    # a loopback address: what a hostile feed would do to reach internal services.
    inside = feed_server.url("/a/utf8.html").replace("127.0.0.1", "localhost")
    _serve_articles(feed_server, {"央行：保持流动性合理充裕": inside})
    config = write_config([SourceSpec(feed_server.url("/feed.xml"), extra=FULL_TEXT)])
    assert run_cli("poll", config=config).code == 0
    assert feed_server.requests("/a/utf8.html") == []
    error = str(_status(config)["error"])
    assert "localhost resolves to the non-public address" in error, error
    assert "fetch.private_links: allow" in error
    assert _entries(config)["央行：保持流动性合理充裕"].summary == "央行：保持流动性合理充裕（摘要）"

    config.write_text(config.read_text(encoding="utf-8") + "fetch:\n  private_links: allow\n",
                      encoding="utf-8")
    feed_server.set("/feed.xml", summary_feed([("央行：保持流动性合理充裕", inside, "新摘要")]))
    assert run_cli("poll", "--force", config=config).code == 0
    assert len(feed_server.requests("/a/utf8.html")) == 1
    assert _recovered(_entries(config)["央行：保持流动性合理充裕"].content[0].value) == 1.0


def test_invalid_full_text_selector_is_a_check_error_with_its_line(
        write_config: Callable[..., Path]) -> None:
    config = write_config([SourceSpec("http://127.0.0.1:9/feed.xml",
                                      extra='    full_text_selector: "div[[x"\n')])
    result = run_cli("check", config=config)
    assert result.code == 2
    assert f"{config}:" in result.stderr and "sources[0].full_text_selector" in result.stderr
    assert "not a CSS selector" in result.stderr


@pytest.mark.parametrize("url, refused", [
    ("http://127.0.0.1:8000/a.html", False),     # the source's own host
    ("http://10.1.2.3/a.html", True),            # private
    ("http://169.254.169.254/latest/", True),    # link-local (cloud metadata)
    ("http://[::1]/a.html", True),               # loopback, IPv6
    ("http://224.0.0.1/a.html", True),           # multicast
    ("http://8.8.8.8/a.html", False),            # public (an address literal: no lookup)
])
def test_link_guard_refuses_non_public_hosts_but_the_sources_own(url: str, refused: bool) -> None:
    guard = link_guard("http://127.0.0.1:9/feed.xml", allow_private=False)
    reason = asyncio.run(guard(url))
    assert (reason is not None) == refused, reason
    assert asyncio.run(link_guard("http://127.0.0.1:9/", allow_private=True)(url)) is None


def test_extraction_refuses_pages_with_no_article() -> None:
    page = b"<html><body><div class='nav'><a href='/'>\xe9\xa6\x96\xe9\xa1\xb5</a></div></body></html>"
    with pytest.raises(ExtractError, match="no article found"):
        extract_article(page, url="http://127.0.0.1/x", headers={}, encoding=None, selector=None)
    with pytest.raises(ExtractError, match="matched nothing"):
        extract_article(page, url="http://127.0.0.1/x", headers={}, encoding=None,
                        selector=compile_selector("div.article"))


def test_preview_full_text_shows_the_articles_and_stores_nothing(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    _serve_articles(feed_server)
    config = write_config([SourceSpec(feed_server.url("/other.xml"))])
    result = run_cli("preview", feed_server.url("/feed.xml"), "--full-text", config=config)
    assert result.code == 0, result.stderr
    shown = [line for line in result.stdout.splitlines() if line.startswith(f"    {PARAGRAPHS[0]}")]
    assert len(shown) == 2, result.stdout  # the UTF-8 and the GBK article, whole (< 200)
    assert all(line.endswith(PARAGRAPHS[-1]) for line in shown), shown
    assert "    证监会发布新规（摘要）" in result.stdout.splitlines()
    assert "full text: 2 of 4 articles kept the feed's summary" in result.stderr
    assert not (config.parent / "data" / "feedhub.sqlite3").exists()

    plain = run_cli("preview", feed_server.url("/feed.xml"), config=config)
    assert PARAGRAPHS[0] not in plain.stdout and plain.code == 0
    bad = run_cli("preview", feed_server.url("/feed.xml"), "--full-text-selector", "p[[",
                  config=config)
    assert bad.code == 2 and "--full-text-selector" in bad.stderr
