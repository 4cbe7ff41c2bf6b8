"""The real daemon as a subprocess: systemd notify, schedule, backoff, reload, stop, crash."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import feedparser
from lxml import etree

from feedhub.daemon.polls import MAX_IN_FLIGHT
from tests.conftest import SourceSpec, config_text, fixture_route
from tests.daemonproc import DaemonProcess
from tests.feedserver import FeedServer, Route

LABEL = "证券时报网新闻"


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in pairwise(times)]


def request_times(server: FeedServer, path: str) -> list[float]:
    return [r.time for r in server.requests(path)]


def test_notify_ready_watchdog_stopping_and_clean_exit(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """READY=1 once serving, WATCHDOG=1 periodically, STOPPING=1 on SIGTERM, exit 0."""
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml", etag='"a1"'))
    config = write_config([SourceSpec(feed_server.url("/a.xml"), extra="    interval: 1h")])
    with DaemonProcess(config, watchdog_usec=600_000) as daemon:
        daemon.wait_ready()
        assert daemon.get("/healthz").status_code == 200
        daemon.wait_for(lambda: len(daemon.notified("WATCHDOG=1")) >= 3, what="3 watchdog pings")
        ready = daemon.notified("READY=1")[0]
        assert all(t >= ready for t in daemon.notified("WATCHDOG=1"))
        pings = daemon.notified("WATCHDOG=1")
        assert all(0.1 < g < 1.0 for g in gaps(pings)), gaps(pings)  # half of WatchdogSec
        assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for _, m in daemon.messages)
        assert daemon.stop() == 0
        assert daemon.notified("STOPPING=1")
        assert "Traceback" not in daemon.stderr


def test_sources_polled_on_schedule_and_failures_back_off(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """An ok source is polled every interval; a failing one ever less often; 410 once."""
    feed_server.set("/ok.xml", fixture_route("atom_utf8.xml", etag='"ok"'))  # no <ttl>
    feed_server.set("/fail.xml", Route(status=500, body=b"oops"))
    feed_server.set("/gone.xml", Route(status=410, body=b"gone"))
    config = write_config([
        SourceSpec(feed_server.url("/ok.xml"), extra="    interval: 1s"),
        SourceSpec(feed_server.url("/fail.xml"), extra="    interval: 1s"),
        SourceSpec(feed_server.url("/gone.xml"), extra="    interval: 1s"),
    ])
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: len(feed_server.requests("/fail.xml")) >= 4, timeout=40,
                        what="4 requests to the failing source")
        ok_times = request_times(feed_server, "/ok.xml")
        fail_gaps = gaps(request_times(feed_server, "/fail.xml"))
        assert len(ok_times) >= 8, ok_times
        # interval × 2ⁿ: 2 s, 4 s, 8 s (tick granularity aside)
        assert fail_gaps[0] >= 1.9 and fail_gaps[1] >= 3.9 and fail_gaps[2] >= 7.9, fail_gaps
        assert fail_gaps[1] > fail_gaps[0] and fail_gaps[2] > fail_gaps[1]
        assert len(feed_server.requests("/gone.xml")) == 1
        health = daemon.get("/healthz").json()
        assert health["sources"]["failing"] == 1 and health["sources"]["gone"] == 1
        metrics = daemon.get("/metrics").text
        assert 'feedhub_polls_total{status="error"}' in metrics
        assert 'feedhub_polls_total{status="gone"}' in metrics
        assert "feedhub_fetch_duration_seconds_count" in metrics
        assert 'feedhub_last_success_timestamp_seconds{category="zhengquanshibaowang"}' in metrics
        assert 'feedhub_sources{state="failing"} 1.0' in metrics
        fetched = [line for line in metrics.splitlines()
                   if line.startswith("feedhub_fetched_bytes_total")]
        assert fetched and float(fetched[0].split()[1]) > 0
        assert "poll failed" in daemon.stderr and "HTTP 500" in daemon.stderr
        assert daemon.stop() == 0


def test_retry_after_is_respected(feed_server: FeedServer,
                                  write_config: Callable[..., Path]) -> None:
    feed_server.set("/busy.xml", Route(status=429, body=b"slow down", headers={"Retry-After": "4"}))
    config = write_config([SourceSpec(feed_server.url("/busy.xml"), extra="    interval: 1s")])
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: len(feed_server.requests("/busy.xml")) >= 2, timeout=30,
                        what="a second request after Retry-After")
        assert gaps(request_times(feed_server, "/busy.xml"))[0] >= 3.9
        assert daemon.stop() == 0


def test_restart_does_not_repoll_fresh_sources(feed_server: FeedServer,
                                               write_config: Callable[..., Path]) -> None:
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml", etag='"a"'))
    config = write_config([SourceSpec(feed_server.url("/a.xml"), extra="    interval: 1h")])
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: len(feed_server.requests("/a.xml")) == 1, what="first poll")
        assert daemon.stop() == 0
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        time.sleep(3)
        assert len(feed_server.requests("/a.xml")) == 1
        assert daemon.stop() == 0


def test_a_backlog_is_polled_without_waiting_for_ticks(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """More sources due than may be in flight: each finished poll makes room for the next
    at once, so a backlog is not polled at the in-flight bound per tick."""
    count = MAX_IN_FLIGHT * 3
    for i in range(count):
        feed_server.set(f"/{i}.xml", fixture_route("rss2_utf8.xml", etag=f'"{i}"'))
    config = write_config([SourceSpec(feed_server.url(f"/{i}.xml"), extra="    interval: 1h")
                           for i in range(count)])
    with DaemonProcess(config, spread=0.1) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: len(feed_server.requests()) >= count, what="a first poll of each")
        assert daemon.stop() == 0
    db = sqlite3.connect(config.parent / "data" / "feedhub.sqlite3")
    with db:
        db.execute("UPDATE sources SET next_poll_at = '2000-01-01T00:00:00.000000+00:00'")
    db.close()
    # Ticks 60 s apart: the first claims MAX_IN_FLIGHT, the rest must follow without one.
    with DaemonProcess(config, tick=60) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: len(feed_server.requests()) >= 2 * count, timeout=20,
                        what="every overdue source polled again")
        assert len({r.path for r in feed_server.requests()[count:]}) == count  # each once
        assert daemon.stop() == 0


def test_sighup_applies_a_valid_file_and_keeps_the_old_one_on_error(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml", etag='"a"'))
    feed_server.set("/seed.xml", fixture_route("seed.xml", etag='"s"'))
    first = [SourceSpec(feed_server.url("/a.xml"), extra="    interval: 1h")]
    config = write_config(first)
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: len(feed_server.requests("/a.xml")) == 1, what="first poll")
        config.write_text(config_text([*first, SourceSpec(feed_server.url("/seed.xml"))]),
                          encoding="utf-8")
        daemon.signal(signal.SIGHUP)
        daemon.wait_ready(2)
        assert daemon.notified("RELOADING=1")
        assert any("MONOTONIC_USEC=" in m for _, m in daemon.messages if "RELOADING=1" in m)
        daemon.wait_for(lambda: len(feed_server.requests("/seed.xml")) == 1, timeout=70,
                        what="the new source polled")

        def seed_published() -> bool:
            feed = feedparser.parse(daemon.get("/feeds/zhengquanshibaowang.atom").content)
            return any(e.title == "“科创中国”大湾区联合体落户前海" for e in feed.entries)
        daemon.wait_for(seed_published, what="the new source's entry in the output")

        config.write_text("site:\n  title: x\n  bogus: [\n", encoding="utf-8")
        daemon.signal(signal.SIGHUP)
        daemon.wait_ready(3)
        daemon.wait_for(lambda: "reload failed" in daemon.stderr, what="the reload error logged")
        assert "feeds.yaml:" in daemon.stderr
        assert daemon.get("/healthz").status_code == 200
        assert daemon.get("/feeds/zhengquanshibaowang.atom").status_code == 200
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0


def test_kill_9_during_polling_loses_nothing(feed_server: FeedServer,
                                             write_config: Callable[..., Path]) -> None:
    """SIGKILL mid-poll: the store opens clean, no duplicates, outputs well-formed, polling resumes."""
    names = ["rss2_utf8.xml", "atom_utf8.xml", "seed.xml", "big5.xml", "dup_source_a.xml",
             "dup_source_b.xml", "gbk_declared_gb2312.xml", "zoneless_dates.xml"]
    specs = []
    for i, name in enumerate(names):
        feed_server.set(f"/{i}.xml", fixture_route(name))  # no validators: every poll re-reads
        specs.append(SourceSpec(feed_server.url(f"/{i}.xml"), extra="    interval: 1s"))
    config = write_config(specs)
    data = config.parent / "data"
    for round_ in range(3):
        with DaemonProcess(config) as daemon:
            daemon.wait_ready()
            before = len(feed_server.requests())
            daemon.wait_for(lambda before=before: len(feed_server.requests()) >= before + 8,
                            what="polling under way")
            time.sleep(0.05 * round_)
            daemon.kill()
        db = sqlite3.connect(data / "feedhub.sqlite3")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        dupes = db.execute("SELECT COUNT(*) FROM (SELECT source_url, key FROM entries "
                           "GROUP BY source_url, key HAVING COUNT(*) > 1)").fetchone()[0]
        assert dupes == 0
        db.close()
        for path in (data / "public").rglob("*"):
            if path.suffix in (".atom", ".rss", ".xml"):
                etree.parse(str(path))  # complete, well-formed
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        before = len(feed_server.requests())
        daemon.wait_for(lambda: len(feed_server.requests()) >= before + 8, what="polling resumed")
        feed = feedparser.parse(daemon.get("/feeds/zhengquanshibaowang.atom").content)
        assert feed.entries and all(LABEL in [t.term for t in e.tags] for e in feed.entries)
        assert daemon.stop() == 0
