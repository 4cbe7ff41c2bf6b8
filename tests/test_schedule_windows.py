"""Market-hours schedules: intervals that depend on time windows, with an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from feedhub.config import load_config
from feedhub.errors import ConfigError
from feedhub.fetch import Fetcher
from feedhub.model import PollStatus
from feedhub.pipeline import Deps, poll_source
from feedhub.policy import Schedule, Window, next_poll_at
from feedhub.store import open_store
from tests.conftest import SourceSpec, fixture_route, run_cli
from tests.feedserver import FeedServer

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS = frozenset(range(5))
#: A-share trading hours: every 2 minutes on weekdays 09:15-15:00, else every 30 minutes.
MARKET = Schedule(default=timedelta(minutes=30), timezone=SHANGHAI,
                  windows=(Window(days=WEEKDAYS, start=time(9, 15), end=time(15, 0),
                                  every=timedelta(minutes=2)),))
MARKET_YAML = ("    interval: {default: 30m, timezone: Asia/Shanghai, windows: "
               "[{days: mon-fri, between: '09:15-15:00', every: 2m}]}\n")


def sh(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant in Shanghai in the week of Monday 2026-11-23 (``day`` 0 is Monday)."""
    return datetime(2026, 11, 23 + day, hour, minute, second, tzinfo=SHANGHAI)


def _ok(schedule: Schedule, now: datetime, hint: timedelta | None = None) -> datetime:
    due = next_poll_at(now=now, schedule=schedule, status=PollStatus.OK, failures=0, hint=hint)
    assert due is not None
    return due.astimezone(SHANGHAI)


# --- the policy, pure --------------------------------------------------------------------


@pytest.mark.parametrize(("now", "due"), [
    (sh(0, 10), sh(0, 10, 2)),              # inside the window: its interval
    (sh(0, 9, 14, 59), sh(0, 9, 16, 59)),   # one second before opening: the window's interval
    (sh(0, 9, 0), sh(0, 9, 15)),            # default would be 09:30; polled when it opens
    (sh(0, 8, 0), sh(0, 8, 30)),            # window far away: the default
    (sh(0, 14, 59), sh(0, 15, 29)),         # the 2m interval ends when the window closes
    (sh(0, 15, 0), sh(0, 15, 30)),          # closing instant is outside
    (sh(4, 14, 0), sh(4, 14, 2)),           # Friday
    (sh(5, 10, 0), sh(5, 10, 30)),          # Saturday: default all day
    (sh(6, 23, 50), sh(7, 0, 20)),          # Sunday night → Monday 00:20, not yet 09:15
])
def test_market_hours(now: datetime, due: datetime) -> None:
    assert _ok(MARKET, now) == due


def test_window_read_in_its_time_zone() -> None:
    """09:15 in Shanghai is 01:15 UTC; a UTC clock gets the same answer."""
    now = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)
    assert _ok(MARKET, now) == (now + timedelta(minutes=2)).astimezone(SHANGHAI)
    assert MARKET.interval_at(datetime(2026, 11, 23, 7, 0, tzinfo=UTC)) == timedelta(minutes=30)


def test_window_past_midnight() -> None:
    """``between: 22:00-02:00`` on Friday runs into Saturday morning."""
    night = Schedule(default=timedelta(hours=1), timezone=SHANGHAI,
                     windows=(Window(days=frozenset({4}), start=time(22), end=time(2),
                                     every=timedelta(minutes=10)),))
    assert night.interval_at(sh(4, 23)) == timedelta(minutes=10)
    assert night.interval_at(sh(5, 1, 59)) == timedelta(minutes=10)
    assert night.interval_at(sh(5, 2)) == timedelta(hours=1)
    assert night.interval_at(sh(3, 23)) == timedelta(hours=1)  # Thursday is not a window day
    assert _ok(night, sh(4, 21, 30)) == sh(4, 22)
    assert _ok(night, sh(5, 1, 55)) == sh(5, 2, 55)


def test_overlapping_windows_shortest_wins() -> None:
    both = Schedule(default=timedelta(hours=1), timezone=SHANGHAI, windows=(
        Window(days=WEEKDAYS, start=time(9), end=time(17), every=timedelta(minutes=10)),
        Window(days=WEEKDAYS, start=time(9, 30), end=time(11, 30), every=timedelta(minutes=1))))
    assert both.interval_at(sh(0, 10)) == timedelta(minutes=1)
    assert _ok(both, sh(0, 9, 25)) == sh(0, 9, 30)
    assert _ok(both, sh(0, 11, 29, 30)) == sh(0, 11, 39, 30)


def test_hint_still_lengthens_inside_a_window() -> None:
    """A feed's ttl of 5 minutes outweighs a 2-minute window; a window never shortens it."""
    assert _ok(MARKET, sh(0, 10), hint=timedelta(minutes=5)) == sh(0, 10, 5)
    assert _ok(MARKET, sh(0, 9), hint=timedelta(minutes=20)) == sh(0, 9, 20)


def test_backoff_builds_on_the_interval_in_force() -> None:
    due = next_poll_at(now=sh(0, 10), schedule=MARKET, status=PollStatus.ERROR, failures=3)
    assert due == sh(0, 10, 16)  # 2m × 2³
    due = next_poll_at(now=sh(5, 10), schedule=MARKET, status=PollStatus.ERROR, failures=1)
    assert due == sh(5, 11)      # 30m × 2


def test_no_windows_is_a_plain_interval() -> None:
    plain = Schedule(default=timedelta(minutes=15))
    assert _ok(plain, sh(0, 10)) == sh(0, 10, 15)
    assert plain.longest == timedelta(minutes=15)


# --- feeds.yaml ---------------------------------------------------------------------------


def test_config_resolves_source_category_and_default(write_config: Callable[..., Path],
                                                     tmp_path: Path) -> None:
    """A source's interval wins over its category's, which wins over defaults.interval."""
    config = write_config([SourceSpec("http://127.0.0.1:9/a.xml", extra=MARKET_YAML),
                           SourceSpec("http://127.0.0.1:9/b.xml"),
                           SourceSpec("http://127.0.0.1:9/c.xml", category="night")],
                          extra_categories=(
                              "  night:\n    title: 夜盘\n    interval:\n      default: 1h\n"
                              "      windows:\n        - {days: 'sat,sun', between: '21:00-02:30',"
                              " every: 5m}\n"))
    loaded = load_config(config)
    a, b, c = loaded.sources
    assert a.schedule == MARKET
    assert b.schedule == Schedule(default=timedelta(minutes=15), timezone=SHANGHAI)
    assert c.schedule.default == timedelta(hours=1)
    assert c.schedule.windows == (Window(days=frozenset({5, 6}), start=time(21),
                                         end=time(2, 30), every=timedelta(minutes=5)),)
    assert c.schedule.timezone == SHANGHAI  # the source's (here the site's) zone
    assert run_cli("check", config=config).code == 0
    shown = run_cli("status", "http://127.0.0.1:9/a.xml", config=config)
    assert shown.code == 0, shown.stderr
    assert "30m; 2m mon-fri 09:15-15:00 (Asia/Shanghai)" in shown.stdout


@pytest.mark.parametrize(("interval", "field", "words"), [
    ("{default: 30m, windows: [{days: mon-fry, between: '09:15-15:00', every: 2m}]}",
     "sources[0].interval.windows[0].days", "mon-fri"),
    ("{default: 30m, windows: [{between: '9:15-25:00', every: 2m}]}",
     "sources[0].interval.windows[0].between", "HH:MM-HH:MM"),
    ("{default: 30m, windows: [{between: '09:15-09:15', every: 2m}]}",
     "sources[0].interval.windows[0].between", "must differ"),
    ("{default: 30m, windows: [{between: '09:15-15:00'}]}",
     "sources[0].interval.windows[0].every", "add every:"),
    ("{default: 30m, windows: [{between: '09:15-15:00', every: 2m, evry: 1m}]}",
     "sources[0].interval.windows[0].evry", "allowed here: days, between, every"),
    ("{windows: []}", "sources[0].interval.default", "add default:"),
    ("{default: 30m, timezone: Mars/Base}", "sources[0].interval.timezone", "IANA"),
    ("{default: 1x}", "sources[0].interval.default", "a number and a unit"),
])
def test_bad_schedule_is_located(write_config: Callable[..., Path], interval: str, field: str,
                                 words: str) -> None:
    config = write_config([SourceSpec("http://127.0.0.1:9/a.xml",
                                      extra=f"    interval: {interval}\n")])
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    issues = caught.value.issues
    assert [i.field for i in issues] == [field]
    assert words in str(issues[0]) and issues[0].line == 18
    result = run_cli("check", config=config)
    assert result.code == 2 and field in result.stderr


# --- a real poll with an injected clock -----------------------------------------------------


def test_poll_schedules_by_the_window(feed_server: FeedServer, write_config: Callable[..., Path],
                                      tmp_path: Path) -> None:
    """Polling at a fixed instant stores the next poll the window asks for; the feed's
    ``<ttl>10</ttl>`` still lengthens the 2-minute window interval."""
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml"))
    config = load_config(write_config([SourceSpec(feed_server.url("/a.xml"), extra=MARKET_YAML)]))
    source = config.sources[0]

    async def poll_at(now: datetime) -> datetime | None:
        store = await open_store(tmp_path / "store.sqlite3")
        try:
            async with Fetcher(config.site.base_url) as fetcher:
                deps = Deps(config=config, store=store, fetcher=fetcher, clock=lambda: now.astimezone(UTC))
                await poll_source(deps, source, force=True)
            state = await store.source_state(source.url)
            assert state is not None and state.last_status == "ok"
            return state.next_poll_at
        finally:
            await store.close()

    assert asyncio.run(poll_at(sh(0, 9, 0))) == sh(0, 9, 15)
    assert asyncio.run(poll_at(sh(0, 11, 0))) == sh(0, 11, 10)
    assert asyncio.run(poll_at(sh(5, 11, 0))) == sh(5, 11, 30)
