"""Source failover (urls: [primary, fallback…]) end to end through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import feedparser

from tests.conftest import SourceSpec, fixture_route, run_cli
from tests.feedserver import FeedServer, Route

SLUG = "zhengquanshibaowang"
EMPTY = (b"<rss version='2.0'><channel><title>t</title><link>http://127.0.0.1/</link>"
         b"<description>d</description></channel></rss>")


def _status(config: Path) -> dict[str, object]:
    rows = json.loads(run_cli("status", "--json", config=config).stdout)
    assert len(rows) == 1
    row: dict[str, object] = rows[0]
    return row


def test_failover_to_a_fallback_and_back(feed_server: FeedServer, tmp_path: Path,
                                         write_config: Callable[..., Path]) -> None:
    primary, fallback = feed_server.url("/primary.xml"), feed_server.url("/mirror.xml")
    feed_server.set("/primary.xml", Route(body=b"gone", status=404, content_type="text/plain"))
    feed_server.set("/mirror.xml", fixture_route("rss2_utf8.xml"))
    config = write_config([SourceSpec(primary)])
    text = config.read_text(encoding="utf-8").replace(
        f"  - url: {primary}", f"  - urls: [{primary}, {fallback}]")
    config.write_text(text, encoding="utf-8")
    assert run_cli("check", config=config).code == 0

    assert run_cli("poll", config=config).code == 0
    row = _status(config)
    assert row["source"] == primary and row["active_url"] == fallback
    assert row["status"] == "ok" and row["entries"] == 3
    atom = tmp_path / "data" / "public" / "feeds" / f"{SLUG}.atom"
    first = [e.id for e in feedparser.parse(atom.read_bytes()).entries]
    assert len(first) == 3

    # The primary is tried again on the next poll; an empty primary fails over too.
    feed_server.set("/primary.xml", Route(body=EMPTY))
    assert run_cli("poll", config=config).code == 0
    assert len(feed_server.requests("/primary.xml")) == 2
    assert _status(config)["active_url"] == fallback

    # Back on the primary: the same entries keep one identity, none duplicated.
    feed_server.set("/primary.xml", fixture_route("rss2_utf8.xml"))
    assert run_cli("poll", config=config).code == 0
    row = _status(config)
    assert row["active_url"] is None and row["entries"] == 3
    assert [e.id for e in feedparser.parse(atom.read_bytes()).entries] == first


def test_every_url_failing_is_one_error(feed_server: FeedServer,
                                        write_config: Callable[..., Path]) -> None:
    a, b = feed_server.url("/a.xml"), feed_server.url("/b.xml")
    for path in ("/a.xml", "/b.xml"):
        feed_server.set(path, Route(body=b"no", status=500, content_type="text/plain"))
    config = write_config([SourceSpec(a)])
    config.write_text(config.read_text(encoding="utf-8").replace(
        f"  - url: {a}", f"  - urls: [{a}, {b}]"), encoding="utf-8")
    assert run_cli("poll", config=config).code == 0
    row = _status(config)
    assert row["status"] == "error" and row["active_url"] is None
    assert "500" in str(row["error"])


def test_status_and_remove_find_a_source_by_its_fallback(write_config: Callable[..., Path]
                                                         ) -> None:
    a, b = "http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/b.xml"
    config = write_config([SourceSpec(a), SourceSpec("http://127.0.0.1:9/other.xml")])
    config.write_text(config.read_text(encoding="utf-8").replace(
        f"  - url: {a}", f"  - urls: [{a}, {b}]"), encoding="utf-8")
    shown = run_cli("status", b, "--json", config=config)
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["source"]["source"] == a
    assert run_cli("remove", b, "--yes", config=config).code == 0
    text = config.read_text(encoding="utf-8")
    assert a not in text and b not in text and "other.xml" in text
    assert run_cli("check", config=config).code == 0
