"""``feedhub demo``: starts with no feeds.yaml and no network, serves the seed article and the
other sample sources through the real pipeline and server, and stops cleanly on a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

from feedhub.demo import demo_data
from feedhub.opml import read_opml
from tests.daemonproc import free_port

FIXTURES = Path(__file__).parent / "data" / "feeds"
SEED_TITLE = "“科创中国”大湾区联合体落户前海"


class Demo:
    """``feedhub demo`` in a subprocess, its output collected as it comes."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "FEEDHUB_CONFIG"}
        env["TMPDIR"] = str(tmp_path)  # the demo's temporary folder goes here
        # Run from an empty folder: the demo needs no feeds.yaml.
        self.proc = subprocess.Popen([sys.executable, "-m", "feedhub", "demo", *args],
                                     cwd=tmp_path, env={**env, "PYTHONPATH": str(Path.cwd())},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while "Press Ctrl-C to stop." not in self.lines:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the demo did not start:\n{self.output}")
            time.sleep(0.05)

    def url(self, label: str) -> str:
        """The URL printed on the line that ends with ``label``."""
        line = next(line for line in self.lines if line.rstrip().endswith(label))
        return line.split()[0]

    def stop(self, sig: int, timeout: float = 20) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port = free_port()
    running = Demo(tmp_path, "--listen", f"127.0.0.1:{port}")
    try:
        running.wait_ready()
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(timeout=10)


def test_demo_serves_the_seed_and_stops_cleanly_on_sigint(demo: Demo, tmp_path: Path) -> None:
    """Every sample source is polled; the seed article is in its category's feeds and page."""
    home = demo.url("home page")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", home)
    assert "5 sample sources" in demo.output and "polled them: 21 entries stored" in demo.output
    assert "failed" not in demo.output
    folder = Path(re.search(r"Data in (\S+) \(deleted on exit\)", demo.output).group(1))  # type: ignore[union-attr]
    assert folder.parent == tmp_path.resolve() and (folder / "feeds.yaml").is_file()

    atom = httpx.get(demo.url("证券时报网新闻 (also .rss, .json)"), timeout=10)
    assert atom.status_code == 200 and atom.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(atom.content)
    seed = next(e for e in feed.entries if e.title == SEED_TITLE)
    assert seed.link == "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202205062370666142"
    assert '<p class="em_media">（文章来源：证券时报网）</p>' in seed.content[0].value
    assert [t.term for t in seed.tags] == ["证券时报网新闻"]
    assert len(feed.entries) == 6
    page = httpx.get(demo.url("证券时报网新闻"), timeout=10)
    assert page.status_code == 200 and SEED_TITLE in page.text

    everything = feedparser.parse(httpx.get(demo.url("everything"), timeout=10).content)
    titles = {e.title for e in everything.entries}
    assert len(everything.entries) == 21
    # The GBK-declared-as-gb2312 sample comes out right.
    assert {"《朱镕基讲话实录》再版带动出版板块走强", "基金经理张喆：二季度关注消费复苏",
            "昇腾生态伙伴大会召开 算力概念股活跃"} <= titles
    opml = httpx.get(demo.url("all feeds, to import in one go"), timeout=10)
    assert opml.status_code == 200
    listed = {f.xml_url for f in read_opml(opml.content).feeds}  # feedhub reads its own OPML
    assert f"{home}feeds/diyicaijing.atom" in listed

    # The printed command works on the running demo's data.
    status = subprocess.run([sys.executable, "-m", "feedhub", "--config", str(folder / "feeds.yaml"),
                             "status", "--json"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count('"status": "ok"') == 5

    assert demo.stop(signal.SIGINT) == 0
    assert "feedhub demo stopped" in demo.output
    assert "Traceback" not in demo.output
    assert not folder.exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(home, timeout=2)


def test_demo_stops_on_sigterm(demo: Demo) -> None:
    folder = Path(re.search(r"Data in (\S+) \(deleted", demo.output).group(1))  # type: ignore[union-attr]
    assert demo.stop(signal.SIGTERM) == 0
    assert not folder.exists()


def test_demo_falls_back_to_a_free_port(tmp_path: Path) -> None:
    """Without --listen, 127.0.0.1:8080 is tried; when it is taken, any free port is used."""
    import socket

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            taken.bind(("127.0.0.1", 8080))
            taken.listen()
        except OSError:
            pass  # already taken by something else: just as good
        running = Demo(tmp_path)
        try:
            running.wait_ready()
            home = running.url("home page")
            assert home != "http://127.0.0.1:8080/"
            assert httpx.get(home, timeout=10).status_code == 200
            assert running.stop(signal.SIGINT) == 0
        finally:
            if running.proc.poll() is None:
                running.proc.kill()


def test_demo_ships_the_seed_fixture_verbatim() -> None:
    """The demo's seed source is byte for byte the seed fixture the golden tests use."""
    shipped = demo_data().joinpath("sources", "stcn_yw.xml").read_bytes()
    assert shipped == (FIXTURES / "seed.xml").read_bytes()
