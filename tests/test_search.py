"""Full-text search: the query language, both stores, `feedhub search` and `queries:` feeds."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import httpx
import pytest

from feedhub.model import SourceState
from feedhub.search import Term, entry_text, parse_query
from feedhub.store import Store
from tests.conftest import SourceSpec, run_cli
from tests.feedserver import FeedServer, Route
from tests.test_server import serving
from tests.test_store import T0, A, B, entry

SLUG = "zhengquanshibaowang"

# --- the query language ----------------------------------------------------------------


def test_parse_and_or_not_phrase() -> None:
    q = parse_query('腾讯 "Tencent Music" OR 微信 -广告 | 600519')
    assert q.alternatives == ((Term("腾讯"), Term("Tencent Music")),
                              (Term("微信"), Term("广告", negated=True)),
                              (Term("600519"),))


@pytest.mark.parametrize("text", ["", "   ", "OR", "-广告", "腾讯 OR -广告", '""'])
def test_parse_refuses_queries_that_find_nothing(text: str) -> None:
    with pytest.raises(ValueError, match="search query"):
        parse_query(text)


def test_matches_is_case_insensitive_substring() -> None:
    q = parse_query("apple 茅台")
    assert q.matches("Apple 与贵州茅台", "")
    assert not q.matches("Apple", "五粮液")
    assert parse_query("-x 600519").matches("", "贵州茅台(600519)")


def test_entry_text_strips_markup() -> None:
    assert entry_text("<p>腾讯&amp;微信</p>\n<p class='x'>600519</p>") == "腾讯&微信 600519"


# --- both stores ---------------------------------------------------------------------------

ARTICLES = {
    "t1": ("腾讯控股发布一季度财报", "<p>微信月活跃用户 13 亿。</p>"),
    "t2": ("贵州茅台股价上涨", "<p>贵州茅台(600519)收盘上涨 2%，白酒板块走强。</p>"),
    "t3": ("Apple 发布新款 iPhone", "<p>苹果公司今日发布 iPhone 17，<a href='https://apple.com/cn'>"
                                    "详情</a>。</p>"),
    "t4": ("央行宣布降准", "<p>中国人民银行决定下调存款准备金率。</p>"),
    "t5": ("腾讯音乐广告业务", "<p>Tencent Music 广告收入增长。</p>"),
}


async def _stored(store: Store) -> None:
    for i, (key, (title, content)) in enumerate(ARTICLES.items()):
        url = A if key != "t5" else B
        await store.save_poll(SourceState(url=url), [entry(url, key, title=title, content=content,
                                                          published=T0 + timedelta(hours=i))],
                              T0 + timedelta(hours=i))


async def _keys(store: Store, text: str, urls: tuple[str, ...] = (A, B),
                since: datetime | None = None) -> list[str]:
    found = await store.search(parse_query(text), urls, since=since, limit=10)
    return [e.key for e in found]


@pytest.mark.parametrize(("query", "keys"), [
    ("腾讯", ["t5", "t1"]),                     # a two-character word, newest first
    ("腾讯控股", ["t1"]),                        # four characters: the trigram index
    ("600519", ["t2"]),                         # a stock code inside text
    ("iphone", ["t3"]),                         # case-insensitive English
    ("Apple 苹果", ["t3"]),                      # mixed Chinese and English, both needed
    ("腾讯 OR 央行", ["t5", "t4", "t1"]),
    ("腾讯 -广告", ["t1"]),
    ('"Tencent Music"', ["t5"]),                # a phrase with a space
    ("apple.com", []),                          # markup is not text
    ("详情", ["t3"]),                            # link text is
    ("白酒板块走强", ["t2"]),
    ("五粮液", []),
])
async def test_search_in_both_stores(store: Store, query: str, keys: list[str]) -> None:
    await _stored(store)
    assert await _keys(store, query) == keys


async def test_search_follows_updates_deletes_sources_and_dates(store: Store) -> None:
    await _stored(store)
    assert await _keys(store, "腾讯", urls=(A,)) == ["t1"]
    assert await _keys(store, "腾讯", since=T0 + timedelta(hours=2)) == ["t5"]
    # The article changes: the old words are gone from the index, the new found.
    await store.save_poll(SourceState(url=A), [entry(A, "t1", title="腾讯控股更名",
                                                     content="<p>茅台酒</p>", published=T0)],
                          T0 + timedelta(days=1))
    assert await _keys(store, "微信") == []
    assert await _keys(store, "茅台酒") == ["t1"]
    # Retention deletes it: no longer found.
    await store.prune(older_than=T0 + timedelta(minutes=30), keep_per_source=None)
    assert await _keys(store, "茅台酒") == []
    assert await _keys(store, "贵州茅台") == ["t2"]


async def test_search_index_caught_up_after_reopen(db_path: Path) -> None:
    """Entries saved by one process are found by another; the index lives in the file."""
    from feedhub.store import open_store

    first = await open_store(db_path)
    await _stored(first)
    await first.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM search_pending").fetchone()[0] == len(ARTICLES)
    second = await open_store(db_path)
    try:
        assert await _keys(second, "降准") == ["t4"]
    finally:
        await second.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM search_pending").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM entries_fts").fetchone()[0] == len(ARTICLES)


# --- the CLI and query feeds, end to end ----------------------------------------------------


def _rss(items: list[tuple[str, str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>https://news.example.cn/{g}.html</link><guid>{g}</guid>"
        f"<description><![CDATA[{c}]]></description>"
        f"<pubDate>Fri, 06 May 2022 {10 + i:02d}:00:00 +0800</pubDate></item>"
        for i, (g, t, c) in enumerate(items))
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>证券时报</title>"
            f"<link>https://news.example.cn/</link><description>d</description>{body}"
            f"</channel></rss>").encode()


QUERIES = """queries:
  tencent:
    query: 腾讯 OR 微信
    title: 腾讯动态
    categories: [zhengquanshibaowang]
  moutai:
    query: 600519 -广告
"""


def test_cli_search_and_query_feeds(feed_server: FeedServer, tmp_path: Path,
                                    write_config: Callable[..., Path]) -> None:
    items = [("a1", "腾讯控股发布财报", "<p>微信月活 13 亿</p>"),
             ("a2", "贵州茅台(600519)上涨", "<p>白酒走强</p>"),
             ("a3", "央行降准", "<p>释放长期资金</p>"),
             ("a4", "茅台广告", "<p>600519 广告投放</p>")]
    feed_server.set("/stcn.xml", Route(body=_rss(items)))
    config = write_config([SourceSpec(feed_server.url("/stcn.xml"))])
    config.write_text(config.read_text(encoding="utf-8") + QUERIES, encoding="utf-8")
    assert run_cli("check", config=config).code == 0
    assert run_cli("poll", config=config).code == 0

    result = run_cli("search", "腾讯", config=config)
    assert result.code == 0, result.stderr
    assert "腾讯控股发布财报" in result.stdout and "央行" not in result.stdout
    assert "https://news.example.cn/a1.html" in result.stdout and "1 entry found" in result.stderr
    hits = json.loads(run_cli("search", "600519", "--json", config=config).stdout)
    assert [h["link"] for h in hits] == ["https://news.example.cn/a4.html",
                                         "https://news.example.cn/a2.html"]
    assert hits[0]["category"] == SLUG
    assert json.loads(run_cli("search", "降准", "--since", "2022-05-07", "--json",
                              config=config).stdout) == []
    bad = run_cli("search", "--category", "nope", "腾讯", config=config)
    assert bad.code == 2 and "no category 'nope'" in bad.stderr
    bad = run_cli("search", "--", "-广告", config=config)
    assert bad.code == 2 and "nothing to find" in bad.stderr
    hits = json.loads(run_cli("search", "--json", "600519 -广告", config=config).stdout)
    assert [h["link"] for h in hits] == ["https://news.example.cn/a2.html"]

    public = tmp_path / "data" / "public"
    tencent = feedparser.parse((public / "feeds" / "q" / "tencent.atom").read_bytes())
    assert not tencent.bozo and tencent.feed.title == "腾讯动态"
    assert [e.link for e in tencent.entries] == ["https://news.example.cn/a1.html"]
    assert [t.term for t in tencent.entries[0].tags] == ["腾讯动态"]
    moutai = feedparser.parse((public / "feeds" / "q" / "moutai.rss").read_bytes())
    assert [e.link for e in moutai.entries] == ["https://news.example.cn/a2.html"]
    assert json.loads((public / "feeds" / "q" / "moutai.json").read_bytes())["items"]
    home = (public / "index.html").read_text(encoding="utf-8")
    assert "feeds/q/tencent.atom" in home and "腾讯 OR 微信" in home
    opml = (public / "opml.xml").read_text(encoding="utf-8")
    assert "feeds/q/tencent.atom" in opml and "feeds/q/moutai.atom" in opml

    # A new matching entry: the query feed follows after the next poll.
    feed_server.set("/stcn.xml", Route(body=_rss([*items, ("a5", "微信支付新规", "<p>支付</p>")])))
    assert run_cli("poll", config=config).code == 0
    with serving(config) as base:
        served = httpx.get(f"{base}/feeds/q/tencent.atom")
        assert served.status_code == 200 and served.headers["etag"]
        assert served.headers["content-type"].startswith("application/atom+xml")
    tencent = feedparser.parse(served.content)
    assert [e.link for e in tencent.entries] == ["https://news.example.cn/a5.html",
                                                 "https://news.example.cn/a1.html"]


@pytest.mark.parametrize(("block", "field", "words"), [
    ("queries:\n  tencent:\n    query: '-广告'\n", "queries.tencent.query", "nothing to find"),
    ("queries:\n  tencent:\n    query: 腾讯\n    categories: [nope]\n",
     "queries.tencent.categories[0]", "category 'nope' is not defined"),
    ("queries:\n  Bad Name:\n    query: 腾讯\n", "queries.Bad Name", "invalid query name"),
    ("queries:\n  tencent:\n    qury: 腾讯\n", "queries.tencent.qury", "unknown key"),
])
def test_bad_queries_are_config_errors(write_config: Callable[..., Path], block: str, field: str,
                                       words: str) -> None:
    config = write_config([SourceSpec("http://127.0.0.1:9/a.xml")])
    config.write_text(config.read_text(encoding="utf-8") + block, encoding="utf-8")
    result = run_cli("check", config=config)
    assert result.code == 2 and field in result.stderr and words in result.stderr


def test_naive_since_is_read_in_the_sites_zone(feed_server: FeedServer,
                                               write_config: Callable[..., Path]) -> None:
    """--since is read in site.timezone (Asia/Shanghai): 09:59 there is before an entry
    published at 10:00 +08:00 (02:00 UTC), 10:01 after it."""
    feed_server.set("/stcn.xml", Route(body=_rss([("b1", "央行降准", "<p>x</p>")])))
    config = write_config([SourceSpec(feed_server.url("/stcn.xml"))])
    assert run_cli("poll", config=config).code == 0  # published 2022-05-06 10:00 +08:00
    found = json.loads(run_cli("search", "降准", "--since", "2022-05-06", "--json",
                               config=config).stdout)
    assert [datetime.fromisoformat(h["published"]).astimezone(UTC) for h in found] == [
        datetime(2022, 5, 6, 2, tzinfo=UTC)]
    assert len(json.loads(run_cli("search", "降准", "--since", "2022-05-06 09:59", "--json",
                                  config=config).stdout)) == 1
    assert json.loads(run_cli("search", "降准", "--since", "2022-05-06 10:01", "--json",
                              config=config).stdout) == []
    bad = run_cli("search", "降准", "--since", "May 6", config=config)
    assert bad.code == 2 and "--since" in bad.stderr
