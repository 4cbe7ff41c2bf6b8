"""Search latency on the benchmark corpus: feedhub's FTS5 trigram index beside a plain scan.

    python bench/search.py [--sources 500] [--entries 50] [--runs 5]

Stores the generated corpus (parsed and normalized by feedhub, no HTTP) in a
fresh SQLite store, times bringing the search index up to date, then times
each query through ``Store.search`` and through the query one would write
without an index (``LIKE`` over titles and HTML content), medians of
``--runs`` with min–max. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sized
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import feed_bytes, feeds_yaml
from feedhub.config import load_config
from feedhub.model import SourceState
from feedhub.normalize import parse_and_normalize
from feedhub.search import Query, parse_query
from feedhub.store import open_store
from feedhub.store.sqlite import SQLiteStore

QUERIES = ("央行", "北向资金", "降准政策 OR 数字人民币试点", "科创板 -白酒板块", "上证指数 注册制落地",
           "999.99亿元", "不存在的词语")


def _scan_sql(query: Query) -> tuple[str, list[str]]:
    """The query without an index: LIKE over every title and content, newest first."""
    alternatives, params = [], []
    for terms in query.alternatives:
        parts = []
        for term in terms:
            parts.append(f"{'NOT ' if term.negated else ''}(title LIKE ? OR content_html LIKE ?)")
            params += [f"%{term.text}%"] * 2
        alternatives.append("(" + " AND ".join(parts) + ")")
    return (f"SELECT * FROM entries WHERE {' OR '.join(alternatives)} "
            "ORDER BY published DESC, id DESC LIMIT 50"), params


def _timed(runs: int, work: Callable[[], Sized]) -> tuple[float, float, float, int]:
    """Median, min and max milliseconds of ``work()`` over ``runs``, and its result's size."""
    times, found = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        found = len(work())
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times), max(times), found


async def _fill(folder: Path, sources: int, entries: int) -> tuple[Path, list[str], float]:
    config = load_config(feeds_yaml(folder, 9, sources, entries))
    path = folder / "search.sqlite3"
    store = await open_store(path)
    seen = datetime.now(UTC)
    try:
        for i, source in enumerate(config.sources):
            body = feed_bytes(i, entries)
            parsed = parse_and_normalize(body, url=source.url,
                                         headers={"content-type": "application/xml"},
                                         timezone=source.timezone, encoding=None,
                                         source_url=source.url, seen_at=seen)
            await store.save_poll(SourceState(url=source.url, last_poll_at=seen), parsed.entries,
                                  seen)
        assert isinstance(store, SQLiteStore)
        start = time.perf_counter()
        await store.search(parse_query("预热"), [config.sources[0].url], limit=1)
        indexing = time.perf_counter() - start
    finally:
        await store.close()
    return path, [s.url for s in config.sources], indexing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="feedhub-search-") as tmp:
        folder = Path(tmp)
        path, urls, indexing = asyncio.run(_fill(folder, args.sources, args.entries))
        with sqlite3.connect(path) as db:
            stored = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            index_pages = db.execute("SELECT COUNT(*) FROM entries_fts_data").fetchone()[0]
        print(f"{stored:,} entries from {args.sources} sources; bringing the index up to date took "
              f"{indexing:.1f} s ({indexing / stored * 1000:.2f} ms per entry); store "
              f"{os.path.getsize(path) / 1e6:.0f} MB, index {index_pages:,} pages\n")
        loop = asyncio.new_event_loop()
        store = loop.run_until_complete(open_store(path))
        scan = sqlite3.connect(path)
        print("| query | feedhub (FTS5 trigram) ms | hits | LIKE scan ms | hits | scan / feedhub |")
        print("| --- | --- | --- | --- | --- | --- |")
        try:
            for text in QUERIES:
                query = parse_query(text)
                fast = _timed(args.runs, lambda q=query: loop.run_until_complete(  # type: ignore[misc]
                    store.search(q, urls, limit=50)))
                sql, params = _scan_sql(query)
                slow = _timed(args.runs, lambda s=sql, p=params: scan.execute(s, p).fetchall())
                print(f"| `{text}` | {fast[0]:.1f} ({fast[1]:.1f}–{fast[2]:.1f}) | {fast[3]} | "
                      f"{slow[0]:.1f} ({slow[1]:.1f}–{slow[2]:.1f}) | {slow[3]} | "
                      f"{slow[0] / fast[0]:.1f}× |")
        finally:
            scan.close()
            loop.run_until_complete(store.close())
            loop.close()


if __name__ == "__main__":
    main()
