"""The golden article: served as an RSS item, polled, republished exactly."""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from tests.conftest import SEED, SourceSpec, fixture_route, run_cli, seed_required
from tests.feedserver import FeedServer

TITLE = "“科创中国”大湾区联合体落户前海"
LINK = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202205062370666142"
GUID = "NW202205062370666142"
LABEL = "证券时报网新闻"
SLUG = "zhengquanshibaowang"
NS = {"a": "http://www.w3.org/2005/Atom"}


def seed_body() -> str:
    """The seed post's HTML body: after the front matter, up to the blank line before ``<http…>``."""
    seed_required()
    text = SEED.read_text(encoding="utf-8")
    match = re.match(r"\A---\n.*?\n---\n", text, re.S)
    assert match, "the seed has no front matter"
    rest = text[match.end():]
    end = re.search(r"\n\n<https?://[^>\n]+>\n", rest)
    assert end, "the seed has no <http…> link line"
    return rest[:end.start()]


@pytest.fixture
def seed_public(feed_server: FeedServer, write_config: Callable[..., Path]) -> Path:
    """Poll seed.xml through the CLI; return data/public."""
    feed_server.set("/stcn/yw.xml", fixture_route("seed.xml", etag='"seed"'))
    config = write_config([SourceSpec(feed_server.url("/stcn/yw.xml"))])
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    return config.parent / "data" / "public"


def test_seed_body_cut_sanity() -> None:
    """The cut body is the article HTML: starts with <p>, ends with the em_media paragraph."""
    body = seed_body()
    assert body.startswith("<p>5月6日，深圳市科学技术协会")
    assert body.endswith('<p class="em_media">（文章来源：证券时报网）</p>')
    assert "---" not in body and "<http" not in body


def test_seed_entry_in_atom(seed_public: Path) -> None:
    """Title, link, date, label and content come out exactly as in the seed."""
    body = seed_body()
    raw = (seed_public / f"feeds/{SLUG}.atom").read_bytes()
    feed = feedparser.parse(raw)
    assert not feed.bozo
    [entry] = feed.entries
    assert entry.title == TITLE
    assert entry.link == LINK
    assert datetime.fromtimestamp(calendar.timegm(entry.published_parsed), UTC) == datetime(
        2022, 5, 6, 7, 47, 32, tzinfo=UTC)
    assert LABEL in [t.term for t in entry.tags]

    root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True))
    [node] = root.findall("a:entry", NS)
    assert node.findtext("a:published", namespaces=NS) == "2022-05-06T15:47:32+08:00"
    content = node.find("a:content", NS)
    assert content is not None and content.get("type") == "html"
    assert content.text == body


def test_seed_entry_in_rss_and_json(seed_public: Path) -> None:
    """RSS keeps the guid and description; JSON Feed keeps the id and content_html."""
    body = seed_body()
    rss = etree.fromstring((seed_public / f"feeds/{SLUG}.rss").read_bytes(),
                           etree.XMLParser(resolve_entities=False, no_network=True))
    [item] = rss.findall("channel/item")
    assert item.findtext("title") == TITLE
    assert item.findtext("link") == LINK
    assert item.findtext("guid") == GUID
    assert item.findtext("pubDate") == "Fri, 06 May 2022 15:47:32 +0800"
    assert item.findtext("description") == body
    assert LABEL in [c.text for c in item.findall("category")]

    feed = json.loads((seed_public / f"feeds/{SLUG}.json").read_bytes())
    [jitem] = feed["items"]
    assert (jitem["id"], jitem["url"], jitem["title"]) == (GUID, LINK, TITLE)
    assert jitem["date_published"] == "2022-05-06T15:47:32+08:00"
    assert jitem["content_html"] == body
    assert LABEL in jitem["tags"]
