"""Three real ``feedhub run`` nodes on one PostgreSQL share the polling and serve the same bytes.

Each node is a subprocess with its own data folder and an identical feeds.yaml
pointing at the test's database. Double polls and gaps show up twice: in the
poll history in the store (each poll's start, by the node's clock) and in the
requests a local source server records.

The machine may be loaded (two cores shared with the database and other
tests), so a poll's HTTP request can lag its start by a varying fraction of a
second. Lower bounds are therefore checked where they are exact: a poll starts
no earlier than an interval after the source's previous poll started, and no
earlier than the end of a lease it waits out, both by the nodes' clocks. Waits
for something to happen have generous deadlines: load makes them slower, not
red.
"""

from __future__ import annotations

import re
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

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
#: Two requests for one source closer than this are two polls at once, however late
#: each request was sent after its poll started.
DOUBLE = INTERVAL / 2
#: Error of converting between the test's monotonic clock and the nodes' wall clock.
CLOCK = 0.05
#: The slow source answers after this long: the node to kill is caught mid-fetch.
SLOW = 2.5
#: Deadline of a wait for something that happens within seconds on an idle machine.
PATIENCE = 60.0


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
            node.wait_ready(timeout=PATIENCE)
        return started

    yield start
    for node in started:
        node.close()


def times(server: FeedServer, path: str) -> list[float]:
    return [r.time for r in server.requests(path)]


def polled_by(node: DaemonProcess) -> set[str]:
    return set(re.findall(r"polled (\S+):", node.stderr))


def to_wall(monotonic: float) -> datetime:
    """A ``time.monotonic()`` instant of this process on the nodes' (wall) clock."""
    return datetime.fromtimestamp(monotonic + time.time() - time.monotonic(), UTC)


def to_monotonic(when: datetime) -> float:
    """A wall-clock instant (from the store) on this process's ``time.monotonic()``."""
    return when.timestamp() - time.time() + time.monotonic()


def poll_starts(db_url: str, since: float) -> dict[str, list[datetime]]:
    """When each source's polls saved since ``since`` (monotonic) started, in order."""
    starts: dict[str, list[datetime]] = defaultdict(list)
    with psycopg.connect(db_url) as conn:
        for url, at in conn.execute("SELECT source_url, at FROM polls WHERE at >= %s ORDER BY at",
                                    (to_wall(since),)):
            starts[url].append(at)
    return starts


def lease_of(db_url: str, url: str) -> tuple[str | None, datetime | None]:
    """Who holds the lease on a source, and until when."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT lease_owner, lease_until FROM sources WHERE url = %s",
                           (url,)).fetchone()
    assert row is not None, url
    return row[0], row[1]


def assert_steady(server: FeedServer, db_url: str, paths: list[str], since: float) -> None:
    """After ``since``, each source was polled once per interval: no doubles, no gaps.

    Poll starts are at least an interval apart (exact: a source falls due an interval
    after its last poll started) and at most LATE more. The source server agrees: no
    two requests for one source came close together.
    """
    starts = poll_starts(db_url, since)
    for path in paths:
        polls = starts.get(server.url(path), [])
        assert len(polls) >= 3, (path, polls)
        gaps = [(b - a).total_seconds() for a, b in pairwise(polls)]
        assert all(INTERVAL <= g <= INTERVAL + LATE for g in gaps), (path, gaps)
        requests = [t for t in times(server, path) if t >= since]
        assert all(b - a >= DOUBLE for a, b in pairwise(requests)), (
            path, [round(b - a, 2) for a, b in pairwise(requests)])


def assert_same_bytes(nodes: list[DaemonProcess], db_url: str) -> int:
    """Every stored document is served with the same bytes and ETag by every node.

    A node's in-memory copy is re-checked against the store within a second; a
    difference is given much longer than that to converge on a loaded machine.
    """
    with psycopg.connect(db_url) as conn:
        paths = [row[0] for row in conn.execute("SELECT path FROM documents ORDER BY path")]
    assert any(p.endswith(".atom") for p in paths) and "index.html" in paths
    for path in paths:
        deadline = time.monotonic() + 20
        while True:
            answers = [node.get("/" + path) for node in nodes]
            assert {r.status_code for r in answers} == {200}, path
            if len({(r.content, r.headers["etag"]) for r in answers}) == 1:
                break
            assert time.monotonic() < deadline, f"nodes disagree on {path}"
            time.sleep(0.5)
    return len(paths)


def wait_until_quiet(server: FeedServer, paths: list[str], node: DaemonProcess) -> None:
    """Until every source has been polled twice (the second a 304: nothing left to render)."""
    node.wait_for(lambda: all(len(server.requests(p)) >= 2 for p in paths), timeout=PATIENCE,
                  what="two polls of every source")
    time.sleep(3)  # republish runs every 2 s


def kill_mid_poll(server: FeedServer, nodes: list[DaemonProcess], db_url: str, url: str
                  ) -> tuple[DaemonProcess, float, datetime]:
    """SIGKILL the node polling ``url`` while it holds the lease.

    Returns the node, when it was killed (monotonic) and when its lease on ``url`` ends.

    The node is frozen (SIGSTOP) before it is checked to still hold the lease, so it
    cannot save its poll between the check and the kill; a node found to have saved
    already (the machine was slow) is let go, and the next poll is caught instead.
    """
    path = urlsplit(url).path
    for _ in range(5):
        before = len(server.requests(path))
        nodes[0].wait_for(lambda n=before: len(server.requests(path)) > n,
                          timeout=PATIENCE, what=f"the next poll of {path}")
        owner, until = lease_of(db_url, url)
        holder = [n for n in nodes if owner and n.proc.pid == int(owner.rsplit(":", 1)[1])]
        if not owner or not holder or until is None:
            continue  # saved already
        [node] = holder
        node.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.5)  # a commit already sent completes meanwhile
        if lease_of(db_url, url) != (owner, until):
            node.proc.send_signal(signal.SIGCONT)
            continue
        node.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        node.proc.wait(timeout=PATIENCE)
        assert lease_of(db_url, url) == (owner, until), "the killed node's poll was saved"
        return node, killed, until
    raise AssertionError(f"no poll of {url} could be caught in flight")


def test_three_nodes_poll_each_source_once_per_interval(
        feed_server: FeedServer, start_nodes: Nodes, pg_url: str) -> None:
    """No source is polled twice in an interval, none is skipped, and all serve the same bytes."""
    paths = serve(feed_server)
    nodes = start_nodes([feed_server.url(p) for p in paths])
    wait_until_quiet(feed_server, paths, nodes[0])
    steady_from = time.monotonic()
    time.sleep(5 * INTERVAL + 1)
    assert_steady(feed_server, pg_url, paths, steady_from)
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
    slow = feed_server.url("/slow.xml")
    victim, killed_at, lease_until = kill_mid_poll(feed_server, nodes, pg_url, slow)
    survivors = [n for n in nodes if n is not victim]

    # Nobody polls the slow source until the dead node's lease runs out; then someone does.
    expires = to_monotonic(lease_until)
    survivors[0].wait_for(lambda: times(feed_server, "/slow.xml")[-1] > killed_at,
                          timeout=expires - time.monotonic() + PATIENCE,
                          what="the slow source taken over")
    taken_over = min(t for t in times(feed_server, "/slow.xml") if t > killed_at)
    assert expires - CLOCK <= taken_over <= expires + LATE + 1, (
        taken_over - expires, [round(t - expires, 2) for t in times(feed_server, "/slow.xml")])
    # Afterwards the two survivors keep every source on schedule, and agree byte for byte.
    # (Other sources the dead node was polling wait out their leases too, claimed before
    # it died.)
    steady_from = max(time.monotonic(), killed_at + LEASE) + LATE
    time.sleep(steady_from - time.monotonic() + 5 * INTERVAL + 1)
    assert_steady(feed_server, pg_url, [p for p in paths if p != "/slow.xml"], steady_from)
    assert_same_bytes(survivors, pg_url)
    for node in survivors:
        assert node.stop() == 0


def test_a_node_stops_promptly_while_another_renders(
        feed_server: FeedServer, tmp_path: Path, pg_url: str) -> None:
    """SIGTERM with a poll stuck in flight and another node holding the render lock.

    The other node stands for one rendering a large backlog (or frozen while holding
    the lock): the stopping node's last render waits for it only a few seconds, so the
    node is out well within the bound, and gives up its leases on the way out.
    """
    paths = serve(feed_server)
    feed_server.set("/stuck.xml", fixture_route("atom_utf8.xml", delay=60))
    urls = [feed_server.url(p) for p in [*paths, "/stuck.xml"]]
    [config] = write_node_configs(tmp_path, urls, pg_url, 1)
    with DaemonProcess(config) as node, psycopg.connect(pg_url, autocommit=True) as other:
        node.wait_ready(timeout=PATIENCE)
        other.execute("SELECT pg_advisory_lock(hashtextextended('feedhub:republish', 0))")
        # Entries stored but not rendered yet (the lock is taken), and a poll in flight.
        node.wait_for(lambda: len(re.findall(r": ok, [1-9]\d* new", node.stderr)) >= 3
                      and feed_server.requests("/stuck.xml"), timeout=PATIENCE,
                      what="new entries and the stuck source's poll")
        stopped_at = time.monotonic()
        assert node.stop(timeout=PATIENCE) == 0
        took = time.monotonic() - stopped_at
        assert took < 15, (took, node.stderr)
        assert "Traceback" not in node.stderr, node.stderr
        assert "stopped without rendering" in node.stderr, node.stderr
        owners = other.execute("SELECT url, lease_owner FROM sources "
                               "WHERE lease_owner IS NOT NULL").fetchall()
        assert owners == [], owners
