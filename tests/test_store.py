"""The SQLite store through its public interface, on a real file in tmp_path."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedhub.errors import StoreError
from feedhub.model import Document, Enclosure, Entry, SourceState
from feedhub.store import Store, open_store
from feedhub.store.schema import SCHEMA_VERSION

A = "http://127.0.0.1:9/a.xml"
B = "http://127.0.0.1:9/b.xml"
C = "http://127.0.0.1:9/c.xml"
T0 = datetime(2022, 5, 6, 7, 47, 32, tzinfo=UTC)


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


def raw_db(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to inspect the file from outside the store."""
    return sqlite3.connect(path)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the store file lives (its folder does not exist yet)."""
    return tmp_path / "data" / "feedhub.sqlite3"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    """An open store on a fresh file, closed after the test."""
    st = await open_store(db_path)
    try:
        yield st
    finally:
        await st.close()


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


async def test_save_poll_inserts_then_resave_writes_nothing(store: Store, db_path: Path) -> None:
    """New entries count as new; saving the same entries again is a no-op without duplicates."""
    entries = [entry(A, f"k{i}", published=T0 - timedelta(hours=i)) for i in range(3)]
    first = await store.save_poll(SourceState(url=A), entries, T0 + timedelta(minutes=1))
    assert (first.new, first.updated) == (3, 0)
    again = await store.save_poll(SourceState(url=A), entries, T0 + timedelta(minutes=30))
    assert (again.new, again.updated) == (0, 0)
    assert await store.entry_counts() == {A: 3}
    with raw_db(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 3
        seen = {row[0] for row in db.execute("SELECT first_seen FROM entries")}
    # Unchanged entries were not rewritten: first_seen is still the first poll's time.
    assert seen == {(T0 + timedelta(minutes=1)).isoformat(timespec="microseconds")}
    stored = await store.latest_entries([A], 10)
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
    return Document(path=path, body=body, content_type="application/atom+xml; charset=utf-8",
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
