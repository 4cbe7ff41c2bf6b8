"""``feedhub migrate-store``: SQLite → PostgreSQL (and back), resumable, counted."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from feedhub.model import Document, SourceState, StoredEntry
from feedhub.store import open_store
from feedhub.store.base import QueuedNotification, SourceEvent
from tests.conftest import SourceSpec, config_text, fixture_route, run_cli
from tests.feedserver import FeedServer, Route

pytestmark = pytest.mark.postgres

FIXTURES = ["rss2_utf8.xml", "atom_utf8.xml", "dup_source_a.xml", "dup_source_b.xml",
            "json_feed_11.json", "gbk_declared_gb2312.xml"]


Snapshot = tuple[list[SourceState], list[StoredEntry], list[Document], list[SourceEvent],
                 list[QueuedNotification], dict[str, int]]


async def snapshot(url: str) -> Snapshot:
    """What a store holds, through the Store interface (events without their ids)."""
    store = await open_store(url)
    try:
        states = await store.source_states()
        urls = [s.url for s in states]
        events = [replace(e, id=0) for e in await store.source_events(10_000)]
        queued, _cursor = await store.export_notifications(0, 10_000)
        return (states, await store.entries_by_id(await store.archive_ids(urls)), await store.documents(),
                events, queued, await store.table_counts())
    finally:
        await store.close()


@pytest.fixture
def polled_sqlite(feed_server: FeedServer, tmp_path: Path) -> tuple[Path, str]:
    """A feeds.yaml whose SQLite store has been polled twice (so it has poll history).

    Besides the fixtures, one source fails and then recovers (two health events) and
    one is answered by its fallback URL (``active_url``).
    """
    for name in FIXTURES:
        feed_server.set(f"/{name}", fixture_route(name))
    feed_server.set("/flaky.xml", Route(body=b"down", status=500, content_type="text/plain"))
    feed_server.set("/primary.xml", Route(body=b"gone away", status=500, content_type="text/plain"))
    feed_server.set("/mirror.xml", fixture_route("rss2_utf8.xml"))
    specs = [SourceSpec(feed_server.url(f"/{n}")) for n in FIXTURES]
    specs.append(SourceSpec(feed_server.url("/flaky.xml")))
    fail_over = (f"  - urls: [{feed_server.url('/primary.xml')}, {feed_server.url('/mirror.xml')}]\n"
                 "    category: other\n")
    config = tmp_path / "feeds.yaml"
    config.write_text(config_text(specs, max_entries=5) + fail_over, encoding="utf-8")
    for _ in range(2):
        result = run_cli("poll", config=config)
        assert result.code == 0, result.stderr
        feed_server.set("/flaky.xml", fixture_route("atom_utf8.xml"))
    url = f"sqlite://{tmp_path / 'data' / 'feedhub.sqlite3'}"
    asyncio.run(queue_deliveries(url))
    return config, url


async def queue_deliveries(url: str) -> None:
    """Three webhook deliveries: due, failed once, given up."""
    store = await open_store(url)
    try:
        at = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
        await store.queue_notifications([("http://127.0.0.1:9/a", b'{"n": 1}'),
                                         ("http://127.0.0.1:9/a", b'{"n": 2}'),
                                         ("http://127.0.0.1:9/b", '{"n": "三"}'.encode())], at)
        due = await store.claim_notifications(at, 10, timedelta(0))
        await store.settle_notification(due[1].id, error="HTTP 503",
                                        retry_at=at + timedelta(seconds=1))
        for _ in range(16):  # sixteen failed attempts, the last one giving up
            await store.settle_notification(due[2].id, error="HTTP 500", retry_at=None)
    finally:
        await store.close()


def test_copies_everything_and_resumes(polled_sqlite: tuple[Path, str], pg_url: str,
                                       feed_server: FeedServer) -> None:
    config, sqlite_url = polled_sqlite
    result = run_cli("migrate-store", "--from", sqlite_url, "--to", pg_url, "--batch", "7")
    assert result.code == 0, result.stderr
    assert "counts match" in result.stdout
    before = asyncio.run(snapshot(sqlite_url))
    states, _entries, _documents, events, queued, counts = before
    assert [(q.attempts, q.last_error, q.next_at is None) for q in queued] == [
        (0, None, False), (1, "HTTP 503", False), (16, "HTTP 500", True)]
    assert counts["entries"] > 10 and counts["polls"] == 2 * (len(FIXTURES) + 2)
    assert [e.kind for e in events] == ["recovered", "failing"]
    assert {s.url: s.active_url for s in states if s.active_url} == {
        feed_server.url("/primary.xml"): feed_server.url("/mirror.xml")}
    assert asyncio.run(snapshot(pg_url)) == before

    # Interrupted after some batches: the tail (in storage order) is missing. A rerun
    # fills it in, in order, and rewrites nothing else.
    with psycopg.connect(pg_url) as conn:
        conn.execute("DELETE FROM entries WHERE id > (SELECT MIN(id) + 5 FROM entries)")
        conn.execute("DELETE FROM polls WHERE id > (SELECT MIN(id) + 3 FROM polls)")
        conn.execute("DELETE FROM documents WHERE path LIKE 'feeds/%'")
        conn.execute("DELETE FROM source_events WHERE id > (SELECT MIN(id) FROM source_events)")
        conn.execute("UPDATE sources SET active_url = NULL")
        conn.execute("DELETE FROM notifications WHERE attempts > 0")
    result = run_cli("migrate-store", "--from", sqlite_url, "--to", pg_url)
    assert result.code == 0, result.stderr
    assert asyncio.run(snapshot(pg_url)) == before

    # The same feeds.yaml on the PostgreSQL store reports and renders the same.
    status_sqlite = run_cli("status", "--json", config=config)
    config.write_text(config.read_text(encoding="utf-8") + f"storage:\n  url: {pg_url}\n",
                      encoding="utf-8")
    status_pg = run_cli("status", "--json", config=config)
    assert status_pg.code == 0, status_pg.stderr
    assert json.loads(status_pg.stdout) == json.loads(status_sqlite.stdout)


def test_back_to_sqlite_and_count_mismatch(polled_sqlite: tuple[Path, str], pg_url: str,
                                           tmp_path: Path) -> None:
    _config, sqlite_url = polled_sqlite
    assert run_cli("migrate-store", "--from", sqlite_url, "--to", pg_url).code == 0
    back = f"sqlite://{tmp_path / 'back.sqlite3'}"
    result = run_cli("migrate-store", "--from", pg_url, "--to", back)
    assert result.code == 0, result.stderr
    assert asyncio.run(snapshot(back)) == asyncio.run(snapshot(sqlite_url))

    # A target holding rows of its own: copied, but the count check fails (exit 1).
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO sources (url) VALUES ('http://127.0.0.1:9/other.xml')")
    result = run_cli("migrate-store", "--from", sqlite_url, "--to", pg_url)
    assert result.code == 1
    assert "sources" in result.stdout and "MISMATCH" in result.stdout
    assert "counts differ" in result.stderr


def test_refuses_a_missing_source_store(tmp_path: Path, pg_url: str) -> None:
    result = run_cli("migrate-store", "--from", f"sqlite://{tmp_path / 'none.sqlite3'}",
                     "--to", pg_url)
    assert result.code == 2
    assert "no SQLite store" in result.stderr
    assert not (tmp_path / "none.sqlite3").exists()
