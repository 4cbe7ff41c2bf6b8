"""``feedhub add`` and ``feedhub remove`` end to end: the real CLI, a real source server on
127.0.0.1, a temporary feeds.yaml whose every other byte must survive, and the real daemon
told to reload."""

from __future__ import annotations

import difflib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from feedhub.edit import EditError, NewCategory, NewSource, add, remove
from feedhub.pidfile import pid_path, read_pid
from tests.conftest import SourceSpec, fixture_route, run_cli
from tests.daemonproc import DaemonProcess
from tests.feedserver import FeedServer, Route

REPO = Path(__file__).resolve().parents[1]

#: A hand-written file with everything a round trip must not disturb: comments everywhere,
#: two indentation styles, quoting, a folded scalar, a flow mapping, CRLF-free but with a
#: commented-out item after the last source and a trailing comment.
TRICKY = """\
# 财经新闻聚合 — hand-edited, keep my comments!

site:
  title: "财经新闻聚合"          # quoted on purpose
  base_url: 'http://127.0.0.1:8080/'
  data_dir: data
defaults: {interval: 15m, max_entries: 50}
categories:
    zhengquanshibaowang:
        title: 证券时报网新闻   # the label
        description: >-
          证券时报网要闻
          与快讯
    other: {title: 其他财经}

# ---- sources below ----
sources:
-   url: http://127.0.0.1:9/a.xml   # first
    category: zhengquanshibaowang
    # interval: 10m   (tried, too fast)
# disabled for now:
# - url: http://127.0.0.1:9/b.xml
#   category: other

# the end
"""


def only_inserted(before: str, after: str) -> list[list[str]]:
    """The blocks of lines ``after`` adds to ``before``; fails if anything else changed."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    blocks: list[list[str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        assert tag in ("equal", "insert"), f"{tag} {old[i1:i2]} -> {new[j1:j2]}"
        if tag == "insert":
            blocks.append([line.rstrip("\n") for line in new[j1:j2]])
    return blocks


def one_source(write_config: Callable[..., Path]) -> Path:
    """The test feeds.yaml with both categories and one source that is never polled."""
    return write_config([SourceSpec("http://127.0.0.1:9/existing.xml")])


def bundled_config(tmp_path: Path) -> Path:
    """The repository's feeds.yaml, copied into a fresh folder (data_dir is relative to it)."""
    path = tmp_path / "feeds.yaml"
    path.write_bytes((REPO / "feeds.yaml").read_bytes())
    return path


# --- the editing module ------------------------------------------------------------------------


def test_edit_keeps_every_byte_of_a_tricky_file(tmp_path: Path) -> None:
    """Adding a category and a source inserts exactly their lines, in the file's own style;
    removing the source gives the file back byte for byte."""
    path = tmp_path / "feeds.yaml"
    source = NewSource(url="http://127.0.0.1:9/new.xml", category="jijin", name="基金: 周报",
                       interval="30m")
    edit = add(TRICKY, path, sources=[source], categories=[NewCategory(slug="jijin", title="基金")])
    assert only_inserted(TRICKY, edit.text) == [
        ["    jijin:", "        title: 基金"],
        ["-   url: http://127.0.0.1:9/new.xml", "    category: jijin", "    name: '基金: 周报'",
         "    interval: 30m"],
    ]
    # The new item sits right after the last one, before the comments that follow it.
    lines = edit.text.splitlines()
    assert lines[edit.line - 1] == "-   url: http://127.0.0.1:9/new.xml"
    assert lines[edit.line - 2] == "    # interval: 10m   (tried, too fast)"
    assert lines[edit.line + 3] == "# disabled for now:"
    # Removing the first source keeps the comments that introduce what follows it.
    without_first = remove(edit.text, path, [0])
    assert without_first.lines == ("-   url: http://127.0.0.1:9/a.xml   # first",
                                   "    category: zhengquanshibaowang",
                                   "    # interval: 10m   (tried, too fast)")
    back = remove(edit.text, path, [1])
    assert only_inserted(back.text, edit.text) == [
        ["-   url: http://127.0.0.1:9/new.xml", "    category: jijin", "    name: '基金: 周报'",
         "    interval: 30m"]]


def test_edit_crlf_and_empty_sources(tmp_path: Path) -> None:
    """CRLF files stay CRLF; `sources: []` and a missing sources: get a block list."""
    path = tmp_path / "feeds.yaml"
    base = ("site:\r\n  title: t\r\n  base_url: http://127.0.0.1:8080/\r\n"
            "categories:\r\n  a:\r\n    title: A\r\n")
    new = NewSource(url="http://127.0.0.1:9/x.xml", category="a")
    missing = add(base, path, sources=[new]).text
    assert missing == base + "sources:\r\n  - url: http://127.0.0.1:9/x.xml\r\n    category: a\r\n"
    empty = add(base + "sources: []   # none yet\r\n", path, sources=[new]).text
    assert empty == base + ("sources:   # none yet\r\n  - url: http://127.0.0.1:9/x.xml\r\n"
                            "    category: a\r\n")
    assert remove(empty, path, [0]).text == base + "sources: []  # none yet\r\n"
    with pytest.raises(EditError, match="block list"):
        add(base + "sources: [{url: 'http://127.0.0.1:9/y.xml', category: a}]\r\n", path,
            sources=[new])


# --- feedhub add -------------------------------------------------------------------------------


def test_add_feed_to_the_bundled_file(tmp_path: Path, feed_server: FeedServer) -> None:
    """A feed URL: checked, shown, appended with every other line of feeds.yaml untouched."""
    feed_server.set("/feeds/kx.xml", fixture_route("rss2_utf8.xml"))
    config = bundled_config(tmp_path)
    before = config.read_text(encoding="utf-8")
    url = feed_server.url("/feeds/kx.xml")
    result = run_cli("add", url, "--category", "cailianshe", "--name", "证券时报网 快讯",
                     "--interval", "10m", config=config)
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "Feed: 证券时报网 要闻" in out and "RSS 2.0, 3 entries" in out
    assert "2022-05-06 14:05  沪深两市成交额连续第五日突破万亿元" in out  # latest, in site time
    assert out.index("沪深两市") < out.index("央行开展") < out.index("多家券商")
    assert "no feedhub daemon is running" in out
    after = config.read_text(encoding="utf-8")
    assert only_inserted(before, after) == [[f"  - url: {url}", "    category: cailianshe",
                                             "    name: 证券时报网 快讯", "    interval: 10m"]]
    assert after.endswith(f"    interval: 30m\n  - url: {url}\n    category: cailianshe\n"
                          "    name: 证券时报网 快讯\n    interval: 10m\n")
    assert run_cli("check", config=config).code == 0
    polled = run_cli("poll", "--source", url, config=config)
    assert polled.code == 0 and "3 new" in polled.stdout


def test_add_with_a_new_category(tmp_path: Path, feed_server: FeedServer) -> None:
    """--new-category SLUG --label 标签 creates the category beside the others."""
    feed_server.set("/a.xml", fixture_route("atom_utf8.xml"))
    config = tmp_path / "feeds.yaml"
    config.write_text(TRICKY, encoding="utf-8")
    result = run_cli("add", feed_server.url("/a.xml"), "--new-category", "jijin", "--label",
                     "基金新闻", config=config)
    assert result.code == 0, result.stderr
    assert "category jijin, 基金新闻, new" in result.stdout
    assert only_inserted(TRICKY, config.read_text(encoding="utf-8")) == [
        ["    jijin:", "        title: 基金新闻"],
        [f"-   url: {feed_server.url('/a.xml')}", "    category: jijin"]]
    assert run_cli("check", config=config).code == 0


def test_add_discovers_feeds_on_a_page(tmp_path: Path, feed_server: FeedServer,
                                       write_config: Callable[..., Path]) -> None:
    """A page with one feed link: that feed is added; with two: they are listed, exit 1."""
    feed_server.set("/feeds/a.xml", fixture_route("rss2_utf8.xml"))
    feed_server.set("/feeds/b.atom", fixture_route("atom_utf8.xml"))
    feed_server.set("/one/", Route(content_type="text/html; charset=utf-8", body=(
        '<!doctype html><html><head><base href="/feeds/"><title>一</title>'
        '<link rel="stylesheet" href="/s.css">'
        '<link rel="alternate" type="application/rss+xml" title="要闻 RSS" href="a.xml">'
        "</head><body>…</body></html>").encode()))
    feed_server.set("/two/", Route(content_type="text/html", body=(
        "<html><head>"
        '<link rel="alternate" type="application/rss+xml" href="/feeds/a.xml">'
        '<link rel="Alternate" type="application/atom+xml" title="基金" href="../feeds/b.atom">'
        '<link rel="alternate" hreflang="en" href="/en/">'
        "</head></html>").encode()))
    config = one_source(write_config)
    before = config.read_text(encoding="utf-8")

    two = run_cli("add", feed_server.url("/two/"), "--category", "other", config=config)
    assert two.code == 1
    assert f"1. 证券时报网 要闻 — {feed_server.url('/feeds/a.xml')} (RSS 2.0, 3 entries)" in two.stdout
    assert f"2. 基金周报 — {feed_server.url('/feeds/b.atom')} (Atom 1.0, 3 entries)" in two.stdout
    assert f"feedhub add {feed_server.url('/feeds/a.xml')}" in two.stderr
    assert config.read_text(encoding="utf-8") == before

    one = run_cli("add", feed_server.url("/one/"), "--category", "other", "--yes", config=config)
    assert one.code == 0, one.stderr
    assert only_inserted(before, config.read_text(encoding="utf-8")) == [
        [f"  - url: {feed_server.url('/feeds/a.xml')}", "    category: other"]]
    # The same feed again, through its page: a duplicate.
    again = run_cli("add", feed_server.url("/one/"), "--category", "other", config=config)
    assert again.code == 2 and "already in" in again.stderr


def test_add_probes_common_paths(feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """A page that announces no feed: the usual paths are tried; none found is exit 1."""
    page = Route(content_type="text/html", body=b"<!DOCTYPE html><html><head></head></html>")
    feed_server.set("/blog/", page)
    feed_server.set("/blog/index.xml", fixture_route("rss1_utf8.rdf"))
    feed_server.set("/bare/x/", page)
    config = one_source(write_config)
    found = run_cli("add", feed_server.url("/blog/"), "--category", "other", config=config)
    assert found.code == 0, found.stderr
    assert f"url: {feed_server.url('/blog/index.xml')}" in config.read_text(encoding="utf-8")
    assert {r.path for r in feed_server.requests()} >= {"/feed", "/rss", "/atom.xml", "/index.xml",
                                                        "/blog/feed", "/blog/index.xml"}
    none = run_cli("add", feed_server.url("/bare/x/"), "--category", "other", config=config)
    assert none.code == 1
    assert "no feed was found" in none.stderr and "/bare/x/rss" in none.stderr


def test_add_refusals_leave_the_file_alone(tmp_path: Path, feed_server: FeedServer,
                                           write_config: Callable[..., Path]) -> None:
    """Duplicates, unknown categories, bad options (exit 2) and broken feeds (exit 1)."""
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml"))
    feed_server.set("/notfeed.txt", Route(body=b"just text", content_type="text/plain"))
    url = feed_server.url("/a.xml")
    config = write_config([SourceSpec(url)])
    before = config.read_bytes()
    cases = [
        (["add", url, "--category", "other"], 2, "already in"),
        (["add", feed_server.url("/b.xml"), "--category", "nope"], 2,
         "unknown category 'nope'; use one of: zhengquanshibaowang (证券时报网新闻), other (其他财经)"),
        (["add", feed_server.url("/b.xml")], 2, "--category is required"),
        (["add", feed_server.url("/b.xml"), "--new-category", "other", "--label", "X"], 2,
         "already exists"),
        (["add", feed_server.url("/b.xml"), "--new-category", "fresh"], 2, "needs --label"),
        (["add", feed_server.url("/b.xml"), "--label", "X"], 2, "--new-category"),
        (["add", feed_server.url("/missing.xml"), "--category", "other"], 1, "HTTP 404"),
        (["add", feed_server.url("/notfeed.txt"), "--category", "other"], 1, "cannot add"),
        (["add", f"http://127.0.0.1:{_closed_port()}/x.xml", "--category", "other"], 1,
         "cannot connect"),
    ]
    for args, code, message in cases:
        result = run_cli(*args, config=config)
        assert result.code == code, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert config.read_bytes() == before, args
    # An invalid value is caught by the configuration's own validation.
    feed_server.set("/c.xml", fixture_route("atom_utf8.xml"))
    bad = run_cli("add", feed_server.url("/c.xml"), "--category", "other", "--interval", "soon",
                  config=config)
    assert bad.code == 2 and "invalid duration 'soon'" in bad.stderr and "nothing was" in bad.stderr
    assert config.read_bytes() == before


def _closed_port() -> int:
    from tests.daemonproc import free_port

    return free_port()


# --- feedhub remove ----------------------------------------------------------------------------


def test_remove_by_url_or_name_is_the_reverse_of_add(tmp_path: Path,
                                                     feed_server: FeedServer) -> None:
    """add then remove gives the file back byte for byte; unknown sources are refused."""
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml"))
    config = bundled_config(tmp_path)
    original = config.read_bytes()
    assert run_cli("add", feed_server.url("/a.xml"), "--category", "cailianshe", "--name", "临时",
                   config=config).code == 0
    assert config.read_bytes() != original
    by_name = run_cli("remove", "临时", config=config)
    assert by_name.code == 0, by_name.stderr
    assert f"-   - url: {feed_server.url('/a.xml')}" in by_name.stdout
    assert config.read_bytes() == original

    # A source in the middle, by URL as written (rsshub: shorthand) or expanded.
    removed = run_cli("remove", "rsshub:/cls/telegraph", config=config)
    assert removed.code == 0, removed.stderr
    text = config.read_text(encoding="utf-8")
    assert "rsshub:/cls/telegraph" not in text and "name: 财联社 电报" not in text
    assert only_inserted(text, original.decode()) == [[
        "  - url: rsshub:/cls/telegraph", "    category: cailianshe", "    name: 财联社 电报",
        "    interval: 10m"]]
    assert run_cli("remove", "https://rsshub.app/yicai/brief", config=config).code == 0
    assert "rsshub:/yicai/brief" not in config.read_text(encoding="utf-8")

    unknown = run_cli("remove", "没有这个源", config=config)
    assert unknown.code == 2 and "no source with URL or name" in unknown.stderr


# --- the running daemon ---------------------------------------------------------------------------


def test_add_and_remove_reload_a_running_daemon(feed_server: FeedServer,
                                                write_config: Callable[..., Path]) -> None:
    """The daemon writes its pid file; add sends it SIGHUP and it polls the new source."""
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml"))
    feed_server.set("/b.xml", fixture_route("atom_utf8.xml"))
    config = write_config([SourceSpec(feed_server.url("/a.xml"))])
    pid_file = pid_path(config.parent / "data")
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: read_pid(pid_file) == daemon.proc.pid, what="the pid file")
        result = run_cli("add", feed_server.url("/b.xml"), "--category", "other", config=config)
        assert result.code == 0, result.stderr
        assert f"asked the running daemon (pid {daemon.proc.pid}) to reload" in result.stdout
        daemon.wait_ready(2)
        daemon.wait_for(lambda: "1 added" in daemon.stderr, what="the reload")
        daemon.wait_for(lambda: feed_server.requests("/b.xml"), what="a poll of the new source")
        removed = run_cli("remove", feed_server.url("/a.xml"), config=config)
        assert removed.code == 0 and "asked the running daemon" in removed.stdout
        daemon.wait_ready(3)
        daemon.wait_for(lambda: "1 removed" in daemon.stderr, what="the second reload")
        assert daemon.stop() == 0
    assert not pid_file.exists()


def test_stale_pid_file_is_never_signalled(feed_server: FeedServer,
                                           write_config: Callable[..., Path]) -> None:
    """A pid file naming another program (or nobody) is ignored: that program lives on."""
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml"))
    config = one_source(write_config)
    pid_file = pid_path(config.parent / "data")
    pid_file.parent.mkdir(parents=True)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        pid_file.write_text(f"{bystander.pid}\n")
        result = run_cli("add", feed_server.url("/a.xml"), "--category", "other", config=config)
        assert result.code == 0, result.stderr
        assert "no feedhub daemon is running" in result.stdout
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.send_signal(signal.SIGTERM)
        bystander.wait(timeout=5)


# --- on a terminal -----------------------------------------------------------------------------------


def converse(args: list[str], config: Path, answers: dict[str, str], timeout: float = 60) -> str:
    """Run the real CLI on a pseudo-terminal, typing an answer after each prompt it shows."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "FEEDHUB_CONFIG"}
    env.update(COLUMNS="120", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "feedhub", "--config", str(config), *args],
                            stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    seen, pending = "", dict(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            seen += data.decode(errors="replace")
            for prompt in list(pending):
                if prompt in seen:
                    os.write(leader, pending.pop(prompt).encode())
        elif proc.poll() is not None:
            break
    os.close(leader)
    code = proc.wait(timeout=10)
    assert code == 0, seen
    assert not pending, f"never asked: {list(pending)}\n{seen}"
    return seen


def test_add_on_a_terminal_asks(feed_server: FeedServer,
                                write_config: Callable[..., Path]) -> None:
    """On a terminal: the category, the feed among several, and a confirmation are asked."""
    feed_server.set("/feeds/a.xml", fixture_route("rss2_utf8.xml"))
    feed_server.set("/feeds/b.atom", fixture_route("atom_utf8.xml"))
    feed_server.set("/page", Route(content_type="text/html", body=(
        b'<html><head><link rel="alternate" type="application/rss+xml" href="/feeds/a.xml">'
        b'<link rel="alternate" type="application/atom+xml" href="/feeds/b.atom"></head></html>'
    )))
    config = one_source(write_config)
    before = config.read_text(encoding="utf-8")
    out = converse(["add", feed_server.url("/page")], config,
                   {"Which feed": "2\n", "Add it to category": "2\n", "Write this change?": "y\n"})
    assert "1. zhengquanshibaowang — 证券时报网新闻" in out and "2. other — 其他财经" in out
    assert "Added" in out
    assert only_inserted(before, config.read_text(encoding="utf-8")) == [
        [f"  - url: {feed_server.url('/feeds/b.atom')}", "    category: other"]]
    declined = converse(["remove", feed_server.url("/feeds/b.atom")], config,
                        {"Write this change?": "n\n"})
    assert "Nothing written." in declined
    assert f"url: {feed_server.url('/feeds/b.atom')}" in config.read_text(encoding="utf-8")
