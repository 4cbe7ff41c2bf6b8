"""lemon24/reader as a baseline: run in reader's own venv, never feedhub's.

    python reader_job.py DB URLS

Adds every URL (one a line) that is not there yet, then updates every feed
now, whatever its schedule (``update_feeds(scheduled=False)``: the default,
``scheduled=True``, skips feeds updated within the last hour).
"""

from __future__ import annotations

import sys

from reader import make_reader  # type: ignore[import-not-found]


def main() -> None:
    db, urls_file = sys.argv[1], sys.argv[2]
    with open(urls_file) as f:
        urls = f.read().split()
    reader = make_reader(db)
    for url in urls:
        reader.add_feed(url, exist_ok=True)
    reader.update_feeds(scheduled=False)
    broken = [f.url for f in reader.get_feeds() if f.last_exception]
    counts = reader.get_entry_counts()
    reader.close()
    print(f"{counts.total} entries, {len(broken)} broken")
    if broken:
        sys.exit(f"broken feeds: {broken[:3]}")


if __name__ == "__main__":
    main()
