"""Scale-out benchmark: cold and warm polls by `feedhub run` nodes on SQLite and PostgreSQL.

    .venv/bin/python bench/scaleout.py [--sources 500] [--entries 50] [--runs 1] [--nodes 1,2,3]

The corpus of bench/corpus.py is served by nginx (with ETags) on 127.0.0.1.
Each configuration starts its nodes on a fresh store — SQLite (one node), then
PostgreSQL with one, two and three nodes on one database — and measures:

- cold: every source due at once on a store with no entries (nodes already started and
  idle), until each was polled once: full bodies, every entry parsed and stored;
- warm: every source made due again (all answer 304), until each was polled again.

Reported per phase: wall time, throughput (sources/s), each node's CPU seconds
(from /proc, the whole process) and the PostgreSQL server's, and the number of
polls recorded, which must equal the number of sources (no double work).

PostgreSQL runs in a throw-away cluster (tests/pg.py) with fsync on and
``synchronous_commit = off``: like SQLite's WAL with ``synchronous = NORMAL``, a
power cut may lose the last commits but never corrupts. Results go to
<work>/scaleout.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import corpus  # noqa: E402
import psycopg  # noqa: E402
from measure import wait_answering  # noqa: E402
from nginx import Nginx, free_port  # noqa: E402

from feedhub.config import load_config  # noqa: E402
from feedhub.store import open_store  # noqa: E402
from tests.pg import PgCluster, start_cluster  # noqa: E402

PY = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of processes (and their reaped children)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17 (1-based), 11-14 after the name.
        total += sum(int(x) for x in fields[11:15])
    return total / TICKS


def postgres_pids(cluster: PgCluster | None) -> list[int]:
    if cluster is None or cluster.folder is None:
        return []
    pidfile = cluster.folder / "data" / "postmaster.pid"
    master = int(pidfile.read_text().split()[0])
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True,
                         text=True).stdout.split()
    return [master, *(int(p) for p in out)]


class Store:
    """Just enough SQL to watch progress from outside the nodes."""

    def __init__(self, url: str | None, sqlite_file: Path | None) -> None:
        self.url, self.sqlite_file = url, sqlite_file

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> int:
        if self.url is not None:
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    row = conn.execute(sql.replace("?", "%s"), params).fetchone()  # type: ignore[arg-type]
            except psycopg.errors.UndefinedTable:  # not created yet
                return 0
        else:
            assert self.sqlite_file is not None
            if not self.sqlite_file.exists():
                return 0
            try:
                with sqlite3.connect(self.sqlite_file, timeout=30) as db:
                    row = db.execute(sql, tuple(_iso(p) for p in params)).fetchone()
            except sqlite3.OperationalError:  # not created yet
                return 0
        return int(row[0]) if row else 0

    def polled_since(self, since: datetime) -> int:
        return self._query("SELECT COUNT(*) FROM sources WHERE last_poll_at >= ?", (since,))

    def polls_since(self, since: datetime) -> int:
        return self._query("SELECT COUNT(*) FROM polls WHERE at >= ?", (since,))

    def make_all_due(self) -> None:
        now = datetime.now(UTC)
        if self.url is not None:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("UPDATE sources SET next_poll_at = %s", (now,))
        else:
            with sqlite3.connect(self.sqlite_file or "", timeout=30) as db:
                db.execute("UPDATE sources SET next_poll_at = ?", (_iso(now),))


def _iso(value: object) -> object:
    return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value


@dataclass
class Phase:
    label: str
    store: str
    nodes: int
    phase: str
    wall: float
    sources_per_s: float
    node_cpu: list[float]
    postgres_cpu: float
    polls: int
    polls_by_node: list[int] = field(default_factory=list)


async def seed_store(config: Path) -> None:
    """Create the store with every source known but not due, so nodes start idle."""
    cfg = load_config(config)
    store = await open_store(cfg.store_url)
    try:
        far = datetime(2100, 1, 1, tzinfo=UTC)
        await store.ensure_sources({s.url: far for s in cfg.sources})
    finally:
        await store.close()


@contextmanager
def nodes_running(configs: list[Path], env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Nodes started and answering HTTP (their startup done) before the measurement."""
    procs = []
    try:
        ports = []
        for config in configs:
            ports.append(free_port())
            procs.append(subprocess.Popen(
                [PY, "-m", "feedhub", "--config", str(config), "--log-level", "WARNING", "run",
                 "--listen", f"127.0.0.1:{ports[-1]}", "--tick", "0.2", "--spread", "0.1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        for port, proc in zip(ports, procs, strict=True):
            wait_answering(proc, f"http://127.0.0.1:{port}/healthz", "a node")
        yield procs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def measure(label: str, store_name: str, store: Store, procs: list[subprocess.Popen[bytes]],
            cluster: PgCluster | None, sources: int, phase: str, start: datetime,
            prepare: Callable[[], None] | None = None, timeout: float = 900) -> Phase:
    pg = postgres_pids(cluster)
    node_before = [cpu_seconds([p.pid]) for p in procs]
    pg_before = cpu_seconds(pg)
    t0 = time.monotonic()
    if prepare:
        prepare()
    while store.polled_since(start) < sources:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"{label}: a node exited with {[p.returncode for p in procs]}")
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"{label} {phase}: not done after {timeout:.0f} s")
        time.sleep(0.05)
    wall = time.monotonic() - t0
    node_cpu = [cpu_seconds([p.pid]) - b for p, b in zip(procs, node_before, strict=True)]
    result = Phase(label=label, store=store_name, nodes=len(procs), phase=phase, wall=wall,
                   sources_per_s=sources / wall, node_cpu=node_cpu,
                   postgres_cpu=cpu_seconds(postgres_pids(cluster)) - pg_before if pg else 0.0,
                   polls=store.polls_since(start))
    log(f"{label} {phase}: {wall:.2f} s, {result.sources_per_s:.0f} sources/s, node CPU "
        f"{', '.join(f'{c:.1f}' for c in node_cpu)} s, postgres {result.postgres_cpu:.1f} s, "
        f"{result.polls} polls")
    return result


def run_config(label: str, work: Path, port: int, args: argparse.Namespace, count: int,
               cluster: PgCluster | None) -> list[Phase]:
    folder = work / label.replace(" ", "-")
    shutil.rmtree(folder, ignore_errors=True)
    if cluster is not None:
        url = cluster.create_database()
        storage = f"storage:\n  url: {url}\n  pool_size: 10\n"
        store = Store(url, None)
    else:
        url, storage = None, ""
        store = Store(None, folder / "node0" / "data" / "feedhub.sqlite3")
    configs = [corpus.feeds_yaml(folder / f"node{i}", port, args.sources, args.entries,
                                  interval="1d", extra=storage)
               for i in range(count)]
    env = {k: v for k, v in os.environ.items() if k not in ("FEEDHUB_CONFIG", "FEEDHUB_DATABASE_URL")}
    asyncio.run(seed_store(configs[0]))
    phases = []
    with nodes_running(configs, env) as procs:
        time.sleep(2)
        start = datetime.now(UTC)
        phases.append(measure(label, "PostgreSQL" if cluster else "SQLite", store, procs,
                              cluster, args.sources, "cold", start, prepare=store.make_all_due))
        time.sleep(3)  # let republishing settle
        warm_start = datetime.now(UTC)
        phases.append(measure(label, "PostgreSQL" if cluster else "SQLite", store, procs,
                              cluster, args.sources, "warm", warm_start, prepare=store.make_all_due))
    if cluster is not None and url is not None:
        cluster.drop_database(url)
    return phases


def median_phase(runs: list[Phase]) -> Phase:
    wall = statistics.median(p.wall for p in runs)
    best = min(runs, key=lambda p: abs(p.wall - wall))
    return best


def table(phases: list[Phase]) -> str:
    lines = ["| store | nodes | poll | wall (s) | sources/s | CPU per node (s) | PostgreSQL CPU (s) "
             "| polls recorded |",
             "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: |"]
    for p in phases:
        lines.append(f"| {p.store} | {p.nodes} | {p.phase} | {p.wall:.2f} | {p.sources_per_s:.0f} | "
                     f"{' / '.join(f'{c:.1f}' for c in p.node_cpu)} | "
                     f"{p.postgres_cpu:.1f} | {p.polls} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1, help="runs of each configuration (median)")
    parser.add_argument("--nodes", default="1,2,3", help="PostgreSQL node counts")
    parser.add_argument("--work", type=Path, default=Path("/tmp/feedhub-bench"))
    args = parser.parse_args()
    work: Path = args.work
    root = corpus.ensure(work / f"corpus-{args.sources}x{args.entries}", args.sources, args.entries)
    corpus.switch(root, "base")
    static = work / "static-scaleout"
    static.mkdir(parents=True, exist_ok=True)
    log("starting PostgreSQL (fsync on, synchronous_commit off)")
    cluster = start_cluster(fsync=True, settings={"synchronous_commit": "off",
                                                  "shared_buffers": "256MB"})
    results: list[Phase] = []
    try:
        with Nginx(root / "www/current", static) as nginx:
            configs: list[tuple[str, int, PgCluster | None]] = [("sqlite 1", 1, None)]
            configs += [(f"postgres {n}", n, cluster) for n in map(int, args.nodes.split(","))]
            for label, count, pg in configs:
                runs = [run_config(label, work, nginx.validators, args, count, pg)
                        for _ in range(args.runs)]
                results += [median_phase([r[i] for r in runs]) for i in range(2)]
    finally:
        cluster.stop()
    (work / "scaleout.json").write_text(json.dumps([asdict(p) for p in results], indent=2))
    print(f"{args.sources} sources × {args.entries} entries, {os.cpu_count()} cores, "
          f"median of {args.runs} run(s)\n")
    print(table(results))


if __name__ == "__main__":
    main()
