"""All 300 real-world corpus feeds, served from 127.0.0.1 and polled by the real CLI at once."""

from __future__ import annotations

import csv
import functools
import html
import http.server
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from lxml import etree

from tests.conftest import CORPUS, CliResult, SourceSpec, config_text, corpus_required, run_cli
from tests.feedserver import FeedServer, Route

pytestmark = pytest.mark.corpus

#: Manifest rows whose fp_entries > 0 but that feedhub may store nothing for, with the reason.
#: Empty: every feed that feedparser reads entries from gives feedhub entries too.
EXPECTED_EMPTY: dict[str, str] = {}
ATOM_ENTRY = "{http://www.w3.org/2005/Atom}entry"
JAVASCRIPT_URL = re.compile(r"""(?:href|src|url)\s*=\s*["']?\s*javascript:""")


class CorpusHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the corpus with fixed types, never the host's /etc/mime.types."""

    extensions_map = {  # noqa: RUF012 - the base class declares it a plain dict
        ".xml": "application/xml", ".rss": "application/rss+xml",
        ".atom": "application/atom+xml", ".rdf": "application/rdf+xml",
        ".json": "application/feed+json", "": "application/octet-stream",
    }

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


def manifest_rows() -> list[dict[str, str]]:
    """The rows of MANIFEST.tsv."""
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@dataclass(frozen=True)
class CorpusRun:
    """One poll of the whole corpus."""

    rows: list[dict[str, str]]
    url_of: dict[str, str]
    result: CliResult
    status: dict[str, dict[str, Any]]
    public: Path
    root: Path


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusRun]:
    """Serve the corpus on 127.0.0.1, poll every file as a source, read ``status --json``."""
    corpus_required()
    rows = manifest_rows()
    handler = functools.partial(CorpusHandler, directory=str(CORPUS))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/"
        url_of = {row["path"]: base + quote(row["path"]) for row in rows}
        specs = [SourceSpec(url_of[row["path"]], category="zhengquanshibaowang" if i % 2 else "other")
                 for i, row in enumerate(rows)]
        root = tmp_path_factory.mktemp("corpus")
        config = root / "feeds.yaml"
        config.write_text(config_text(specs), encoding="utf-8")
        result = run_cli("poll", config=config, timeout=600)
        status = run_cli("status", "--json", config=config)
        assert status.code == 0, status.stderr
        by_url = {row["source"]: row for row in json.loads(status.stdout)}
        yield CorpusRun(rows=rows, url_of=url_of, result=result, status=by_url,
                        public=root / "data" / "public", root=root)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_manifest_has_300_files() -> None:
    """The corpus is complete."""
    corpus_required()
    rows = manifest_rows()
    assert len(rows) == 300
    assert all((CORPUS / row["path"]).is_file() for row in rows)


def test_poll_succeeds(corpus_run: CorpusRun) -> None:
    """One poll of all 300 sources exits 0 and reports each one."""
    assert corpus_run.result.code == 0, corpus_run.result.stderr[-2000:]
    assert corpus_run.result.stdout.splitlines()[-1].startswith("polled 300 sources:")
    assert len(corpus_run.status) == 300
    assert all(row["status"] != "never_polled" for row in corpus_run.status.values())


def test_every_readable_feed_gives_entries(corpus_run: CorpusRun) -> None:
    """Each file that feedparser reads entries from has stored entries in feedhub."""
    empty = {}
    for row in corpus_run.rows:
        if int(row["fp_entries"]) > 0:
            state = corpus_run.status[corpus_run.url_of[row["path"]]]
            if state["entries"] == 0:
                empty[row["path"]] = f"{state['status']}: {state['error']}"
    assert empty.keys() == EXPECTED_EMPTY.keys(), empty
    with_entries = sum(1 for s in corpus_run.status.values() if s["entries"] > 0)
    readable = sum(1 for row in corpus_run.rows if int(row["fp_entries"]) > 0)
    assert with_entries >= readable - len(EXPECTED_EMPTY)


def check_outputs_parse(public: Path) -> None:
    """Every XML output under ``public`` parses with lxml, every JSON output with json."""
    files = [p for p in public.rglob("*") if p.is_file()]
    names = {p.relative_to(public).as_posix() for p in files}
    assert {"feeds/all.atom", "feeds/other.atom", "feeds/zhengquanshibaowang.atom",
            "feeds/all.json", "feeds/all.rss", "opml.xml"} <= names
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    for path in files:
        if path.suffix in (".atom", ".rss", ".opml", ".xml"):
            etree.fromstring(path.read_bytes(), parser)
        elif path.suffix == ".json":
            feed = json.loads(path.read_bytes())
            assert feed["version"] == "https://jsonfeed.org/version/1.1"


def check_atom_valid(public: Path) -> int:
    """Every Atom output under ``public`` validates against RFC 4287; returns all.atom's entries."""
    schema = etree.RelaxNG(etree.parse(str(CORPUS / "schemas" / "atom.rng")))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    paths = sorted(public.glob("feeds/*.atom"))
    # all, the two categories, and the health feed
    assert [p.name for p in paths] == ["_health.atom", "all.atom", "other.atom",
                                       "zhengquanshibaowang.atom"]
    for path in paths:
        doc = etree.fromstring(path.read_bytes(), parser)
        assert schema.validate(doc), (path.name, str(schema.error_log)[:2000])
    everything = etree.fromstring((public / "feeds/all.atom").read_bytes(), parser)
    return len(everything.findall(ATOM_ENTRY))


def test_outputs_parse(corpus_run: CorpusRun) -> None:
    """Every published XML output parses with lxml, every JSON output with json."""
    check_outputs_parse(corpus_run.public)


def test_atom_outputs_validate(corpus_run: CorpusRun) -> None:
    """Every published Atom output validates against the RFC 4287 RELAX NG schema."""
    assert check_atom_valid(corpus_run.public) == 50


def test_full_round_trip(corpus_run: CorpusRun) -> None:
    """``build`` with a large max_entries republishes every stored entry, still valid."""
    keep = corpus_run.rows
    specs = [SourceSpec(corpus_run.url_of[row["path"]],
                        category="zhengquanshibaowang" if i % 2 else "other")
             for i, row in enumerate(keep)]
    # Same folder, so the same data_dir and store as the poll.
    config = corpus_run.root / "all-entries.yaml"
    config.write_text(config_text(specs, max_entries=10000), encoding="utf-8")
    out = corpus_run.root / "full"
    result = run_cli("build", "--out", str(out), config=config, timeout=600)
    assert result.code == 0, result.stderr[-3000:]
    check_outputs_parse(out)
    total = sum(corpus_run.status[corpus_run.url_of[row["path"]]]["entries"] for row in keep)
    # Cross-source dedupe shows an article once per canonical link (many corpus snippets share
    # links such as http://example.com/), so count the distinct articles in the store.
    urls = [corpus_run.url_of[row["path"]] for row in keep]
    with sqlite3.connect(corpus_run.root / "data" / "feedhub.sqlite3") as db:
        db.execute("CREATE TEMP TABLE kept (url TEXT)")
        db.executemany("INSERT INTO kept VALUES (?)", [(u,) for u in urls])
        [(distinct,)] = db.execute(
            "SELECT COUNT(DISTINCT COALESCE(canonical_link, source_url || ' ' || key)) FROM entries "
            "WHERE source_url IN (SELECT url FROM kept)").fetchall()
    assert distinct <= total
    assert check_atom_valid(out) == distinct


def test_control_characters_do_not_break_rendering(feed_server: FeedServer,
                                                   write_config: Callable[..., Path]) -> None:
    """A source whose text holds control characters is republished without them."""
    corpus_required()
    feed_server.set("/coolloud.xml", Route(
        body=(CORPUS / "feeds/chardet/Big5/coolloud.org.tw.xml").read_bytes(),
        content_type="application/xml"))
    config = write_config([SourceSpec(feed_server.url("/coolloud.xml"))])
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr[-2000:]
    public = config.parent / "data" / "public"
    check_outputs_parse(public)
    assert check_atom_valid(public) == 20


def test_no_script_or_external_entity_in_outputs(corpus_run: CorpusRun) -> None:
    """Sanitized: no script or javascript: from any corpus feed; XXE probes not expanded."""
    for path in corpus_run.public.rglob("*"):
        if not path.is_file():
            continue
        text = html.unescape(html.unescape(path.read_text(encoding="utf-8"))).lower()
        for bad in ("<script", "root:x:0"):
            assert bad not in text, (path.name, bad)
        # As a URL, not as words: a title may well speak of "JavaScript: …".
        assert not JAVASCRIPT_URL.search(text), (path.name, JAVASCRIPT_URL.search(text))
