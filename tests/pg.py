"""A real PostgreSQL for the tests: one throw-away cluster per session, a database per test.

``FEEDHUB_TEST_DATABASE_URL`` (a server URL whose user may create databases) is
used when given. Otherwise Debian's PostgreSQL binaries (``apt-get install
postgresql``) run ``initdb`` into a temporary folder — as the ``postgres`` user
when the tests run as root, since PostgreSQL refuses to run as root — and
``pg_ctl`` starts it on a free 127.0.0.1 port with its socket in that folder.
It is stopped and deleted at the end of the session.

Without PostgreSQL the PostgreSQL half of the tests is skipped, except in CI
(``CI`` set), where it fails.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.daemonproc import free_port

_counter = itertools.count()


def _bindir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian layout), or one on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable(reason: str) -> None:
    """Skip the PostgreSQL half, or fail it in CI, where it must run."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but PostgreSQL is unavailable: {reason}")
    pytest.skip(f"PostgreSQL unavailable: {reason}")


@dataclass
class PgCluster:
    """A running PostgreSQL server the tests may create databases on."""

    #: URL of the maintenance database (``postgres``), for CREATE/DROP DATABASE.
    admin_url: str
    host: str
    port: int
    user: str
    folder: Path | None = None
    bindir: Path | None = None
    owner: str | None = None

    def url(self, dbname: str) -> str:
        """The URL of database ``dbname`` on this server (credentials as in ``admin_url``)."""
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{dbname}"))

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"feedhub_test_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.folder is None or self.bindir is None:
            return
        _run_as(self.owner, [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.folder / "data"),
                             "-m", "immediate", "-w"], check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def _run_as(user: str | None, cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=check)


def start_cluster(*, fsync: bool = False, settings: dict[str, str] | None = None) -> PgCluster:
    """initdb and start a private server; raises RuntimeError with the reason if it cannot.

    ``fsync`` off makes tests fast (the cluster is thrown away); benchmarks turn it on.
    """
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("no initdb found (apt-get install postgresql)")
    owner: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no postgres user to run it") from None
        owner = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="feedhub-pg-"))
    if owner is not None:
        shutil.chown(folder, owner)
    data = folder / "data"
    user = "feedhub"
    try:
        _run_as(owner, [str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust",
                        "-E", "UTF8", "--no-locale", "--no-sync"])
        port = free_port()
        options = {"listen_addresses": "127.0.0.1", "port": str(port),
                   "unix_socket_directories": str(folder), "max_connections": "300",
                   "fsync": "on" if fsync else "off", "full_page_writes": "on" if fsync else "off",
                   "synchronous_commit": "on" if fsync else "off", **(settings or {})}
        opts = " ".join(f"-c {k}={v}" for k, v in options.items())
        _run_as(owner, [str(bindir / "pg_ctl"), "start", "-D", str(data), "-w", "-t", "60",
                        "-l", str(folder / "server.log"), "-o", opts])
    except subprocess.CalledProcessError as e:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"{e.cmd[0]} failed: {e.stderr or e.stdout}") from e
    return PgCluster(admin_url=f"postgresql://{user}@127.0.0.1:{port}/postgres", host="127.0.0.1",
                     port=port, user=user, folder=folder, bindir=bindir, owner=owner)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's PostgreSQL server (given by FEEDHUB_TEST_DATABASE_URL, or started)."""
    given = os.environ.get("FEEDHUB_TEST_DATABASE_URL")
    if given:
        parts = urlsplit(given)
        yield PgCluster(admin_url=given, host=parts.hostname or "127.0.0.1",
                        port=parts.port or 5432, user=parts.username or "postgres")
        return
    try:
        cluster = start_cluster()
    except RuntimeError as e:
        unavailable(str(e))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; its URL."""
    url = pg_cluster.create_database()
    try:
        yield url
    finally:
        with contextlib.suppress(psycopg.Error):
            pg_cluster.drop_database(url)
