"""The health feed: state changes (pure), then end to end through the real CLI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from feedhub.health import state_change, status_class
from feedhub.model import SourceState
from tests.conftest import SourceSpec, fixture_route, run_cli
from tests.feedserver import FeedServer, Route

T0 = datetime(2022, 5, 6, 7, 0, tzinfo=UTC)
URL = "http://127.0.0.1:9/a.xml"


def _state(status: str | None, *, error: str | None = None, moved_to: str | None = None
           ) -> SourceState:
    return SourceState(url=URL, last_status=status, error=error, moved_to=moved_to,
                       last_poll_at=T0 if status else None)


@pytest.mark.parametrize("before, after, kind, detail", [
    (None, "ok", None, None),  # a first success is no news
    (None, "error", "failing", "HTTP 500"),
    ("ok", "not_modified", None, None),
    ("unchanged", "rate_limited", "failing", "HTTP 500"),
    ("error", "error", None, None),  # still failing: one entry, not one per poll
    ("error", "ok", "recovered", None),
    ("rate_limited", "unchanged", "recovered", None),
    ("ok", "gone", "gone", "410 Gone"),
    ("gone", "gone", None, None),
])
def test_state_change(before: str | None, after: str, kind: str | None, detail: str | None
                      ) -> None:
    event = state_change(_state(before), _state(after, error="HTTP 500"))
    assert (event.kind, event.detail) == (kind, detail) if event else kind is None


def test_moved_is_news_once_and_skipped_is_not_a_state() -> None:
    moved = state_change(_state("ok"), _state("ok", moved_to="http://127.0.0.1:9/b.xml"))
    assert moved is not None and (moved.kind, moved.detail) == ("moved", "http://127.0.0.1:9/b.xml")
    assert state_change(_state("ok", moved_to="http://127.0.0.1:9/b.xml"),
                        _state("ok", moved_to="http://127.0.0.1:9/b.xml")) is None
    assert status_class("skipped") is None and status_class("bogus") is None


def _health(tmp_path: Path) -> feedparser.FeedParserDict:
    parsed = feedparser.parse((tmp_path / "data" / "public" / "feeds" / "_health.atom").read_bytes())
    assert not parsed.bozo, parsed.bozo_exception
    return parsed


def test_health_feed_after_failing_and_recovering(feed_server: FeedServer, tmp_path: Path,
                                                  write_config: Callable[..., Path]) -> None:
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml"))
    feed_server.set("/b.xml", fixture_route("atom_utf8.xml"))
    a, b = feed_server.url("/a.xml"), feed_server.url("/b.xml")
    config = write_config([SourceSpec(a, extra="    name: 来源甲"), SourceSpec(b)])
    assert run_cli("poll", config=config).code == 0
    health = _health(tmp_path)
    assert health.entries == [] and health.feed.title == "财经新闻聚合 · health"
    opml = (tmp_path / "data" / "public" / "opml.xml").read_text(encoding="utf-8")
    assert "feeds/_health.atom" in opml

    feed_server.set("/a.xml", Route(body=b"oops", status=500, content_type="text/plain"))
    assert run_cli("poll", config=config).code == 0
    assert run_cli("poll", config=config).code == 0  # still failing: no second entry
    entries = _health(tmp_path).entries
    assert len(entries) == 1 and entries[0].title.startswith("来源甲 started failing: ")
    assert "500" in entries[0].title
    assert entries[0].link == a

    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml", etag='"v2"'))
    assert run_cli("poll", "--force", config=config).code == 0
    entries = _health(tmp_path).entries
    assert entries[0].title == "来源甲 recovered"
    assert len(entries) == 2 and len({e.id for e in entries}) == 2
