"""What each table of the SQLite store costs per entry after a cold poll.

    .venv/bin/python bench/store_tables.py [--sources 500] [--entries 50] [--work DIR]

Polls the generated corpus (served by nginx on 127.0.0.1, as in run.py) into a fresh
store, then reads every table's and index's pages from SQLite's ``dbstat`` table
and prints bytes per stored entry, beside the whole file.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402
from nginx import Nginx  # noqa: E402
from run import FETCH, ensure_tools  # noqa: E402


def table_bytes(db: Path) -> dict[str, int]:
    """Bytes of pages per table (its indexes counted under their own names)."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name "
                            "ORDER BY SUM(pgsize) DESC").fetchall()
    return {str(name): int(size) for name, size in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--work", type=Path, default=Path("/tmp/feedhub-bench"))
    args = parser.parse_args()
    ensure_tools()
    n, m = args.sources, args.entries
    root = corpus.ensure(args.work / f"corpus-{n}x{m}", n, m)
    corpus.switch(root, "base")
    folder = args.work / "store-tables"
    shutil.rmtree(folder, ignore_errors=True)
    static = args.work / "store-tables-static"
    static.mkdir(parents=True, exist_ok=True)
    with Nginx(root / "www/current", static) as nginx:
        config = corpus.feeds_yaml(folder, nginx.validators, n, m, extra=FETCH)
        subprocess.run([sys.executable, "-m", "feedhub", "--config", str(config), "poll"],
                       check=True, stdout=subprocess.DEVNULL, timeout=1800)
    db = folder / "data/feedhub.sqlite3"
    with sqlite3.connect(db) as conn:
        entries = int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
    sizes = table_bytes(db)
    total = db.stat().st_size
    print(f"{entries:,} entries; store file {total / 1e6:.1f} MB, "
          f"{total / entries:,.0f} bytes per entry")
    print("| table or index | MB | bytes per entry |")
    print("| --- | --- | --- |")
    for name, size in sizes.items():
        if size * 1000 >= total:  # the rest is under 0.1 % each
            print(f"| `{name}` | {size / 1e6:.1f} | {size / entries:,.0f} |")


if __name__ == "__main__":
    main()
