"""RFC 5005 archive pages: a full page is rendered once, then never again.

A source gains one entry per poll (real CLI, real SQLite file, a real HTTP source on
127.0.0.1) with five entries per page; every page is read back from ``public/`` and
from the store after each poll.
"""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import feedparser

from tests.conftest import SourceSpec, run_cli
from tests.feedserver import FeedServer, Route

SLUG = "zhengquanshibaowang"
PAGE = 5
MARKED = f"feeds/{SLUG}/archive/4.atom"


def feed(count: int) -> Route:
    start = datetime(2022, 5, 6, 7, 0, tzinfo=UTC)
    items = "".join(
        f"<item><title>快讯第{n}条</title><link>http://127.0.0.1/k/{n}.html</link>"
        f"<guid>http://127.0.0.1/k/{n}.html</guid>"
        f"<pubDate>{format_datetime(start + timedelta(minutes=n))}</pubDate>"
        f"<description>第{n}条快讯</description></item>" for n in range(count))
    return Route(body=(f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                       f"<title>快讯</title><link>http://127.0.0.1/</link>{items}</channel></rss>")
                 .encode(), etag=f'"{count}"')


def pages(public: Path) -> dict[int, tuple[bytes, int]]:
    """Archive page number → (bytes, mtime in ns) as published."""
    folder = public / f"feeds/{SLUG}/archive"
    return {int(p.stem): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_full_pages_are_rendered_once(feed_server: FeedServer,
                                      write_config: Callable[..., Path]) -> None:
    feed_server.set("/k.xml", feed(23))
    config = write_config([SourceSpec(feed_server.url("/k.xml"))], max_entries=PAGE)
    public, db = config.parent / "data/public", config.parent / "data/feedhub.sqlite3"
    assert run_cli("poll", config=config).code == 0
    first = pages(public)
    assert sorted(first) == [1, 2, 3, 4, 5]  # 23 entries: four full pages and an open one

    # A full page changed behind feedhub's back stays as it is: it is never rendered
    # (nor compared) again, not even the one just before the open page.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE documents SET body = ?, etag = '\"marked\"' WHERE path = ?",
                     (gzip.compress(b"<marked/>"), MARKED))

    final: dict[int, tuple[bytes, int]] = {p: first[p] for p in first if p + 1 in first}
    for count in range(24, 34):  # ten later polls, one new entry each
        feed_server.set("/k.xml", feed(count))
        assert run_cli("poll", config=config).code == 0
        now = pages(public)
        assert len(now) == -(-count // PAGE)
        for page, seen in final.items():
            assert now[page] == seen, f"page {page} changed at {count} entries"
        final.update({p: now[p] for p in now if p + 1 in now and p not in final})
    with sqlite3.connect(db) as conn:
        [(body, etag)] = conn.execute("SELECT body, etag FROM documents WHERE path = ?",
                                      (MARKED,)).fetchall()
    assert (gzip.decompress(body), etag) == (b"<marked/>", '"marked"')

    # Every entry is on exactly one page, and the pages link up.
    ids: list[str] = []
    for page, (body, _) in sorted(pages(public).items()):
        parsed = feedparser.parse(body)
        ids += [e.id for e in parsed.entries]
        rels = {link.rel for link in parsed.feed.links}
        assert ("next-archive" in rels) == (page < 7), page
    assert len(ids) == len(set(ids)) == 33

    # A build renders every page again, the marked one too.
    assert run_cli("build", config=config).code == 0
    with sqlite3.connect(db) as conn:
        [(body,)] = conn.execute("SELECT body FROM documents WHERE path = ?", (MARKED,)).fetchall()
    assert gzip.decompress(body) == pages(public)[4][0] != b"<marked/>"


def test_build_rewrites_only_files_that_differ(feed_server: FeedServer,
                                              write_config: Callable[..., Path]) -> None:
    """A second build leaves files holding the right bytes alone (their time too) and
    puts back a file that was changed or removed."""
    feed_server.set("/k.xml", feed(12))
    config = write_config([SourceSpec(feed_server.url("/k.xml"))], max_entries=PAGE)
    public = config.parent / "data/public"
    assert run_cli("poll", config=config).code == 0
    files = sorted(p for p in public.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    changed, removed = public / f"feeds/{SLUG}.atom", public / f"feeds/{SLUG}/archive/1.atom"
    changed.write_bytes(b"<feed/>")
    removed.unlink()
    result = run_cli("build", config=config)
    assert result.code == 0, result.stderr
    assert "wrote 2 files" in result.stdout
    for path, (body, mtime) in before.items():
        assert path.read_bytes() == body, path
        if path not in (changed, removed):
            assert path.stat().st_mtime_ns == mtime, path
