"""The floors feedhub is measured against, each run as its own process.

    python bench/floors.py feedparser DIR --procs N
        parse every file of DIR with feedparser's defaults, in N processes
    python bench/floors.py httpx URLS --concurrency C [--validators FILE]
        fetch every URL (one a line); with --validators, conditionally, using the
        ETag/Last-Modified saved by ``httpx-save``
    python bench/floors.py httpx-save URLS FILE
        fetch every URL once and save its validators (untimed preparation)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
from pathlib import Path


def _parse_file(path: str) -> int:
    import feedparser

    with open(path, "rb") as f:
        return len(feedparser.parse(f.read()).entries)


def parse_all(folder: Path, procs: int) -> int:
    paths = sorted(str(p) for p in folder.iterdir())
    if procs == 1:
        return sum(map(_parse_file, paths))
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        return sum(pool.imap_unordered(_parse_file, paths, chunksize=1))


async def fetch_all(urls: list[str], concurrency: int,
                    validators: dict[str, dict[str, str]] | None,
                    save: dict[str, dict[str, str]] | None = None) -> dict[int, int]:
    import httpx

    codes: dict[int, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, headers={"Accept-Encoding": "gzip, deflate"}) as client:
        async def one(url: str) -> None:
            headers = {}
            if validators and url in validators:
                v = validators[url]
                if v.get("etag"):
                    headers["If-None-Match"] = v["etag"]
                if v.get("last-modified"):
                    headers["If-Modified-Since"] = v["last-modified"]
            async with sem:
                response = await client.get(url, headers=headers)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
            if save is not None:
                save[url] = {k: response.headers[k] for k in ("etag", "last-modified")
                             if k in response.headers}

        await asyncio.gather(*(one(u) for u in urls))
    return codes


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("feedparser")
    p.add_argument("folder", type=Path)
    p.add_argument("--procs", type=int, default=1)
    h = sub.add_parser("httpx")
    h.add_argument("urls", type=Path)
    h.add_argument("--concurrency", type=int, default=10)
    h.add_argument("--validators", type=Path)
    s = sub.add_parser("httpx-save")
    s.add_argument("urls", type=Path)
    s.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.what == "feedparser":
        print(parse_all(args.folder, args.procs), "entries")
        return
    urls = args.urls.read_text().split()
    if args.what == "httpx-save":
        saved: dict[str, dict[str, str]] = {}
        asyncio.run(fetch_all(urls, 10, None, saved))
        args.out.write_text(json.dumps(saved))
        return
    validators = json.loads(args.validators.read_text()) if args.validators else None
    codes = asyncio.run(fetch_all(urls, args.concurrency, validators))
    print(codes)
    expected = 304 if validators else 200
    if codes.get(expected) != len(urls):
        sys.exit(f"expected {len(urls)} × {expected}, got {codes}")


if __name__ == "__main__":
    main()
