"""How long a graceful stop takes while the daemon is busy polling.

Serves N slow sources (each answers after DELAY seconds) from a local server,
starts ``feedhub run``, sends SIGTERM while polls are in flight, and prints
the time from SIGTERM to exit, beside the same stop of an idle daemon.

    python bench/stop_under_load.py [--sources 200] [--delay 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import SourceSpec, config_text
from tests.daemonproc import DaemonProcess
from tests.feedserver import FeedServer, Route

FEED = (Path(__file__).resolve().parents[1] / "tests/data/feeds/rss2_utf8.xml").read_bytes()


def one_stop(sources: int, delay: float, busy: bool) -> tuple[float, int]:
    with FeedServer() as server, tempfile.TemporaryDirectory() as tmp:
        specs = []
        for i in range(sources):
            server.set(f"/{i}.xml", Route(body=FEED, delay=delay if busy else 0.0))
            specs.append(SourceSpec(server.url(f"/{i}.xml"), extra="    interval: 1h"))
        config = Path(tmp) / "feeds.yaml"
        config.write_text(config_text(specs), encoding="utf-8")
        with DaemonProcess(config, spread=0.5) as daemon:
            daemon.wait_ready()
            if busy:
                daemon.wait_for(lambda: len(server.requests()) >= 10, what="polls in flight")
            else:
                daemon.wait_for(lambda: len(server.requests()) >= sources, what="idle")
                time.sleep(1)
            started = time.monotonic()
            code = daemon.stop(timeout=60)
            return time.monotonic() - started, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--delay", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'workload':<34} {'median s':>9} {'min–max s':>13}  exit codes")
    for name, busy in (("idle daemon", False), (f"{args.sources} sources, {args.delay:g}s each", True)):
        results = [one_stop(args.sources, args.delay, busy) for _ in range(args.runs)]
        times = [t for t, _ in results]
        print(f"{name:<34} {statistics.median(times):>9.2f} {min(times):>6.2f}–{max(times):<6.2f}"
              f"  {sorted({c for _, c in results})}")


if __name__ == "__main__":
    main()
