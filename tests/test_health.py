"""The health feed: state changes (pure), then end to end through the real CLI."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import feedparser
import pytest

from feedhub.health import QUIET_KINDS, quiet_changes, state_change, status_class
from feedhub.model import SourceState
from feedhub.store import Store, sql
from feedhub.store.base import SourceEvent
from tests.conftest import SourceSpec, fixture_route, run_cli
from tests.feedserver import FeedServer, Route
from tests.test_store import entry

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


# --- went quiet, publishing again -------------------------------------------------------------

HOUR = timedelta(hours=1)


def _quiet(now: datetime, dates: list[datetime], *, last: str | None = None,
           status: str = "ok", seen_late: timedelta = timedelta(0)) -> list[str]:
    """Events for one source whose entries were published at ``dates`` and first seen
    ``seen_late`` after that."""
    previous = {URL: SourceEvent(source_url=URL, at=T0, kind=last)} if last else {}
    times = {URL: [(d, d + seen_late) for d in dates]}
    events = quiet_changes(now=now, states=[_state(status)], times=times, last=previous,
                           factor=10, minimum=timedelta(days=2))
    return [f"{e.kind}: {e.detail}" if e.detail else e.kind for e in events]


HOURLY = [T0 - i * HOUR for i in range(20)]  # one entry an hour until T0


@pytest.mark.parametrize("now, last, status, expected", [
    (T0 + timedelta(days=1), None, "ok", []),                         # under the 2-day floor
    (T0 + timedelta(days=2, hours=1), None, "ok",
     ["quiet: nothing new for 2 days, usually every 1 h"]),
    (T0 + timedelta(days=3), "quiet", "ok", []),                      # told once
    (T0 + timedelta(days=3), "resumed", "ok",
     ["quiet: nothing new for 3 days, usually every 1 h"]),           # quiet again
    (T0 + timedelta(days=3), None, "error", []),                      # failing says it already
    (T0 + timedelta(minutes=30), "quiet", "ok", ["resumed"]),         # new entries since
])
def test_quiet_changes(now: datetime, last: str | None, status: str, expected: list[str]) -> None:
    assert _quiet(now, HOURLY, last=last, status=status) == expected


def test_quiet_follows_the_sources_rhythm() -> None:
    """A weekly source is quiet after ten weeks, not two days; two entries are no rhythm."""
    weekly = [T0 - i * timedelta(days=7) for i in range(5)]
    assert _quiet(T0 + timedelta(days=60), weekly) == []
    assert _quiet(T0 + timedelta(days=71), weekly) == [
        "quiet: nothing new for 71 days, usually every 7 days"]
    assert _quiet(T0 + timedelta(days=400), HOURLY[:2]) == []


def test_a_feed_already_stale_when_added_did_not_go_quiet() -> None:
    assert _quiet(T0 + timedelta(days=40), HOURLY, seen_late=timedelta(days=30)) == []
    assert _quiet(T0 + timedelta(days=40), HOURLY, seen_late=timedelta(days=1)) == [
        "quiet: nothing new for 40 days, usually every 1 h"]


def _rss_at(published: list[datetime]) -> bytes:
    items = "".join(f"<item><title>快讯 {i}</title><link>https://news.example.cn/{i}.html</link>"
                    f"<guid>q{i}</guid><pubDate>{format_datetime(p)}</pubDate></item>"
                    for i, p in enumerate(published))
    return (f"<rss version='2.0'><channel><title>快讯</title><link>https://news.example.cn/</link>"
            f"<description>d</description>{items}</channel></rss>").encode()


def test_health_feed_reports_a_quiet_source_and_its_return(
        feed_server: FeedServer, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    """With quiet_after: 1s, a source whose entries stop arriving is quiet two seconds later."""
    soon = datetime.now(UTC) + timedelta(hours=1)  # dated ahead: stored as first seen
    feed_server.set("/a.xml", Route(body=_rss_at([soon] * 5)))
    config = write_config([SourceSpec(feed_server.url("/a.xml"))])
    config.write_text(config.read_text(encoding="utf-8").replace(
        "defaults:\n", "defaults:\n  quiet_after: 1s\n  quiet_factor: 2\n"), encoding="utf-8")
    assert run_cli("poll", config=config).code == 0
    assert _health(tmp_path).entries == []
    time.sleep(2.5)
    assert run_cli("poll", config=config).code == 0
    titles = [e.title for e in _health(tmp_path).entries]
    assert len(titles) == 1 and re.search(r"快讯 went quiet: nothing new for \d+ s", titles[0]), titles
    assert run_cli("poll", config=config).code == 0
    assert len(_health(tmp_path).entries) == 1  # still quiet: no second entry

    feed_server.set("/a.xml", Route(body=_rss_at([soon] * 6)))
    assert run_cli("poll", config=config).code == 0
    titles = [e.title for e in _health(tmp_path).entries]
    assert len(titles) == 2 and "is publishing again" in titles[0], titles


async def test_quiet_events_in_both_stores(store: Store) -> None:
    a, b = "http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/b.xml"
    await store.save_poll(SourceState(url=a), [entry(a, f"k{i}", published=T0 - i * HOUR)
                                                for i in range(4)], T0)
    await store.save_poll(SourceState(url=b), [entry(b, "x", published=T0)], T0)
    assert await store.entry_times(3) == {a: [(T0, T0), (T0 - HOUR, T0), (T0 - 2 * HOUR, T0)],
                                          b: [(T0, T0)]}
    await store.record_events([SourceEvent(source_url=a, at=T0, kind="quiet", detail="d"),
                               SourceEvent(source_url=a, at=T0 + HOUR, kind="resumed"),
                               SourceEvent(source_url=b, at=T0, kind="failing")])
    last = await store.last_events(QUIET_KINDS)
    assert list(last) == [a] and last[a].kind == "resumed" and last[a].at == T0 + HOUR
    assert [e.kind for e in await store.source_events(10)] == ["failing", "resumed", "quiet"]


async def test_entry_times_are_read_in_chunks_in_both_stores(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk edges lose no row and split no source's list (3 rows per chunk here)."""
    monkeypatch.setattr(sql, "TIMES_CHUNK", 3)
    urls = [f"http://127.0.0.1:9/{n}.xml" for n in range(4)]
    for n, url in enumerate(urls):
        await store.save_poll(SourceState(url=url), [
            entry(url, f"k{i}", published=T0 - i * HOUR) for i in range(n + 2)], T0)
    times = await store.entry_times(4)
    assert times == {url: [(T0 - i * HOUR, T0) for i in range(min(n + 2, 4))]
                     for n, url in enumerate(urls)}
