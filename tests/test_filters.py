"""Filters and rewrites: unit tests of feedhub.filters, then end to end through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import feedparser
import httpx
import pytest

from feedhub.filters import EntryFilter, Rewrite, RuleSet, compile_pattern, parse_rule
from feedhub.model import StoredEntry
from tests.conftest import SourceSpec, config_text, run_cli
from tests.feedserver import FeedServer, Route
from tests.test_server import serving

SLUG = "zhengquanshibaowang"


def rss(items: Sequence[tuple[str, str, str]], title: str = "证券时报网", prefix: str = "a"
        ) -> bytes:
    """An RSS 2.0 feed of (title, description, author) items, newest first."""
    parts = [f"<rss version='2.0'><channel><title>{title}</title><link>http://127.0.0.1/</link>"
             "<description>d</description>"]
    for i, (t, d, a) in enumerate(items):
        parts.append(f"<item><title>{escape(t)}</title><link>http://127.0.0.1/{prefix}/{i}.html</link>"
                     f"<guid>http://127.0.0.1/{prefix}/{i}</guid><description>{escape(d)}</description>"
                     f"<author>{a}</author>"
                     f"<pubDate>Fri, 06 May 2022 0{i % 10}:00:00 +0800</pubDate></item>")
    return ("".join(parts) + "</channel></rss>").encode()


def entry(title: str, content: str = "", *, author: str = "", link: str = "http://x/1"
          ) -> StoredEntry:
    now = datetime(2022, 5, 6, tzinfo=UTC)
    return StoredEntry(source_url="http://src/", key=link, guid=None, link=link,
                       canonical_link=link, title=title, content_html=content, published=now,
                       first_seen=now, updated=now, authors=(author,) if author else (),
                       categories=(), enclosures=())


def test_rules_keywords_regex_and_scopes() -> None:
    e = entry("【快讯】腾讯控股回购股份", "<p>微信 支付 <b>Tencent</b></p>", author="新华社",
              link="https://www.stcn.com/a/1.html")
    assert parse_rule("腾讯").matches(e)
    assert parse_rule("tencent").matches(e)  # case-insensitive, inside markup-stripped content
    assert not parse_rule("p>").matches(e)  # markup itself is not text
    assert parse_rule("re:回购\\w+").matches(e)
    assert parse_rule("title:re:^【快讯】").matches(e)
    assert not parse_rule("title:微信").matches(e)
    assert parse_rule("author:新华").matches(e)
    assert parse_rule("link:stcn.com").matches(e)
    assert not parse_rule("link:cls.cn").matches(e)
    with pytest.raises(ValueError, match="invalid regular expression"):
        parse_rule("re:(unclosed")
    with pytest.raises(ValueError, match="empty rule"):
        parse_rule("title:")


def test_include_exclude_and_rewrite_of_source_then_category() -> None:
    source = RuleSet(include=(parse_rule("腾讯"), parse_rule("茅台")),
                     exclude=(parse_rule("广告"),),
                     rewrite=(Rewrite(compile_pattern("^【快讯】"), ""),))
    category = RuleSet(exclude=(parse_rule("title:re:^测试"),),
                       rewrite=(Rewrite(compile_pattern(r"(\d+)元"), r"\1 元"),))
    flt = EntryFilter({"http://src/": (source, category)})
    kept = flt.apply(entry("【快讯】腾讯回购100元"))
    assert kept is not None and kept.title == "腾讯回购100 元"
    assert flt.apply(entry("平安银行")) is None
    assert flt.dropped_by(entry("平安银行")) == "include"
    assert flt.dropped_by(entry("茅台广告")) == "exclude 广告"
    assert flt.dropped_by(entry("测试茅台")) == "exclude title:re:^测试"
    other = entry("平安银行")
    assert flt.apply(StoredEntry(**{**_fields(other), "source_url": "http://other/"})) is not None


def _fields(e: StoredEntry) -> dict[str, object]:
    return {name: getattr(e, name) for name in StoredEntry.__slots__}  # type: ignore[attr-defined]


ITEMS = [("【快讯】腾讯控股回购股份", "回购", "a@x (记者甲)"),
         ("茅台一季度营收增长", "白酒", "b@x (记者乙)"),
         ("平安银行发布年报", "银行", "c@x (记者丙)"),
         ("广告：腾讯理财", "推广", "d@x (广告部)"),
         ("港股收盘", "恒指", "e@x (记者丁)")]


def _titles(path: Path) -> list[str]:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.bozo_exception
    return [e.title for e in parsed.entries]


def test_filters_end_to_end(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.set("/a.xml", Route(body=rss(ITEMS)))
    feed_server.set("/b.xml", Route(body=rss([("其他 腾讯", "x", "f@x (记者)"),
                                              ("测试条目", "y", "g@x (记者)")], title="B", prefix="b")))
    a, b = feed_server.url("/a.xml"), feed_server.url("/b.xml")
    rules = ("    include: [腾讯, 'title:re:^茅台']\n"
             "    exclude: ['author:广告部']\n"
             "    rewrite:\n"
             "      - {title: '^【快讯】', to: ''}")
    cats = "    exclude: ['re:^测试']\n"
    config = tmp_path / "feeds.yaml"

    def write(source_rules: str, category_rules: str) -> None:
        text = config_text([SourceSpec(a, extra=source_rules), SourceSpec(b, category="other")])
        text = text.replace("    title: 其他财经\n", "    title: 其他财经\n" + category_rules)
        config.write_text(text, encoding="utf-8")

    write(rules, cats)
    assert run_cli("check", config=config).code == 0
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    public = tmp_path / "data" / "public"
    assert _titles(public / "feeds" / f"{SLUG}.atom") == ["茅台一季度营收增长", "腾讯控股回购股份"]
    assert _titles(public / "feeds" / "other.rss") == ["其他 腾讯"]
    merged = json.loads((public / "feeds" / "all.json").read_text(encoding="utf-8"))
    assert sorted(i["title"] for i in merged["items"]) == sorted(
        ["茅台一季度营收增长", "腾讯控股回购股份", "其他 腾讯"])
    home = (public / "index.html").read_text(encoding="utf-8")
    assert "平安银行" not in home and "【快讯】" not in home

    status = run_cli("status", "--json", config=config)
    rows = {r["source"]: r for r in json.loads(status.stdout)}
    assert rows[a]["entries"] == 5 and rows[a]["filtered"] == 3
    assert rows[a]["filtered_by"] == {"include": 2, "exclude author:广告部": 1}
    assert rows[b]["filtered"] == 1
    assert "3 filtered" in run_cli("status", config=config).stdout

    # A changed rule republishes on build, without fetching again.
    before = len(feed_server.requests())
    write("    exclude: [茅台]\n", "")
    assert run_cli("build", config=config).code == 0
    assert len(feed_server.requests()) == before
    assert _titles(public / "feeds" / f"{SLUG}.atom") == [t for t, _, _ in reversed(ITEMS) if "茅台" not in t]
    assert "测试条目" in _titles(public / "feeds" / "other.atom")

    with serving(config) as base:
        served = feedparser.parse(httpx.get(f"{base}/feeds/{SLUG}.rss").content)
    assert [e.title for e in served.entries] == [t for t, _, _ in reversed(ITEMS) if "茅台" not in t]


def test_check_reports_a_bad_rule_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    text = config_text([SourceSpec("http://127.0.0.1:9/a.xml",
                                   extra="    exclude: ['re:(广告']\n"
                                         "    rewrite:\n      - {title: '[', to: x}")])
    config.write_text(text, encoding="utf-8")
    result = run_cli("check", config=config)
    assert result.code == 2
    lines = text.splitlines()
    exclude_line = next(i for i, line in enumerate(lines, 1) if "exclude:" in line)
    assert f"feeds.yaml:{exclude_line}: sources[0].exclude[0]: invalid regular expression" \
        in result.stderr
    assert "sources[0].rewrite[0]" in result.stderr
