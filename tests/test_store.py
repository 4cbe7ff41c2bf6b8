"""The store contract: every store through its public interface, on a real database.

Tests taking ``store`` (or ``store_url``) run against SQLite (a file in tmp_path)
and PostgreSQL (a fresh database on the session's server, see tests/pg.py);
tests taking ``db_path`` check what only SQLite has.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from feedhub.errors import StoreError
from feedhub.model import Document, Enclosure, Entry, SourceState
from feedhub.store import Store, open_store
from feedhub.store.base import POLL_HISTORY, SaveResult, SourceEvent
from feedhub.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, statements

A = "http://127.0.0.1:9/a.xml"
B = "http://127.0.0.1:9/b.xml"
C = "http://127.0.0.1:9/c.xml"
T0 = datetime(2022, 5, 6, 7, 47, 32, tzinfo=UTC)
T = TypeVar("T")


def entry(source_url: str, key: str, *, title: str | None = None,
          published: datetime = T0, link: str | None = None,
          canonical_link: str | None = None, content: str = "<p>正文</p>") -> Entry:
    """An Entry whose content_hash follows its title and content."""
    title = title if title is not None else f"标题 {key}"
    link = link if link is not None else f"https://news.example.cn/{key}.html"
    digest = hashlib.sha256(f"{title}\x1f{content}\x1f{link}".encode()).hexdigest()
    return Entry(source_url=source_url, key=key, guid=key, link=link,
                 canonical_link=canonical_link if canonical_link is not None else link,
                 title=title, content_html=content, published=published,
                 authors=("王一鸣",), categories=("市场",),
                 enclosures=(Enclosure(url="https://news.example.cn/a.mp3", type="audio/mpeg",
                                       length=123),),
                 content_hash=digest)


def raw_rows(store_url: str, query: str) -> list[tuple[object, ...]]:
    """Rows of ``query`` read from outside the store, on either backend."""
    if store_url.startswith("sqlite://"):
        with raw_db(Path(store_url.removeprefix("sqlite://"))) as db:
            return db.execute(query).fetchall()
    import psycopg

    with psycopg.connect(store_url) as conn:
        return list(conn.execute(query).fetchall())


def raw_db(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to inspect the file from outside the store."""
    return sqlite3.connect(path)


async def test_schema_created_wal_and_intact(db_path: Path) -> None:
    """A new file gets every table, the current schema version, WAL, and passes integrity_check."""
    st = await open_store(db_path)
    await st.close()
    with raw_db(db_path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"sources", "entries", "documents"} <= tables
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def test_reopen_keeps_data_without_remigrating(db_path: Path) -> None:
    """Reopening finds the same schema and the same rows; nothing is recreated or lost."""
    st = await open_store(db_path)
    await st.save_poll(SourceState(url=A, feed_title="甲"), [entry(A, "k1"), entry(A, "k2")], T0)
    await st.close()
    with raw_db(db_path) as db:
        schema_before = db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()

    st = await open_store(db_path)
    try:
        assert await st.entry_counts() == {A: 2}
        state = await st.source_state(A)
        assert state is not None and state.feed_title == "甲"
    finally:
        await st.close()
    with raw_db(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall() == schema_before
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 2


async def test_newer_schema_is_refused(db_path: Path) -> None:
    """A store written by a newer feedhub raises StoreError instead of being touched."""
    db_path.parent.mkdir(parents=True)
    with raw_db(db_path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError):
        await open_store(db_path)
    with raw_db(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


async def test_save_poll_inserts_then_resave_writes_nothing(store: Store) -> None:
    """New entries count as new; saving the same entries again is a no-op without duplicates."""
    entries = [entry(A, f"k{i}", published=T0 - timedelta(hours=i)) for i in range(3)]
    first = await store.save_poll(SourceState(url=A), entries, T0 + timedelta(minutes=1))
    assert (first.new, first.updated) == (3, 0)
    again = await store.save_poll(SourceState(url=A), entries, T0 + timedelta(minutes=30))
    assert (again.new, again.updated) == (0, 0)
    assert await store.entry_counts() == {A: 3}
    assert (await store.table_counts())["entries"] == 3
    stored = await store.latest_entries([A], 10)
    # Unchanged entries were not rewritten: first_seen is still the first poll's time.
    assert {e.first_seen for e in stored} == {T0 + timedelta(minutes=1)}
    assert stored[0].authors == ("王一鸣",)
    assert stored[0].categories == ("市场",)
    assert stored[0].enclosures == (Enclosure(url="https://news.example.cn/a.mp3",
                                              type="audio/mpeg", length=123),)


async def test_changed_content_updates_in_place(store: Store) -> None:
    """A new content_hash replaces title/content; first_seen stays, updated becomes seen_at."""
    t1, t2 = T0 + timedelta(minutes=5), T0 + timedelta(hours=3)
    await store.save_poll(SourceState(url=A), [entry(A, "UP8001", title="旧标题")], t1)
    result = await store.save_poll(
        SourceState(url=A), [entry(A, "UP8001", title="新标题（更正）", content="<p>改</p>")], t2)
    assert (result.new, result.updated) == (0, 1)
    [stored] = await store.latest_entries([A], 10)
    assert stored.title == "新标题（更正）"
    assert stored.content_html == "<p>改</p>"
    assert stored.first_seen == t1
    assert stored.updated == t2
    assert stored.published == T0
    assert await store.entry_counts() == {A: 1}


async def test_entry_hashes_name_what_a_source_already_has(store: Store) -> None:
    """Full text is fetched only for entries the store lacks or whose feed version changed."""
    kept, changed = entry(A, "k1"), entry(A, "k2")
    await store.save_poll(SourceState(url=A), [kept, changed, entry(B, "k3")], T0)
    assert await store.entry_hashes(A, ["k1", "k2", "k3", "new"]) == {
        "k1": kept.content_hash, "k2": changed.content_hash}
    assert await store.entry_hashes(A, []) == {}


async def test_webhook_deliveries_queue_until_accepted(store: Store) -> None:
    """Queued deliveries are claimed once (held), retried when due, dropped once accepted,
    and kept as given up when retries ran out."""
    hook, other = "http://127.0.0.1:9/hook", "http://127.0.0.1:9/other"
    await store.queue_notifications([(hook, "{\"新\": 1}".encode()), (other, b"{}")], T0)
    await store.queue_notifications([], T0)
    hold = timedelta(minutes=2)
    assert await store.claim_notifications(T0 - timedelta(seconds=1), 10, hold) == []
    first = await store.claim_notifications(T0, 10, hold)
    assert [(n.webhook_url, n.body, n.attempts) for n in first] == [
        (hook, "{\"新\": 1}".encode(), 0), (other, b"{}", 0)]
    # Held: not claimed again until the hold ends (its sender died), then claimable again.
    assert await store.claim_notifications(T0 + timedelta(minutes=1), 10, hold) == []
    assert len(await store.claim_notifications(T0 + hold, 10, hold)) == 2
    counts = await store.notification_counts()
    assert {u: (c.pending, c.given_up, c.last_error) for u, c in counts.items()} == {
        hook: (1, 0, None), other: (1, 0, None)}

    await store.settle_notification(first[0].id, error="HTTP 500",
                                    retry_at=T0 + timedelta(minutes=10))
    await store.settle_notification(first[1].id, error=None, retry_at=None)
    assert list(await store.notification_counts()) == [hook]
    assert await store.claim_notifications(T0 + timedelta(minutes=9), 10, hold) == []
    [again] = await store.claim_notifications(T0 + timedelta(minutes=10), 10, hold)
    assert (again.id, again.attempts) == (first[0].id, 1)
    await store.settle_notification(again.id, error="ConnectError", retry_at=None)
    assert await store.claim_notifications(T0 + timedelta(days=365), 10, hold) == []
    [(url, counts_now)] = (await store.notification_counts()).items()
    assert (url, counts_now.pending, counts_now.given_up, counts_now.last_error) == (
        hook, 0, 1, "ConnectError")


async def test_new_entry_updated_equals_published(store: Store) -> None:
    """An entry never changed has updated == published."""
    await store.save_poll(SourceState(url=A), [entry(A, "k")], T0 + timedelta(days=1))
    [stored] = await store.latest_entries([A], 10)
    assert stored.updated == stored.published == T0


async def test_future_published_is_clamped_to_first_seen(store: Store) -> None:
    """A published date after first_seen is stored as first_seen, on insert and on update."""
    seen = T0 + timedelta(minutes=1)
    future = datetime(2099, 1, 1, tzinfo=UTC)
    await store.save_poll(SourceState(url=A), [entry(A, "f", published=future)], seen)
    [stored] = await store.latest_entries([A], 10)
    assert stored.published == seen == stored.first_seen

    later = seen + timedelta(hours=1)
    await store.save_poll(SourceState(url=A),
                          [entry(A, "f", published=future, title="改了标题")], later)
    [stored] = await store.latest_entries([A], 10)
    assert stored.title == "改了标题"
    assert stored.published == seen
    assert stored.first_seen == seen


async def test_latest_entries_order_limit_offset(store: Store) -> None:
    """Newest first; limit and offset page through the list."""
    entries = [entry(A, f"k{i}", published=T0 - timedelta(hours=i)) for i in range(5)]
    await store.save_poll(SourceState(url=A), list(reversed(entries)), T0)
    keys = [e.key for e in await store.latest_entries([A], 10)]
    assert keys == ["k0", "k1", "k2", "k3", "k4"]
    assert [e.key for e in await store.latest_entries([A], 2)] == ["k0", "k1"]
    assert [e.key for e in await store.latest_entries([A], 2, offset=2)] == ["k2", "k3"]
    assert [e.key for e in await store.latest_entries([A], 10, offset=4)] == ["k4"]
    assert await store.latest_entries([A], 10, offset=5) == []
    assert await store.latest_entries([A], 0) == []
    assert await store.latest_entries([], 10) == []


async def test_latest_entries_dedupes_by_canonical_link_keeping_first_seen(store: Store) -> None:
    """The same article from two sources appears once: the copy seen first wins."""
    canon = "https://news.example.cn/a/123.html"
    b_copy = entry(B, "b-guid", title="乙的副本", link=canon + "?utm_source=rss#top",
                   canonical_link=canon)
    a_copy = entry(A, "a-guid", title="甲的副本", link=canon + "?utm_medium=feed",
                   canonical_link=canon)
    await store.save_poll(SourceState(url=B), [b_copy], T0 + timedelta(minutes=1))
    await store.save_poll(SourceState(url=A), [a_copy, entry(A, "only-a")],
                          T0 + timedelta(minutes=2))
    merged = await store.latest_entries([A, B], 10)
    shared = [e for e in merged if e.canonical_link == canon]
    assert [(e.source_url, e.title) for e in shared] == [(B, "乙的副本")]
    assert {e.key for e in merged} == {"b-guid", "only-a"}
    # Without B, A's copy is the only one and is shown.
    assert {e.key for e in await store.latest_entries([A], 10)} == {"a-guid", "only-a"}


async def test_latest_entries_excludes_other_sources(store: Store) -> None:
    """Only entries of the requested sources come back."""
    await store.save_poll(SourceState(url=A), [entry(A, "a1")], T0)
    await store.save_poll(SourceState(url=C), [entry(C, "c1", published=T0 + timedelta(hours=1))],
                          T0 + timedelta(hours=2))
    assert [(e.source_url, e.key) for e in await store.latest_entries([A], 10)] == [(A, "a1")]
    assert [(e.source_url, e.key) for e in await store.latest_entries([C], 10)] == [(C, "c1")]
    assert await store.latest_entries(["http://127.0.0.1:9/none.xml"], 10) == []


async def test_source_state_round_trip(store: Store) -> None:
    """Every SourceState field comes back exactly as saved; updates replace it."""
    assert await store.source_state(A) is None
    state = SourceState(
        url=A, etag='"abc"', last_modified="Fri, 06 May 2022 07:47:32 GMT", body_hash="f" * 64,
        feed_title="证券时报网 要闻", feed_link="http://finews.zning.xyz/",
        last_poll_at=T0, last_success_at=T0 - timedelta(minutes=1), last_status="error",
        http_status=503, error="HTTP 503 Service Unavailable", failures=4,
        next_poll_at=T0 + timedelta(minutes=15), retry_after=T0 + timedelta(seconds=120),
        moved_to="http://127.0.0.1:9/new.xml")
    await store.save_poll(state, [], T0)
    assert await store.source_state(A) == state

    cleared = SourceState(url=A, last_status="gone", http_status=410)
    await store.save_poll(cleared, [], T0 + timedelta(hours=1))
    assert await store.source_state(A) == cleared
    await store.save_poll(SourceState(url=B), [], T0)
    assert [s.url for s in await store.source_states()] == [A, B]


def document(path: str, body: bytes, when: datetime = T0) -> Document:
    """A rendered document with an ETag derived from its body."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Document.of(path=path, body=body, content_type="application/atom+xml; charset=utf-8",
                       etag=etag, modified=when)


async def test_put_documents_returns_only_changed(store: Store) -> None:
    """put_documents reports new and changed bodies only and keeps the stored ETag and time."""
    atom, rss = document("feeds/all.atom", b"<feed/>"), document("feeds/all.rss", b"<rss/>")
    assert {d.path for d in await store.put_documents([atom, rss])} == {atom.path, rss.path}

    later = T0 + timedelta(hours=1)
    atom_again = replace(atom, modified=later)
    rss_changed = document("feeds/all.rss", b"<rss version='2.0'/>", later)
    changed = await store.put_documents([atom_again, rss_changed])
    assert changed == [rss_changed]

    kept = await store.document("feeds/all.atom")
    assert kept is not None
    assert (kept.body, kept.etag, kept.modified) == (b"<feed/>", atom.etag, T0)
    assert await store.document("feeds/all.rss") == rss_changed
    assert await store.document("feeds/none.atom") is None
    assert [d.path for d in await store.documents()] == ["feeds/all.atom", "feeds/all.rss"]
    assert await store.put_documents([]) == []


async def test_documents_are_stored_compressed_once(store: Store, store_url: str) -> None:
    """A document's row holds its gzip (the bytes sent to gzip clients), not the body too."""
    body = ("<feed>" + "<entry>证券时报网讯，央行开展逆回购操作。</entry>" * 200 + "</feed>").encode()
    await store.put_documents([document("feeds/all.atom", body)])
    [(stored, encoding)] = raw_rows(store_url, "SELECT body, encoding FROM documents")
    assert encoding == "gzip" and bytes(stored)[:2] == b"\x1f\x8b"
    assert gzip.decompress(bytes(stored)) == body and len(stored) < len(body) // 4
    kept = await store.document("feeds/all.atom")
    assert kept is not None and kept.gzipped == bytes(stored) and kept.body == body


async def test_documents_stored_before_compression_read_back(db_path: Path) -> None:
    """Rows of a schema 7 file (uncompressed bodies) read back as they were after migrating."""
    db_path.parent.mkdir(parents=True)
    with raw_db(db_path) as db:
        for script in MIGRATIONS[:7]:
            for statement in statements(script):
                db.execute(statement)
        db.execute("INSERT INTO documents (path, body, content_type, etag, modified) "
                   "VALUES ('index.html', ?, 'text/html; charset=utf-8', '\"e\"', ?)",
                   ("<p>首页</p>".encode(), T0.isoformat()))
        db.execute("PRAGMA user_version = 7")
    st = await open_store(db_path)
    try:
        doc = await st.document("index.html")
        assert doc is not None and doc.body == "<p>首页</p>".encode() and doc.etag == '"e"'
        assert gzip.decompress(doc.gzipped) == doc.body
    finally:
        await st.close()


async def test_document_paths_by_prefix(store: Store) -> None:
    """document_paths lists stored paths by prefix, sorted, without other documents."""
    paths = ["feeds/all.atom", "feeds/all/archive/2.atom", "feeds/all/archive/1.atom",
             "feeds/allé.atom", "index.html"]
    await store.put_documents([document(p, p.encode()) for p in paths])
    assert await store.document_paths() == sorted(paths)
    assert await store.document_paths("feeds/all/archive/") == [
        "feeds/all/archive/1.atom", "feeds/all/archive/2.atom"]
    assert await store.document_paths("feeds/all.atom") == ["feeds/all.atom"]
    assert await store.document_paths("feeds/allé") == ["feeds/allé.atom"]
    assert await store.document_paths("feeds/none") == []
    docs = {d.path: d.etag for d in await store.documents()}
    assert await store.document_etags() == docs
    assert await store.document_etags("feeds/all/archive/") == {
        p: e for p, e in docs.items() if p.startswith("feeds/all/archive/")}
    assert await store.document_etags("feeds/none") == {}


async def test_concurrent_save_poll_all_succeed(store: Store) -> None:
    """Twenty concurrent polls of different sources (and of one source) all land, once each."""
    urls = [f"http://127.0.0.1:9/s{i}.xml" for i in range(20)]
    results = await asyncio.gather(*(
        store.save_poll(SourceState(url=u), [entry(u, f"k{j}") for j in range(5)], T0)
        for u in urls))
    assert [(r.new, r.updated) for r in results] == [(5, 0)] * 20
    assert await store.entry_counts() == dict.fromkeys(urls, 5)

    same = [entry(A, f"k{j}") for j in range(5)]
    results = await asyncio.gather(*(store.save_poll(SourceState(url=A), same, T0)
                                     for _ in range(20)))
    assert sum(r.new for r in results) == 5
    assert sum(r.updated for r in results) == 0
    assert (await store.entry_counts())[A] == 5
    assert len(await store.source_states()) == 21


async def test_concurrent_saves_without_entries_all_land(store: Store) -> None:
    """Many concurrent polls without entries (304s) all land: state, history and events."""
    urls = [f"http://127.0.0.1:9/s{i}.xml" for i in range(60)]
    results = await asyncio.gather(*(
        store.save_poll(SourceState(url=u, etag=f'"{i}"', last_poll_at=T0, last_status="not_modified",
                                    http_status=304), [], T0,
                        SourceEvent(source_url=u, at=T0, kind="recovered") if i % 3 == 0 else None)
        for i, u in enumerate(urls)))
    assert results == [SaveResult(new=0, updated=0)] * 60
    states = {s.url: s for s in await store.source_states()}
    assert [states[u].etag for u in urls] == [f'"{i}"' for i in range(60)]
    for u in urls:
        assert [(p.status, p.http_status) for p in await store.poll_history(u, 5)] == \
            [("not_modified", 304)]
    assert sorted(e.source_url for e in await store.source_events(100)) == sorted(urls[::3])


async def test_a_failing_save_does_not_fail_the_others(store: Store) -> None:
    """A save the database refuses fails alone; the saves around it still land."""
    urls = [f"http://127.0.0.1:9/s{i}.xml" for i in range(10)]
    bad = SourceEvent(source_url=urls[4], at=T0, kind=None)  # type: ignore[arg-type]
    results = await asyncio.gather(*(
        store.save_poll(SourceState(url=u, last_poll_at=T0, last_status="ok"), [], T0,
                        bad if u == urls[4] else None)
        for u in urls), return_exceptions=True)
    assert isinstance(results[4], StoreError)
    assert urls[4] in str(results[4])
    assert [r for i, r in enumerate(results) if i != 4] == [SaveResult(new=0, updated=0)] * 9
    assert {s.url for s in await store.source_states()} == set(urls) - {urls[4]}
    assert await store.poll_history(urls[4], 5) == []


async def test_concurrent_saves_of_one_source_keep_the_last_polls(db_path: Path) -> None:
    """Saves of one source committed together keep the last POLL_HISTORY polls, the last
    state, and a save queued when the store closes is committed first."""
    st = await open_store(db_path)
    polls = [SourceState(url=A, last_poll_at=T0 + timedelta(minutes=i), last_status="ok",
                         failures=i) for i in range(POLL_HISTORY + 10)]
    await asyncio.gather(*(st.save_poll(p, [], T0) for p in polls))
    assert [p.at for p in await st.poll_history(A, POLL_HISTORY + 10)] == \
        [p.last_poll_at for p in reversed(polls[10:])]
    state = await st.source_state(A)
    assert state is not None and state.failures == POLL_HISTORY + 9
    waiting = asyncio.create_task(st.save_poll(SourceState(url=B, last_status="ok"), [], T0))
    await asyncio.sleep(0)
    await st.close()
    await waiting
    st = await open_store(db_path)
    try:
        assert await st.source_state(B) is not None
    finally:
        await st.close()


# --- the rest of the contract: scheduling, history, archives, retention ------------------------


async def test_ensure_due_and_reschedule(store: Store) -> None:
    """New sources are added once; due ones come back longest overdue first, within limit."""
    added = await store.ensure_sources({A: T0 + timedelta(seconds=30), B: T0, C: T0 + timedelta(hours=1)})
    assert added == 3
    assert await store.ensure_sources({A: T0, "http://127.0.0.1:9/d.xml": T0}) == 1
    now = T0 + timedelta(minutes=1)
    assert await store.due_sources([A, B, C], now, 10) == [B, A]
    assert await store.due_sources([A, B, C], now, 1) == [B]
    assert await store.due_sources([A, C], now, 10) == [A]
    await store.reschedule(B, T0 + timedelta(hours=2))
    assert await store.due_sources([A, B, C], now, 10) == [A]


async def test_poll_history_and_new_entries_since(store: Store) -> None:
    """Each recorded poll is one history row, newest first; new entries count by first_seen."""
    for i in range(3):
        at = T0 + timedelta(minutes=i)
        await store.save_poll(SourceState(url=A, last_poll_at=at, last_status="ok", http_status=200),
                              [entry(A, f"k{i}")], at)
    history = await store.poll_history(A, 10)
    assert [(p.at, p.new) for p in history] == [(T0 + timedelta(minutes=i), 1) for i in (2, 1, 0)]
    assert await store.poll_history(A, 1) == history[:1]
    assert await store.new_entries_since(T0 + timedelta(minutes=1)) == {A: 2}
    assert await store.new_entries_since(T0 + timedelta(hours=1)) == {}


async def test_archive_order_and_count(store: Store) -> None:
    """archive_ids lists storage order, one per canonical link; entries_by_id reads them."""
    canon = "https://news.example.cn/shared.html"
    await store.save_poll(SourceState(url=A), [entry(A, f"k{i}", published=T0 + timedelta(hours=i))
                                               for i in range(4)], T0 + timedelta(days=1))
    await store.save_poll(SourceState(url=B), [entry(B, "dup", link=canon, canonical_link=canon)],
                          T0 + timedelta(days=2))
    await store.save_poll(SourceState(url=A), [entry(A, "dup", link=canon, canonical_link=canon)],
                          T0 + timedelta(days=3))
    ids = await store.archive_ids([A])
    assert [e.key for e in await store.entries_by_id(ids[:2])] == ["k0", "k1"]
    assert [e.key for e in await store.entries_by_id(ids[2:4])] == ["k2", "k3"]
    both = await store.archive_ids([A, B])
    assert [(e.source_url, e.key) for e in await store.entries_by_id(both[4:])] == [(B, "dup")]
    assert len(ids) == 5 and len(both) == 5
    assert list(ids) == sorted(ids)
    assert await store.archive_ids([]) == []
    assert await store.entries_by_id([]) == []
    # An id no longer stored is left out.
    assert [e.key for e in await store.entries_by_id([ids[0], max(both) + 1000])] == ["k0"]


async def test_prune_and_forget_sources(store: Store) -> None:
    """Retention deletes by age and keeps the newest per source; forgetting drops whole sources."""
    await store.save_poll(SourceState(url=A), [entry(A, f"k{i}", published=T0 - timedelta(days=i))
                                               for i in range(5)], T0)
    await store.save_poll(SourceState(url=B), [entry(B, "b")], T0)
    assert await store.prune(older_than=T0 - timedelta(days=3, hours=1), keep_per_source=None) == 1
    assert await store.prune(older_than=None, keep_per_source=2) == 2
    assert {e.key for e in await store.latest_entries([A], 10)} == {"k0", "k1"}
    for url in (A, B):  # a poll history and a health event each
        await store.save_poll(SourceState(url=url, last_poll_at=T0, last_status="error"), [], T0,
                              SourceEvent(source_url=url, at=T0, kind="failing", detail="HTTP 500"))
    assert await store.forget_sources([B]) == 2
    assert await store.entry_counts() == {B: 1}
    assert [s.url for s in await store.source_states()] == [B]
    assert [e.source_url for e in await store.source_events(10)] == [B]
    assert await store.poll_history(A, 10) == []
    assert (await store.table_counts())["source_events"] == 1


# --- many nodes: leases and locks ------------------------------------------------------------

LEASE = timedelta(seconds=30)


async def test_claims_are_exclusive_until_saved_or_expired(store: Store) -> None:
    """A claimed source is nobody else's until its poll is saved, released, or the lease ends."""
    await store.ensure_sources({A: T0, B: T0 + timedelta(seconds=1), C: T0 + timedelta(hours=1)})
    now = T0 + timedelta(minutes=1)
    assert await store.claim_sources([A, B, C], now, 10, node="n1", lease=LEASE) == [A, B]
    assert await store.claim_sources([A, B, C], now, 10, node="n2", lease=LEASE) == []
    # Saving A's poll ends the lease; A is due again only at its new next_poll_at.
    await store.save_poll(SourceState(url=A, next_poll_at=now + timedelta(seconds=5)), [], now,
                          node="n1")
    assert await store.claim_sources([A, B], now + timedelta(seconds=6), 10, node="n2",
                                     lease=LEASE) == [A]
    # A release by another node changes nothing; by the holder, frees it at once.
    await store.release_sources([B], "n2")
    assert await store.claim_sources([B], now, 10, node="n3", lease=LEASE) == []
    await store.release_sources([B], "n1")
    assert await store.claim_sources([B], now, 10, node="n3", lease=LEASE) == [B]
    # n3 dies: once the lease has run out, another node takes B over.
    assert await store.claim_sources([B], now + LEASE - timedelta(seconds=1), 10, node="n2",
                                     lease=LEASE) == []
    assert await store.claim_sources([B], now + LEASE, 10, node="n2", lease=LEASE) == [B]
    assert await store.claim_sources([A, B, C], now, 0, node="n1", lease=LEASE) == []


async def test_a_late_save_ends_only_its_own_lease(store_url: str) -> None:
    """A node whose lease ran out during a slow poll, and was taken over, leaves the new lease."""
    slow, other = await open_store(store_url), await open_store(store_url)  # two nodes
    try:
        await slow.ensure_sources({A: T0})
        now = T0 + timedelta(minutes=1)
        assert await slow.claim_sources([A], now, 1, node="slow", lease=LEASE) == [A]
        later = now + LEASE  # the slow poll outlived its lease: another node claims A
        assert await other.claim_sources([A], later, 1, node="other", lease=LEASE) == [A]
        due = SourceState(url=A, next_poll_at=now)  # due again at once: only leases decide
        await slow.save_poll(due, [], later, node="slow")
        await slow.save_poll(due, [], later)  # a poll outside any daemon (feedhub poll)
        assert await other.lease_owners() == {"other"}
        assert await slow.claim_sources([A], later, 1, node="third", lease=LEASE) == []
        # The holder's own save ends it.
        await other.save_poll(due, [], later, node="other")
        assert await slow.lease_owners() == set()
        assert await slow.claim_sources([A], later, 1, node="third", lease=LEASE) == [A]
    finally:
        await slow.close()
        await other.close()


async def test_concurrent_claims_never_overlap(store_url: str) -> None:
    """Several stores (nodes) claiming at once from one database share the due sources out."""
    urls = [f"http://127.0.0.1:9/s{i}.xml" for i in range(60)]
    stores = [await open_store(store_url) for _ in range(3)]
    try:
        await stores[0].ensure_sources(dict.fromkeys(urls, T0))
        now = T0 + timedelta(minutes=1)
        batches = await asyncio.gather(*(
            st.claim_sources(urls, now, 7, node=f"n{i}-{j}", lease=LEASE)
            for j in range(4) for i, st in enumerate(stores)))
        claimed = [url for batch in batches for url in batch]
        assert len(claimed) == len(set(claimed)) == 60
    finally:
        for st in stores:
            await st.close()


async def test_lock_yields_and_releases(store: Store) -> None:
    """A lock is held inside the block (and for every store on SQLite) and free after it."""
    async with store.lock("prune") as held:
        assert held
    async with store.lock("prune", wait=True) as held:
        assert held


@pytest.mark.postgres
async def test_postgres_lock_excludes_other_nodes(pg_url: str) -> None:
    """On PostgreSQL a held lock is refused to another node until released."""
    first, second = await open_store(pg_url), await open_store(pg_url)
    try:
        async with first.lock("prune") as held:
            assert held
            async with second.lock("prune") as other:
                assert not other
            async with second.lock("prune", wait=True, timeout=0.2) as other:
                assert not other
            async with second.lock("republish") as other:
                assert other
            # A wait without a timeout waits for the release (the timeout above was reset).
            waiting = asyncio.create_task(_hold(second, "prune"))
            await asyncio.sleep(0.5)
            assert not waiting.done()
        assert await asyncio.wait_for(waiting, 10)
        async with second.lock("prune") as held:
            assert held
    finally:
        await first.close()
        await second.close()


async def _hold(store: Store, name: str) -> bool:
    async with store.lock(name, wait=True) as held:
        return held


# --- copying between stores ------------------------------------------------------------------


async def _copy_pages(export: Callable[[int, int], Awaitable[tuple[Sequence[T], int]]],
                      load: Callable[[Sequence[T]], Awaitable[None]], size: int) -> None:
    """Every row ``export`` pages out, ``size`` at a time, handed to ``load``."""
    cursor = 0
    while True:
        rows, cursor = await export(cursor, size)
        if not rows:
            return
        await load(rows)


async def test_export_import_round_trip(store: Store, tmp_path: Path) -> None:
    """Everything exported from one store imports into another as it was; twice changes nothing."""
    state = SourceState(url=A, etag='"e"', last_poll_at=T0, last_status="ok", http_status=200,
                        next_poll_at=T0 + timedelta(minutes=15))
    await store.save_poll(state, [entry(A, f"k{i}", published=T0 - timedelta(hours=i))
                                  for i in range(5)], T0,
                          SourceEvent(source_url=A, at=T0, kind="moved", detail="http://x/"))
    failed = T0 + timedelta(minutes=15)
    await store.save_poll(replace(state, last_poll_at=failed, last_status="error"), [], failed,
                          SourceEvent(source_url=A, at=failed, kind="failing"))
    later = T0 + timedelta(minutes=30)
    state = replace(state, last_poll_at=later, active_url="http://127.0.0.1:9/mirror.xml")
    await store.save_poll(state, [], later)
    await store.put_documents([document("feeds/all.atom", b"<feed/>")])
    await store.queue_notifications([("http://127.0.0.1:9/hook", "{\"新\": 1}".encode()),
                                     ("http://127.0.0.1:9/hook", b"{}")], later)
    [claimed, _] = await store.claim_notifications(later, 10, timedelta(0))
    await store.settle_notification(claimed.id, error="HTTP 502", retry_at=None)
    target = await open_store(tmp_path / "copy.sqlite3")
    try:
        for _ in range(2):
            await target.import_sources(await store.source_states())
            await _copy_pages(store.export_entries, target.import_entries, 2)
            polls, _ = await store.export_polls(0, 100)
            await target.import_polls(polls)
            await _copy_pages(store.export_events, target.import_events, 1)
            await target.put_documents(await store.documents())
            await _copy_pages(store.export_notifications, target.import_notifications, 1)
        assert await target.table_counts() == await store.table_counts() == {
            "sources": 1, "entries": 5, "documents": 1, "polls": 3, "source_events": 2,
            "notifications": 2}
        assert (await target.export_notifications(0, 10))[0] == \
            (await store.export_notifications(0, 10))[0]
        assert await target.notification_counts() == await store.notification_counts()
        assert await target.source_state(A) == state
        assert await target.source_events(10) == await store.source_events(10)
        assert await target.latest_entries([A], 10) == await store.latest_entries([A], 10)
        assert (await target.entries_by_id(await target.archive_ids([A]))
                == await store.entries_by_id(await store.archive_ids([A])))
        assert await target.poll_history(A, 10) == await store.poll_history(A, 10)
        assert await target.documents() == await store.documents()
        # The content hash came along: the same entries saved again are not "updated".
        again = await target.save_poll(state, [entry(A, "k0")], T0 + timedelta(hours=1))
        assert (again.new, again.updated) == (0, 0)
    finally:
        await target.close()


# --- PostgreSQL schema ---------------------------------------------------------------------------


@pytest.mark.postgres
async def test_postgres_nodes_starting_together_migrate_once(pg_url: str) -> None:
    """Five stores opened at once on an empty database: one schema, at the current version."""
    import psycopg

    from feedhub.store.postgres.schema import SCHEMA_VERSION as PG_VERSION

    stores = await asyncio.gather(*(open_store(pg_url) for _ in range(5)))
    for st in stores:
        await st.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM feedhub_schema").fetchall() == [(PG_VERSION,)]
        conn.execute("UPDATE feedhub_schema SET version = version + 1")
    with pytest.raises(StoreError, match="newer"):
        await open_store(pg_url)


async def test_unsupported_url_is_refused() -> None:
    with pytest.raises(StoreError, match="unsupported"):
        await open_store("mysql://127.0.0.1/feedhub")


async def test_source_events_are_saved_with_the_poll_newest_first(store: Store) -> None:
    """save_poll records the state change it is given; source_events lists them."""
    assert await store.source_events(10) == []
    failing = SourceEvent(source_url=A, at=T0, kind="failing", detail="HTTP 500")
    await store.save_poll(SourceState(url=A, last_poll_at=T0, last_status="error"), [], T0,
                          failing)
    later = T0 + timedelta(minutes=15)
    await store.save_poll(SourceState(url=A, last_poll_at=later, last_status="ok"), [], later,
                          SourceEvent(source_url=A, at=later, kind="recovered"))
    await store.save_poll(SourceState(url=A, last_poll_at=later, last_status="ok"), [], later)
    events = await store.source_events(10)
    assert [(e.kind, e.detail, e.at) for e in events] == [("recovered", None, later),
                                                          ("failing", "HTTP 500", T0)]
    assert events[0].id > events[1].id > 0
    assert len(await store.source_events(1)) == 1
