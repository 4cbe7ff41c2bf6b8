"""SIGKILL at random instants during heavy polling, many times over.

After every kill: the store opens and passes ``PRAGMA integrity_check``, holds no
duplicate entry, every published file is complete and well-formed, and the next
start polls again. The kill instants come from a seeded generator, so a failure
can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from tests.conftest import SourceSpec, fixture_route
from tests.daemonproc import DaemonProcess
from tests.feedserver import FeedServer, Route

KILLS = int(os.environ.get("FEEDHUB_CRASH_KILLS", "30"))
FIXTURES = ["rss2_utf8.xml", "atom_utf8.xml", "seed.xml", "big5.xml", "dup_source_a.xml",
            "dup_source_b.xml", "gbk_declared_gb2312.xml", "zoneless_dates.xml",
            "rss1_utf8.rdf", "json_feed_11.json", "undeclared_gbk.xml", "relative_rss.xml"]


def check_store(db_path: Path) -> int:
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        dupes = db.execute("SELECT COUNT(*) FROM (SELECT 1 FROM entries GROUP BY source_url, key "
                           "HAVING COUNT(*) > 1)").fetchone()[0]
        assert dupes == 0
        return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
    finally:
        db.close()


def check_outputs(public: Path) -> None:
    for path in public.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            if path.suffix in (".atom", ".rss", ".xml"):
                etree.parse(str(path))
            elif path.suffix == ".json":
                json.loads(path.read_bytes())
            elif path.suffix == ".html":
                assert path.read_bytes().rstrip().endswith(b"</html>"), path


def test_thirty_kills_lose_nothing(feed_server: FeedServer, write_config: Callable[..., Path]
                                   ) -> None:
    rng = random.Random(20261125)
    specs = []
    for i, name in enumerate(FIXTURES * 2):
        # No validators and a body that changes now and then: every poll does real work.
        feed_server.set(f"/{i}", fixture_route(name))
        specs.append(SourceSpec(feed_server.url(f"/{i}"), extra="    interval: 1s"))
    config = write_config(specs)
    data = config.parent / "data"
    stored = 0
    for kill in range(KILLS):
        if kill % 5 == 4:  # a source gains an entry: writes, renders and files change
            feed_server.set(f"/{kill % len(specs)}", Route(body=(
                b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                b"<item><title>kill %d</title><guid>k-%d</guid></item></channel></rss>"
                % (kill, kill))))
        with DaemonProcess(config, spread=0.3) as daemon:
            daemon.wait_ready()
            before = len(feed_server.requests())
            daemon.wait_for(lambda before=before: len(feed_server.requests()) > before,
                            what="polling under way")
            time.sleep(rng.uniform(0.0, 1.2))
            daemon.kill()
        count = check_store(data / "feedhub.sqlite3")
        assert count >= stored  # nothing stored before was lost
        stored = count
        check_outputs(data / "public")
        leftovers = [p for p in (data / "public").rglob(".*.tmp")]
        # A kill mid-write may leave a temp file, never a half-written output.
        assert all(p.name.startswith(".") for p in leftovers)
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        before = len(feed_server.requests())
        daemon.wait_for(lambda: len(feed_server.requests()) >= before + len(specs),
                        what="polling resumed after the last kill")
        assert daemon.get("/feeds/all.atom").status_code == 200
        assert daemon.stop() == 0
    assert check_store(data / "feedhub.sqlite3") >= stored
