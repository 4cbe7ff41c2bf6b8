"""Disk full and read-only data directories.

The data directory is a small tmpfs (mounting needs root, which CI has). Disk
full, under the real daemon: it stores and serves; then the disk fills up while
a source changes; the daemon keeps serving the last good outputs and logs a
clear error; when space returns it catches up by itself. Read-only: a store on a
read-only file system is refused with a clear error naming it, nothing changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import feedparser
import pytest

from tests.conftest import SourceSpec, fixture_route, run_cli
from tests.daemonproc import DaemonProcess
from tests.feedserver import FeedServer

SEED_TITLE = "“科创中国”大湾区联合体落户前海"
NEW_TITLE = "保险资金权益投资比例上限拟调整"  # added by updated_v2.xml


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    result = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs for the disk tests: {result.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Write a file until the file system is full."""
    filler = path / "filler"
    with suppress(OSError), filler.open("wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    return filler


def titles(daemon: DaemonProcess) -> set[str]:
    feed = feedparser.parse(daemon.get("/feeds/zhengquanshibaowang.atom").content)
    return {e.title for e in feed.entries}


def test_disk_full_keeps_serving_and_recovers(feed_server: FeedServer, tmp_path: Path,
                                      write_config: Callable[..., Path]) -> None:
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    with tmpfs(tmp_path / "data", "6m") as data:
        feed_server.set("/seed.xml", fixture_route("seed.xml"))
        feed_server.set("/news.xml", fixture_route("updated_v1.xml"))
        config = write_config([SourceSpec(feed_server.url("/seed.xml"), extra="    interval: 1s"),
                               SourceSpec(feed_server.url("/news.xml"), extra="    interval: 1s")])
        with DaemonProcess(config) as daemon:
            daemon.wait_ready()
            daemon.wait_for(lambda: SEED_TITLE in titles(daemon), what="first outputs")
            before = titles(daemon)
            filler = fill(data)
            feed_server.set("/news.xml", fixture_route("updated_v2.xml"))
            daemon.wait_for(lambda: "cannot be written" in daemon.stderr, timeout=30,
                            what="the store error logged")
            # The last good outputs are still served, and the daemon is alive.
            assert titles(daemon) == before
            assert daemon.get("/feeds/all.rss").status_code == 200
            assert daemon.proc.poll() is None
            filler.unlink()
            daemon.wait_for(lambda: NEW_TITLE in titles(daemon), timeout=90,
                            what="recovery after space returned")
            static = data / "public" / "feeds" / "zhengquanshibaowang.atom"
            daemon.wait_for(lambda: NEW_TITLE in static.read_text(encoding="utf-8"), timeout=30,
                            what="static files rewritten")
            assert daemon.stop() == 0
            assert "Traceback" not in daemon.stderr


def test_read_only_data_dir_is_a_clear_error(feed_server: FeedServer, tmp_path: Path,
                                              write_config: Callable[..., Path]) -> None:
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    with tmpfs(tmp_path / "data", "6m") as data:
        feed_server.set("/seed.xml", fixture_route("seed.xml"))
        config = write_config([SourceSpec(feed_server.url("/seed.xml"))])
        assert run_cli("poll", config=config).code == 0
        db = data / "feedhub.sqlite3"
        before = db.read_bytes()
        assert _mount("-o", "remount,ro", str(data)).returncode == 0
        try:
            for command in (["poll"], ["build"]):
                result = run_cli(*command, config=config)
                assert result.code == 1, (command, result.stderr)
                assert "Traceback" not in result.stderr
                assert str(data) in result.stderr and "feedhub:" in result.stderr, result.stderr
            assert db.read_bytes() == before
        finally:
            _mount("-o", "remount,rw", str(data))
