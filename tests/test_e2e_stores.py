"""End to end on each store: the real CLI polls, reports, builds and serves the same way.

The same feeds.yaml runs once on SQLite (the default) and once with
``storage.url`` pointing at PostgreSQL; outputs are read back with feedparser.
"""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import httpx
import pytest

from tests.conftest import SourceSpec, config_text, fixture_route, run_cli
from tests.feedserver import FeedServer
from tests.test_server import serving

LABEL = "证券时报网新闻"
FIXTURES = ["rss2_utf8.xml", "atom_utf8.xml", "gbk_declared_gb2312.xml", "zoneless_dates.xml",
            "dup_source_a.xml", "dup_source_b.xml", "json_feed_11.json", "future_date.xml"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest) -> str:
    """The ``storage:`` section of feeds.yaml for each store ("" for the default SQLite)."""
    if request.param == "sqlite":
        return ""
    return f"storage:\n  url: {request.getfixturevalue('pg_url')}\n"


def test_poll_status_build_serve(feed_server: FeedServer, tmp_path: Path, storage: str) -> None:
    for name in FIXTURES:
        feed_server.set(f"/{name}", fixture_route(name, etag=f'"{name}"'))
    urls = [feed_server.url(f"/{n}") for n in FIXTURES]
    config = tmp_path / "feeds.yaml"
    config.write_text(config_text([SourceSpec(u) for u in urls]) + storage, encoding="utf-8")

    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith(f"polled {len(urls)} sources")
    again = run_cli("poll", config=config)
    assert again.code == 0 and "0 new" in again.stdout.splitlines()[-1], again.stdout

    status = run_cli("status", "--json", config=config)
    assert status.code == 0, status.stderr
    rows = {row["source"]: row for row in json.loads(status.stdout)}
    assert set(rows) == set(urls)
    assert all(row["entries"] > 0 for row in rows.values()), rows

    out = tmp_path / "site"
    build = run_cli("build", "--out", str(out), config=config)
    assert build.code == 0, build.stderr
    atom = feedparser.parse((out / "feeds" / "zhengquanshibaowang.atom").read_bytes())
    assert not atom.bozo and len(atom.entries) > 10
    titles = [e.title for e in atom.entries]
    assert len(titles) == len(set(titles))  # the article in both dup sources appears once
    assert all(LABEL in [t.term for t in e.tags] for e in atom.entries)
    assert (storage == "") == (tmp_path / "data" / "feedhub.sqlite3").exists()

    with serving(config) as base:
        served = httpx.get(f"{base}/feeds/zhengquanshibaowang.atom")
        assert served.status_code == 200
        assert served.content == (out / "feeds" / "zhengquanshibaowang.atom").read_bytes()
        cached = httpx.get(f"{base}/feeds/zhengquanshibaowang.atom",
                           headers={"If-None-Match": served.headers["etag"]})
        assert cached.status_code == 304
        assert httpx.get(f"{base}/").status_code == 200
        assert httpx.get(f"{base}/opml.xml").status_code == 200
