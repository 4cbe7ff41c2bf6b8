"""Three real ``feedhub run`` nodes on one PostgreSQL share the polling and serve the same bytes.

Each node is a subprocess with its own data folder and an identical feeds.yaml
pointing at the test's database. A local source server records every request,
so double polls and gaps show up as request times.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest

from tests.conftest import SourceSpec, config_text, fixture_route
from tests.daemonproc import DaemonProcess
from tests.feedserver import FeedServer

pytestmark = pytest.mark.postgres

INTERVAL = 2.0
LEASE = 8.0
#: Fixtures without <ttl> (a hint would lengthen the interval), each served at several paths.
FIXTURES = ["atom_utf8.xml", "json_feed_11.json", "rss1_utf8.rdf", "relative_rss.xml",
            "zoneless_dates.xml", "dup_source_a.xml", "dup_source_b.xml", "big5.xml",
            "xml_base_atom.xml"]
#: Slack for a tick (0.2 s) and three daemons sharing two cores with the database.
LATE = 2.5
EARLY = 0.3
#: The slow source answers after this long: the node to kill is caught mid-fetch.
SLOW = 2.5


def write_node_configs(root: Path, urls: list[str], db_url: str, count: int) -> list[Path]:
    """The same feeds.yaml in ``count`` folders (so each node has its own data_dir)."""
    text = config_text([SourceSpec(u, extra=f"    interval: {int(INTERVAL)}s") for u in urls])
    text += f"storage:\n  url: {db_url}\n  lease: {int(LEASE)}s\n  pool_size: 4\n"
    paths = []
    for i in range(count):
        folder = root / f"node{i}"
        folder.mkdir()
        (folder / "feeds.yaml").write_text(text, encoding="utf-8")
        paths.append(folder / "feeds.yaml")
    return paths


def serve(server: FeedServer, slow: bool = False) -> list[str]:
    paths = []
    for name in FIXTURES:
        path = f"/{name}"
        server.set(path, fixture_route(name, etag=f'"{name}"'))
        paths.append(path)
    if slow:
        server.set("/slow.xml", fixture_route("atom_utf8.xml", delay=SLOW))
        paths.append("/slow.xml")
    return paths


Nodes = Callable[[list[str]], list[DaemonProcess]]


@pytest.fixture
def start_nodes(tmp_path: Path, pg_url: str) -> Iterator[Nodes]:
    """Start three nodes on the given source URLs; all are killed at the end."""
    started: list[DaemonProcess] = []

    def start(urls: list[str]) -> list[DaemonProcess]:
        for config in write_node_configs(tmp_path, urls, pg_url, 3):
            started.append(DaemonProcess(config))
        for node in started:
            node.wait_ready()
        return started

    yield start
    for node in started:
        node.close()


def times(server: FeedServer, path: str) -> list[float]:
    return [r.time for r in server.requests(path)]


def polled_by(node: DaemonProcess) -> set[str]:
    return set(re.findall(r"polled (\S+):", node.stderr))


def assert_steady(server: FeedServer, paths: list[str], since: float) -> None:
    """After ``since``, each source was polled about once per interval: no doubles, no gaps."""
    for path in paths:
        seen = [t for t in times(server, path) if t >= since]
        assert len(seen) >= 3, (path, seen)
        gaps = [b - a for a, b in pairwise(seen)]
        assert all(INTERVAL - EARLY <= g <= INTERVAL + LATE for g in gaps), (path, gaps)


def assert_same_bytes(nodes: list[DaemonProcess], db_url: str) -> int:
    """Every stored document is served with the same bytes and ETag by every node.

    A node's in-memory copy is re-checked against the store within a second, so a
    difference is given that long to converge.
    """
    with psycopg.connect(db_url) as conn:
        paths = [row[0] for row in conn.execute("SELECT path FROM documents ORDER BY path")]
    assert any(p.endswith(".atom") for p in paths) and "index.html" in paths
    for path in paths:
        for attempt in range(3):
            answers = [node.get("/" + path) for node in nodes]
            assert {r.status_code for r in answers} == {200}, path
            if len({(r.content, r.headers["etag"]) for r in answers}) == 1:
                break
            assert attempt < 2, f"nodes disagree on {path}"
            time.sleep(1.5)
    return len(paths)


def wait_until_quiet(server: FeedServer, paths: list[str], node: DaemonProcess) -> None:
    """Until every source has been polled twice (the second a 304: nothing left to render)."""
    node.wait_for(lambda: all(len(server.requests(p)) >= 2 for p in paths), timeout=30,
                  what="two polls of every source")
    time.sleep(3)  # republish runs every 2 s


def test_three_nodes_poll_each_source_once_per_interval(
        feed_server: FeedServer, start_nodes: Nodes, pg_url: str) -> None:
    """No source is polled twice in an interval, none is skipped, and all serve the same bytes."""
    paths = serve(feed_server)
    nodes = start_nodes([feed_server.url(p) for p in paths])
    wait_until_quiet(feed_server, paths, nodes[0])
    steady_from = time.monotonic()
    time.sleep(5 * INTERVAL + 1)
    assert_steady(feed_server, paths, steady_from)
    # The work is shared: more than one node polled, and each poll was logged once.
    workers = [n for n in nodes if polled_by(n)]
    assert len(workers) >= 2, [n.stderr[-2000:] for n in nodes]
    assert assert_same_bytes(nodes, pg_url) >= 10
    for node in nodes:
        assert node.stop() == 0
        assert "Traceback" not in node.stderr, node.stderr


def test_killed_node_sources_are_taken_over_after_the_lease(
        feed_server: FeedServer, start_nodes: Nodes, pg_url: str) -> None:
    """SIGKILL a node mid-poll: its source waits out the lease, then a survivor polls it."""
    paths = serve(feed_server, slow=True)
    nodes = start_nodes([feed_server.url(p) for p in paths])
    wait_until_quiet(feed_server, paths, nodes[0])
    # Kill, with SIGKILL, the node that is fetching the slow source right now.
    slow = feed_server.url("/slow.xml")
    before = len(feed_server.requests("/slow.xml"))
    nodes[0].wait_for(lambda: len(feed_server.requests("/slow.xml")) > before, timeout=10,
                      what="the next poll of the slow source")
    killed_at = feed_server.requests("/slow.xml")[-1].time
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT lease_owner FROM sources WHERE url = %s", (slow,)).fetchone()
    assert row is not None and row[0], row
    pid = int(row[0].rsplit(":", 1)[1])
    [victim] = [n for n in nodes if n.proc.pid == pid]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=10)
    survivors = [n for n in nodes if n is not victim]
    assert time.monotonic() - killed_at < SLOW, "killed after the slow fetch had finished"

    # Nobody polls the slow source until the dead node's lease runs out; then someone does.
    survivors[0].wait_for(lambda: feed_server.requests("/slow.xml")[-1].time > killed_at,
                          timeout=LEASE + 10, what="the slow source taken over")
    taken_over = feed_server.requests("/slow.xml")[-1].time
    assert LEASE - EARLY <= taken_over - killed_at <= LEASE + LATE + 1, (
        taken_over - killed_at, [round(t - killed_at, 2) for t in times(feed_server, "/slow.xml")])
    # Afterwards the two survivors keep every source on schedule, and agree byte for byte.
    steady_from = time.monotonic() + LEASE
    time.sleep(LEASE + 5 * INTERVAL + 1)
    assert_steady(feed_server, [p for p in paths if p != "/slow.xml"], steady_from)
    assert_same_bytes(survivors, pg_url)
    for node in survivors:
        assert node.stop() == 0

