"""Sustained run: `feedhub run` polling many sources on their interval, for a while.

    .venv/bin/python bench/sustained.py [--sources 10000] [--entries 20] [--interval 15]
                                        [--minutes 30] [--work /tmp/feedhub-bench]

The corpus of bench/corpus.py is served by nginx (with ETags) on 127.0.0.1, and
one daemon polls all of it from a fresh SQLite store, as an operator would start
it: default tick and first-poll spread, the interval in minutes from
``--interval``. At the start of the second cycle 10 % of the sources gain five
entries (the corpus's ``changed`` variant), so that cycle stores and republishes
some. Every second, from outside the daemon:

- lateness: how long the longest-overdue source that is due and not yet claimed
  has been waiting (``now - next_poll_at`` in the store; 0 when none is due);
- CPU: user + system seconds of the daemon and its workers (``/proc``);
- memory: PSS of the daemon and its workers, summed.

Reported per window (``--window`` minutes): polls recorded, CPU share (% of one
core), the worst lateness and the peak PSS. The first cycle is a cold start
(every source due within a minute): its lateness is the time to catch up and is
reported apart from the steady state. Results go to <work>/sustained.json and a
Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402
from measure import _pss_kb, _tree, tree_cpu_seconds, wait_answering  # noqa: E402
from nginx import Nginx, free_port  # noqa: E402
from run import FETCH, PY, ensure_tools, log  # noqa: E402


@dataclass
class Sample:
    at: float  # seconds since the daemon answered
    cpu: float  # seconds, cumulative
    pss_mb: float
    lateness: float  # seconds
    polls: int  # cumulative
    polled_once: int  # sources polled at least once


@dataclass
class Window:
    start_min: float
    end_min: float
    polls: int
    cpu_share: float  # % of one core
    worst_lateness: float
    peak_pss_mb: float


class Watch:
    """Read-only queries on the daemon's SQLite store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None and self.path.exists():
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        return self._db

    def sample(self) -> tuple[float, int, int]:
        """Lateness (seconds), polls recorded, sources polled at least once."""
        db = self._conn()
        if db is None:
            return 0.0, 0, 0
        now = datetime.now(UTC)
        iso = now.isoformat(timespec="microseconds")
        try:
            oldest = db.execute("SELECT MIN(next_poll_at) FROM sources WHERE next_poll_at <= ? "
                                "AND (lease_until IS NULL OR lease_until <= ?)",
                                (iso, iso)).fetchone()[0]
            polls = db.execute("SELECT MAX(id) FROM polls").fetchone()[0] or 0
            once = db.execute("SELECT COUNT(*) FROM sources WHERE last_poll_at IS NOT NULL"
                              ).fetchone()[0]
        except sqlite3.OperationalError:  # tables not created yet
            return 0.0, 0, 0
        late = (now - datetime.fromisoformat(oldest)).total_seconds() if oldest else 0.0
        return late, int(polls), int(once)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def windows(samples: list[Sample], minutes: float) -> list[Window]:
    out: list[Window] = []
    if not samples:
        return out
    span = minutes * 60
    start, end = 0.0, span
    while start < samples[-1].at:
        inside = [s for s in samples if start <= s.at < end]
        before = [s for s in samples if s.at < start]
        if inside:
            first = before[-1] if before else inside[0]
            last = inside[-1]
            elapsed = max(last.at - first.at, 1e-9)
            out.append(Window(start / 60, min(end, last.at) / 60, last.polls - first.polls,
                              100 * (last.cpu - first.cpu) / elapsed,
                              max(s.lateness for s in inside), max(s.pss_mb for s in inside)))
        start, end = end, end + span
    return out


def table(rows: list[Window]) -> str:
    lines = ["| minutes | polls | CPU (% of one core) | worst lateness (s) | peak PSS (MB) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for w in rows:
        lines.append(f"| {w.start_min:.0f}–{w.end_min:.0f} | {w.polls} | {w.cpu_share:.1f} | "
                     f"{w.worst_lateness:.1f} | {w.peak_pss_mb:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=10000)
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--interval", type=float, default=15.0, help="poll interval, minutes")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run")
    parser.add_argument("--window", type=float, default=5.0, help="report window, minutes")
    parser.add_argument("--work", type=Path, default=Path("/tmp/feedhub-bench"))
    args = parser.parse_args()
    ensure_tools()
    work: Path = args.work
    root = corpus.ensure(work / f"corpus-{args.sources}x{args.entries}", args.sources, args.entries)
    corpus.switch(root, "base")
    folder = work / "sustained"
    if folder.exists():
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    static = work / "static-sustained"
    static.mkdir(parents=True, exist_ok=True)
    interval = f"{args.interval:g}m"
    samples: list[Sample] = []
    with Nginx(root / "www/current", static) as nginx:
        config = corpus.feeds_yaml(folder, nginx.validators, args.sources, args.entries,
                                   interval=interval, extra=FETCH)
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in ("FEEDHUB_CONFIG", "FEEDHUB_DATABASE_URL")}
        daemon_log = open(folder / "daemon.log", "wb")  # noqa: SIM115 (closed after the daemon)
        daemon = subprocess.Popen(
            [PY, "-m", "feedhub", "--config", str(config), "--log-level", "WARNING", "run",
             "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=daemon_log, env=env)
        watch = Watch(folder / "data" / "feedhub.sqlite3")
        try:
            wait_answering(daemon, f"http://127.0.0.1:{port}/healthz", "the daemon")
            log(f"daemon up: {args.sources} sources every {interval}, for {args.minutes:g} min")
            t0 = time.monotonic()
            changed = False
            while (elapsed := time.monotonic() - t0) < args.minutes * 60:
                if daemon.poll() is not None:
                    raise SystemExit(f"the daemon exited with {daemon.returncode}")
                if not changed and elapsed >= args.interval * 60:
                    corpus.switch(root, "changed")
                    changed = True
                    log("10 % of the sources changed")
                late, polls, once = watch.sample()
                pss = sum(_pss_kb(p) for p in _tree(daemon.pid)) / 1024
                samples.append(Sample(elapsed, tree_cpu_seconds(daemon.pid), pss, late, polls,
                                      once))
                if len(samples) % 60 == 0:
                    log(f"{elapsed / 60:.1f} min: {polls} polls, {once} sources polled, "
                        f"lateness {late:.1f} s, PSS {pss:.0f} MB")
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t0 - elapsed)))
        finally:
            watch.close()
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            daemon_log.close()
    caught_up = next((s.at for s in samples if s.polled_once >= args.sources), None)
    steady = [s for s in samples if caught_up is not None and s.at > caught_up]
    last = samples[-1]
    summary = {
        "sources": args.sources, "entries": args.entries, "interval_min": args.interval,
        "minutes": last.at / 60, "polls": last.polls,
        "cold_start_caught_up_s": caught_up,
        "cpu_share_pct": 100 * last.cpu / last.at,
        "steady_cpu_share_pct": (100 * (last.cpu - steady[0].cpu) / (last.at - steady[0].at)
                                 if len(steady) > 1 else None),
        "steady_worst_lateness_s": max((s.lateness for s in steady), default=None),
        "peak_pss_mb": max(s.pss_mb for s in samples),
    }
    rows = windows(samples, args.window)
    (work / "sustained.json").write_text(json.dumps(
        {"summary": summary, "windows": [asdict(w) for w in rows],
         "samples": [asdict(s) for s in samples]}, indent=1))
    print(f"{args.sources} sources × {args.entries} entries every {interval}, "
          f"{last.at / 60:.1f} min, {os.cpu_count()} cores\n")
    print(table(rows))
    print()
    for key, value in summary.items():
        print(f"- {key}: {value:.1f}" if isinstance(value, float) else f"- {key}: {value}")


if __name__ == "__main__":
    main()
