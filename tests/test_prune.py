"""Retention and orphan pruning through the real CLI."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tests.conftest import SourceSpec, config_text, fixture_route, run_cli
from tests.feedserver import FeedServer


def counts(config: Path) -> dict[str, int]:
    result = run_cli("status", "--json", config=config)
    assert result.code == 0, result.stderr
    return {row["source"]: row["entries"] for row in json.loads(result.stdout)}


def test_entries_per_source_and_days(feed_server: FeedServer,
                                     write_config: Callable[..., Path]) -> None:
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml"))
    feed_server.set("/b.xml", fixture_route("atom_utf8.xml"))
    sources = [SourceSpec(feed_server.url("/a.xml")), SourceSpec(feed_server.url("/b.xml"))]
    config = write_config(sources)
    assert run_cli("poll", config=config).code == 0
    before = counts(config)
    assert all(n >= 2 for n in before.values()), before

    config.write_text(config_text(sources) + "retention:\n  entries_per_source: 1\n",
                      encoding="utf-8")
    result = run_cli("prune", config=config)
    assert result.code == 0, result.stderr
    assert f"deleted {sum(before.values()) - 2} entries by retention" in result.stdout
    assert set(counts(config).values()) == {1}

    # Every fixture entry is from 2022: a 30-day retention removes them all.
    config.write_text(config_text(sources) + "retention:\n  days: 30\n", encoding="utf-8")
    assert run_cli("prune", config=config).code == 0
    assert set(counts(config).values()) == {0}


def test_orphans_are_kept_until_pruned(feed_server: FeedServer,
                                       write_config: Callable[..., Path]) -> None:
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml"))
    feed_server.set("/b.xml", fixture_route("atom_utf8.xml"))
    a, b = SourceSpec(feed_server.url("/a.xml")), SourceSpec(feed_server.url("/b.xml"))
    config = write_config([a, b])
    assert run_cli("poll", config=config).code == 0
    config.write_text(config_text([a]), encoding="utf-8")
    db_path = config.parent / "data" / "feedhub.sqlite3"

    def stored(url: str) -> int:
        with sqlite3.connect(db_path) as db:
            return int(db.execute("SELECT COUNT(*) FROM entries WHERE source_url = ?",
                                  (url,)).fetchone()[0])

    assert run_cli("prune", config=config).code == 0
    assert stored(b.url) > 0  # removed from feeds.yaml, still stored
    result = run_cli("prune", "--orphans", config=config)
    assert result.code == 0, result.stderr
    assert stored(b.url) == 0 and stored(a.url) > 0
    atom = (config.parent / "data" / "public" / "feeds" / "all.atom").read_text(encoding="utf-8")
    assert "atom_utf8" not in atom and b.url not in atom
