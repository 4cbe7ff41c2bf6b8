"""``feedhub status`` (table, ``--json``, one source's history), the poll history in the
store (migration 2), and ``feedhub poll``'s progress display on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedhub.model import SourceState
from feedhub.store import open_store
from feedhub.store.base import POLL_HISTORY
from feedhub.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from tests.conftest import SourceSpec, fixture_route, run_cli
from tests.feedserver import FeedServer, Route
from tests.test_store import entry

T0 = datetime(2022, 5, 6, 7, 47, 32, tzinfo=UTC)
A = "http://127.0.0.1:9/a.xml"
B = "http://127.0.0.1:9/b.xml"

#: ``status --json``: every row has exactly these keys, with values of these types.
ROW_SCHEMA: dict[str, tuple[type, ...]] = {
    "source": (str,), "category": (str,), "name": (str, type(None)), "status": (str,),
    "http_status": (int, type(None)), "last_poll": (str, type(None)),
    "last_success": (str, type(None)), "next_poll": (str, type(None)), "entries": (int,),
    "new_24h": (int,), "failures": (int,), "error": (str, type(None)),
    "moved_to": (str, type(None)), "filtered": (int,), "filtered_by": (dict,),
    "active_url": (str, type(None)),
}
HISTORY_SCHEMA: dict[str, tuple[type, ...]] = {
    "at": (str,), "status": (str,), "http_status": (int, type(None)), "new": (int,),
    "updated": (int,), "error": (str, type(None)),
}
STATUSES = {"ok", "not_modified", "unchanged", "gone", "rate_limited", "error", "never_polled"}


def check_schema(row: dict[str, object], schema: dict[str, tuple[type, ...]]) -> None:
    assert set(row) == set(schema), set(row) ^ set(schema)
    for key, types in schema.items():
        assert isinstance(row[key], types), (key, row[key])


def strip_ansi(text: str) -> str:
    """Terminal output without colour and cursor escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def run_tty(*args: str, config: Path, columns: int = 160, timeout: float = 60) -> str:
    """Run the real CLI with its standard output on a pseudo-terminal; what it printed."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("FEEDHUB_CONFIG", "NO_COLOR")}
    env.update(COLUMNS=str(columns), LINES="50", TERM="xterm-256color")
    proc = subprocess.Popen([sys.executable, "-m", "feedhub", "--config", str(config), *args],
                            stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    assert proc.wait(timeout=10) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


# --- the store --------------------------------------------------------------------------


async def test_migration_2_upgrades_a_version_1_store(tmp_path: Path) -> None:
    """A store made by the first schema gains the polls table and keeps its rows."""
    path = tmp_path / "feedhub.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("INSERT INTO sources (url, last_status) VALUES (?, 'ok')", (A,))
        db.execute("PRAGMA user_version = 1")
    store = await open_store(path)
    try:
        state = await store.source_state(A)
        assert state is not None and state.last_status == "ok"
        assert await store.poll_history(A, 10) == []
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
        assert db.execute("SELECT COUNT(*) FROM polls").fetchone()[0] == 0
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def test_poll_history_newest_first_and_trimmed(tmp_path: Path) -> None:
    """Each saved poll is one history row; only the last POLL_HISTORY are kept per source."""
    store = await open_store(tmp_path / "feedhub.sqlite3")
    try:
        for i in range(POLL_HISTORY + 5):
            at = T0 + timedelta(minutes=i)
            failed = i % 10 == 9
            state = SourceState(url=A, last_poll_at=at, last_status="error" if failed else "ok",
                                http_status=500 if failed else 200,
                                error="HTTP 500 Internal Server Error" if failed else None)
            await store.save_poll(state, [] if failed else [entry(A, f"k{i}")], at)
        await store.save_poll(SourceState(url=B, last_poll_at=T0, last_status="gone",
                                          http_status=410, error="HTTP 410 Gone"), [], T0)
        # Not a poll (no last_status): not recorded.
        await store.save_poll(SourceState(url=B), [], T0)
        history = await store.poll_history(A, 1000)
        assert len(history) == POLL_HISTORY
        assert [h.at for h in history] == sorted((h.at for h in history), reverse=True)
        assert history[0].at == T0 + timedelta(minutes=POLL_HISTORY + 4)
        assert history[-1].at == T0 + timedelta(minutes=5)
        latest_error = next(h for h in history if h.status == "error")
        assert latest_error.http_status == 500 and latest_error.new == 0
        assert latest_error.error == "HTTP 500 Internal Server Error"
        assert all(h.new == 1 and h.updated == 0 and h.error is None
                   for h in history if h.status == "ok")
        assert [(h.status, h.http_status) for h in await store.poll_history(B, 5)] == [("gone", 410)]
        assert len(await store.poll_history(A, 3)) == 3
        # Forgetting a source forgets its history.
        await store.forget_sources([A])
        assert await store.poll_history(B, 5) == []
        assert len(await store.poll_history(A, 5)) == 5
    finally:
        await store.close()


async def test_new_entries_since_counts_first_seen(tmp_path: Path) -> None:
    """Entries first seen at or after the instant, per source, whatever their dates say."""
    store = await open_store(tmp_path / "feedhub.sqlite3")
    try:
        old = T0 - timedelta(days=400)
        await store.save_poll(SourceState(url=A), [entry(A, "a1", published=old)], T0)
        await store.save_poll(SourceState(url=A), [entry(A, "a2", published=old)],
                              T0 + timedelta(hours=2))
        await store.save_poll(SourceState(url=B), [entry(B, "b1")], T0 - timedelta(days=3))
        assert await store.new_entries_since(T0) == {A: 2}
        assert await store.new_entries_since(T0 + timedelta(hours=1)) == {A: 1}
        assert await store.new_entries_since(T0 - timedelta(days=5)) == {A: 2, B: 1}
        assert await store.new_entries_since(T0 + timedelta(days=1)) == {}
    finally:
        await store.close()


# --- feedhub status, end to end ----------------------------------------------------------------


@pytest.fixture
def polled_config(feed_server: FeedServer, write_config: Callable[..., Path]) -> Path:
    """Four sources polled twice (ok, error 404, gone 410, rate limited) and one never polled."""
    feed_server.set("/ok.xml", fixture_route("updated_v1.xml", etag='"v1"'))
    feed_server.set("/gone.xml", Route(status=410, body=b"gone"))
    feed_server.set("/busy.xml", Route(status=429, body=b"slow down", headers={"Retry-After": "600"}))
    config = write_config([
        SourceSpec(feed_server.url("/ok.xml"), extra="    name: 证券时报网 要闻"),
        SourceSpec(feed_server.url("/missing.xml"), "other"),
        SourceSpec(feed_server.url("/gone.xml"), "other"),
        SourceSpec(feed_server.url("/busy.xml")),
    ])
    assert run_cli("poll", config=config).code == 0
    feed_server.set("/ok.xml", fixture_route("updated_v2.xml", etag='"v2"'))
    assert run_cli("poll", "--force", config=config).code == 0
    # A source added since: never polled.
    with config.open("a", encoding="utf-8") as f:
        f.write(f"  - url: {feed_server.url('/later.xml')}\n    category: other\n")
    return config


def test_status_json_schema(polled_config: Path, feed_server: FeedServer) -> None:
    """--json: one object per configured source, in feeds.yaml order, with the stable schema."""
    result = run_cli("status", "--json", config=polled_config)
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["source"] for r in rows] == [feed_server.url(p) for p in
                                           ("/ok.xml", "/missing.xml", "/gone.xml", "/busy.xml",
                                            "/later.xml")]
    for row in rows:
        check_schema(row, ROW_SCHEMA)
        assert row["status"] in STATUSES
        for key in ("last_poll", "last_success", "next_poll"):
            if row[key] is not None:
                assert datetime.fromisoformat(row[key]).utcoffset() == timedelta(0)
    ok, missing, gone, busy, later = rows
    assert ok["name"] == "证券时报网 要闻" and ok["category"] == "zhengquanshibaowang"
    assert ok["status"] == "ok" and ok["http_status"] == 200 and ok["error"] is None
    assert ok["entries"] == 3 and ok["new_24h"] == 3 and ok["failures"] == 0
    assert missing["status"] == "error" and missing["http_status"] == 404
    assert "404" in missing["error"] and missing["failures"] == 2 and missing["new_24h"] == 0
    assert gone["status"] == "gone" and gone["next_poll"] is None
    assert busy["status"] == "rate_limited" and busy["http_status"] == 429
    assert later == {**dict.fromkeys(ROW_SCHEMA), "source": feed_server.url("/later.xml"),
                     "category": "other", "status": "never_polled", "entries": 0, "new_24h": 0,
                     "failures": 0, "filtered": 0, "filtered_by": {}}


def test_status_category_filter(polled_config: Path, feed_server: FeedServer) -> None:
    """--category keeps that category's sources; an unknown one is a usage error."""
    rows = json.loads(run_cli("status", "--json", "--category", "other", config=polled_config).stdout)
    assert {r["category"] for r in rows} == {"other"} and len(rows) == 3
    plain = run_cli("status", "--category", "zhengquanshibaowang", config=polled_config)
    assert plain.code == 0
    assert feed_server.url("/ok.xml") in plain.stdout
    assert feed_server.url("/gone.xml") not in plain.stdout
    bad = run_cli("status", "--category", "nope", config=polled_config)
    assert bad.code == 2 and "nope" in bad.stderr and "zhengquanshibaowang" in bad.stderr


def test_status_plain_table_off_a_terminal(polled_config: Path, feed_server: FeedServer) -> None:
    """Not a terminal: a header, one uncut line per source, a summary; no colour codes."""
    result = run_cli("status", config=polled_config)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["source", "category", "last", "poll", "result", "new", "24h",
                                "entries", "next", "poll", "error"]
    assert "\x1b[" not in result.stdout
    row = {url: next(line for line in lines if url in line.split())
           for url in (feed_server.url(p) for p in ("/ok.xml", "/missing.xml", "/gone.xml",
                                                    "/busy.xml", "/later.xml"))}
    assert "ok 200" in row[feed_server.url("/ok.xml")]
    assert "error 404" in row[feed_server.url("/missing.xml")]
    assert "HTTP 404 Not Found" in row[feed_server.url("/missing.xml")]
    assert "gone 410" in row[feed_server.url("/gone.xml")]
    assert "never" in row[feed_server.url("/gone.xml")]
    assert "rate limited 429" in row[feed_server.url("/busy.xml")]
    assert "never polled" in row[feed_server.url("/later.xml")]
    assert lines[-1] == "5 sources: 1 ok, 2 failing, 1 gone, 1 never polled"


def test_status_table_on_a_terminal(polled_config: Path) -> None:
    """On a terminal: names shown, failing rows red, gone rows magenta, a title and summary."""
    out = run_tty("status", config=polled_config)
    assert "证券时报网 要闻" in out and "财经新闻聚合" in out
    assert "\x1b[31m" in out  # red: the failing source
    assert "\x1b[35m" in out  # magenta: the gone source
    assert "5 sources: 1 ok, 2 failing, 1 gone, 1 never polled" in strip_ansi(out)
    assert "HTTP 404 Not Found" in strip_ansi(out) and "entries" in strip_ansi(out)
    # A narrower terminal: the error goes under the source instead of its own column.
    narrow = strip_ansi(run_tty("status", config=polled_config, columns=100))
    lines = narrow.splitlines()
    assert "entries" not in narrow and "HTTP 404 Not Found" in narrow
    assert all(len(line) <= 100 for line in lines)


def test_status_of_one_source_shows_its_history(polled_config: Path,
                                                feed_server: FeedServer) -> None:
    """status URL|NAME: details and the last polls, newest first (also as JSON)."""
    url = feed_server.url("/ok.xml")
    by_name = run_cli("status", "证券时报网 要闻", "--json", config=polled_config)
    assert by_name.code == 0, by_name.stderr
    data = json.loads(by_name.stdout)
    assert set(data) == {"source", "history"}
    check_schema(data["source"], ROW_SCHEMA)
    assert data["source"]["source"] == url
    for poll in data["history"]:
        check_schema(poll, HISTORY_SCHEMA)
    assert [(p["status"], p["http_status"], p["new"], p["updated"]) for p in data["history"]] == [
        ("ok", 200, 1, 1), ("ok", 200, 2, 0)]
    assert data["history"][0]["at"] > data["history"][1]["at"]

    missing = json.loads(run_cli("status", feed_server.url("/missing.xml"), "--json",
                                 "--limit", "1", config=polled_config).stdout)
    assert [(p["status"], p["http_status"]) for p in missing["history"]] == [("error", 404)]
    assert "404" in missing["history"][0]["error"]

    plain = run_cli("status", url, config=polled_config)
    assert plain.code == 0, plain.stderr
    assert url in plain.stdout and "证券时报网 要闻" in plain.stdout
    history = [line for line in plain.stdout.splitlines() if line[:2] == "20" and "ok 200" in line]
    assert len(history) == 2, plain.stdout
    never = run_cli("status", feed_server.url("/later.xml"), config=polled_config)
    assert never.code == 0 and "no polls recorded yet" in never.stdout

    unknown = run_cli("status", "http://127.0.0.1:9/nope.xml", config=polled_config)
    assert unknown.code == 2 and "no source" in unknown.stderr


# --- feedhub poll on a terminal ---------------------------------------------------------------


def test_poll_on_a_terminal_shows_progress_and_a_summary(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """A progress bar (done/total, failures) while polling, then a table of what changed."""
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml", delay=0.6))
    feed_server.set("/b.xml", fixture_route("atom_utf8.xml"))
    config = write_config([SourceSpec(feed_server.url("/a.xml")),
                           SourceSpec(feed_server.url("/b.xml")),
                           SourceSpec(feed_server.url("/missing.xml"))])
    out = strip_ansi(run_tty("poll", config=config))
    assert "polling" in out and "/3" in out and "failed" in out  # the bar
    assert "1 failed" in out
    assert "error 404" in out and "HTTP 404 Not Found" in out  # the summary table
    assert feed_server.url("/b.xml") in out
    assert "polled 3 sources: 6 new, 0 updated entries, 1 failed" in out
    # Not a terminal: the plain lines only, unchanged.
    plain = run_cli("poll", "--force", config=config)
    assert plain.code == 0
    assert plain.stdout.splitlines()[-1] == "polled 3 sources: 0 new, 0 updated entries, 1 failed"
    assert "\x1b[" not in plain.stdout and "━" not in plain.stdout
