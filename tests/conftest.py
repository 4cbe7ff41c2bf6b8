"""Shared fixtures: a real source server, config files, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from feedhub.store import Store, open_store
from tests.feedserver import FeedServer, Route

# A real PostgreSQL for the store contract suite and the scale-out tests (tests/pg.py).
pytest_plugins = ["tests.pg"]

FIXTURES = Path(__file__).parent / "data" / "feeds"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "corpus"
SEED = SHARED / "seed" / "000_ca461f1dbd339a9f.txt"

#: Content-Type each fixture is served with (default: application/rss+xml).
FIXTURE_TYPES = {
    "gb18030_header_only.xml": "application/rss+xml; charset=gb18030",
    "undeclared_gbk.xml": "text/xml",
    "atom_utf8.xml": "application/atom+xml",
    "xml_base_atom.xml": "application/atom+xml",
    "rss1_utf8.rdf": "application/rdf+xml",
    "json_feed_11.json": "application/feed+json",
}


def fixture_route(name: str, **kwargs: object) -> Route:
    """A route serving ``tests/data/feeds/<name>`` with its proper Content-Type."""
    body = (FIXTURES / name).read_bytes()
    return Route(body=body, content_type=FIXTURE_TYPES.get(name, "application/rss+xml"),
                 **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A real HTTP server on 127.0.0.1 playing source feeds."""
    with FeedServer() as server:
        yield server


@dataclass(frozen=True)
class SourceSpec:
    """One ``sources:`` item for :func:`write_config`."""

    url: str
    category: str = "zhengquanshibaowang"
    extra: str = ""  # more YAML lines for the item, already indented by 4 spaces


def config_text(sources: Sequence[SourceSpec], *, base_url: str = "http://127.0.0.1:8080/",
                extra_categories: str = "", max_entries: int = 50) -> str:
    """A feeds.yaml with the first user's category and the given sources."""
    lines = [
        "site:",
        "  title: 财经新闻聚合",
        f"  base_url: {base_url}",
        "  timezone: Asia/Shanghai",
        "  data_dir: data",
        "defaults:",
        "  interval: 15m",
        f"  max_entries: {max_entries}",
        "categories:",
        "  zhengquanshibaowang:",
        "    title: 证券时报网新闻",
        "    description: 证券时报网要闻与快讯",
        "  other:",
        "    title: 其他财经",
        extra_categories.rstrip(),
        "sources:",
    ]
    for s in sources:
        lines += [f"  - url: {s.url}", f"    category: {s.category}"]
        if s.extra:
            lines.append(s.extra.rstrip())
    return "\n".join(line for line in lines if line) + "\n"


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a feeds.yaml into a fresh folder; returns its path."""
    def write(sources: Sequence[SourceSpec], **kwargs: object) -> Path:
        path = tmp_path / "feeds.yaml"
        path.write_text(config_text(sources, **kwargs), encoding="utf-8")  # type: ignore[arg-type]
        return path
    return write


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str, config: Path | None = None, timeout: float = 120) -> CliResult:
    """Run the real ``feedhub`` command line in a subprocess."""
    cmd = [sys.executable, "-m", "feedhub"]
    if config is not None:
        cmd += ["--config", str(config)]
    env = {k: v for k, v in os.environ.items() if k != "FEEDHUB_CONFIG"}
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def corpus_required() -> None:
    """Skip when the corpus is absent, except in CI where it must run."""
    if not CORPUS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the corpus is missing at {CORPUS}")
        pytest.skip(f"corpus not found at {CORPUS}")


def seed_required() -> None:
    """Skip when the golden seed is absent, except in CI where it must run."""
    if not SEED.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the seed is missing at {SEED}")
        pytest.skip(f"seed not found at {SEED}")


# --- stores: the contract suite runs over both (SQLite file, PostgreSQL database) ----------


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the store file lives (its folder does not exist yet)."""
    return tmp_path / "data" / "feedhub.sqlite3"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    """The URL of a fresh, empty store of each kind."""
    if request.param == "sqlite":
        return f"sqlite://{db_path}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open store on a fresh database, closed after the test."""
    st = await open_store(store_url)
    try:
        yield st
    finally:
        await st.close()
