"""feedhub's benchmark: every workload, the floors and lemon24/reader, in one run.

    .venv/bin/python bench/run.py [--sources 500] [--entries 50] [--runs 3] [--quick]

See bench/README.md. Everything listens on 127.0.0.1 only; generated data goes
under --work (default /tmp/feedhub-bench), never into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402
import measure  # noqa: E402
from measure import Row, Sample, Stat  # noqa: E402
from nginx import Nginx, free_port  # noqa: E402

PY = sys.executable
READER_PINS = ["reader==3.26", "sgmllib3k==1.0.0"]
SERVE_PATH = "feeds/cat00.atom"
#: Connections the httpx floors and feedhub fetch with. Every source of the corpus is on
#: one host, so feedhub's per-host limit (2 by default: politeness towards real sites)
#: is raised to the floor's concurrency, for fetching at the same concurrency; one row
#: shows a warm poll with the default limit.
CONCURRENCY = 10
FETCH = f"fetch:\n  per_host: {CONCURRENCY}\n  concurrency: {CONCURRENCY}\n"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- setup -------------------------------------------------------------------------


def ensure_tools() -> None:
    missing = [t for t in ("nginx", "wrk") if not (shutil.which(t) or Path(f"/usr/sbin/{t}").exists())]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install -y {' '.join(missing)}")
    log(f"installing {', '.join(missing)} (Debian packages)")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def ensure_reader(work: Path) -> Path:
    """A venv with lemon24/reader, apart from feedhub's own dependencies."""
    venv = work / "reader-venv"
    python = venv / "bin/python"
    stamp = venv / "pins.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == " ".join(READER_PINS):
        return python
    log(f"creating {venv} with {' '.join(READER_PINS)}")
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *READER_PINS], check=True,
                   stderr=subprocess.DEVNULL)
    stamp.write_text(" ".join(READER_PINS))
    return python


def clone_dir(src: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def store_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.sqlite3*"))


# --- runs ----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work
        self.runs: int = args.runs
        self.rows: dict[str, Row] = {}
        self.extra: dict[str, object] = {}
        self.logfile = self.work / "children.log"

    def repeat(self, name: str, cmd: Callable[[int], Sequence[str | Path]], *,
               before: Callable[[int], None] | None = None,
               after: Callable[[int], None] | None = None,
               runs: int | None = None, env: dict[str, str] | None = None,
               note: str = "") -> Row:
        samples: list[Sample] = []
        for r in range(runs or self.runs):
            if before:
                before(r)
            try:
                samples.append(measure.run(cmd(r), env=env, log=self.logfile,
                                           timeout=self.args.timeout))
            finally:
                if after:
                    after(r)
        row = Row.of(name, samples, note)
        self.rows[name] = row
        log(f"{name}: {row.wall.median:.2f} s wall ({row.wall.low:.2f}–{row.wall.high:.2f}), "
            f"{row.cpu.median:.2f} s CPU, {row.pss_mb.median:.0f} MB")
        return row

    def feedhub(self, config: Path, *command: str) -> list[str | Path]:
        return [PY, "-m", "feedhub", "--config", config, *command]


def wrk(url: str, seconds: int, headers: Sequence[str] = ()) -> tuple[float, int]:
    """Requests per second and requests in all."""
    cmd = ["wrk", "-t1", "-c50", f"-d{seconds}s", "--timeout", "5s"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True,
                         timeout=seconds + 30).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"wrk {url}: {bad.group(1)} error responses\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rate or not total:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    return float(rate.group(1)), int(total.group(1))


def head(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}


def serving(b: Bench, label: str, url: str, seconds: int, server_pid: int) -> None:
    """wrk for 200s, then for 304s; req/s and the server's CPU per request.

    CPU per request (of the server's process tree) holds up on a shared machine, where
    req/s also depends on what else runs.
    """
    status, headers = head(url)
    assert status == 200, f"{url}: {status}"
    etag = headers["etag"]
    status, _ = head(url, {"If-None-Match": etag})
    assert status == 304, f"{url} with If-None-Match: {status}"
    for code, extra in (("200", []), ("304", [f"If-None-Match: {etag}"])):
        rates, cpu_us = [], []
        for _ in range(b.runs):
            before = measure.tree_cpu_seconds(server_pid)
            rate, total = wrk(url, seconds, extra)
            rates.append(rate)
            cpu_us.append((measure.tree_cpu_seconds(server_pid) - before) / total * 1e6)
        b.extra[f"{label} {code} req/s"] = asdict(Stat.of(rates))
        b.extra[f"{label} {code} server CPU us/req"] = asdict(Stat.of(cpu_us))
        log(f"{label}: {Stat.of(rates).median:,.0f} req/s ({code}), "
            f"{Stat.of(cpu_us).median:.0f} µs server CPU per request")


def run_all(args: argparse.Namespace) -> Bench:
    ensure_tools()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(args)
    b.logfile.write_text("")
    n, m = args.sources, args.entries
    log(f"corpus: {n} sources × {m} entries")
    root = corpus.ensure(work / f"corpus-{n}x{m}", n, m)
    corpus.switch(root, "base")
    feeds_dir = root / "www/base/feeds"
    b.extra["corpus MB"] = sum(p.stat().st_size for p in feeds_dir.iterdir()) / 1e6
    static = work / "static"
    shutil.rmtree(static, ignore_errors=True)
    (static / "feeds").mkdir(parents=True)
    reader_py = None if args.skip_reader else ensure_reader(work)
    runs_dir = work / "runs"
    shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir()

    with Nginx(root / "www/current", static) as nginx:
        urls = {}
        for label, port in (("validators", nginx.validators), ("plain", nginx.plain)):
            urls[label] = runs_dir / f"urls-{label}.txt"
            urls[label].write_text("\n".join(nginx.url(port, corpus.feed_name(i)) for i in range(n)))

        # Floors.
        b.repeat("feedparser, 1 process", lambda r: [PY, BENCH / "floors.py", "feedparser",
                                                     feeds_dir, "--procs", "1"])
        b.repeat("feedparser, 2 processes", lambda r: [PY, BENCH / "floors.py", "feedparser",
                                                       feeds_dir, "--procs", "2"])
        validators = runs_dir / "validators.json"
        subprocess.run([PY, BENCH / "floors.py", "httpx-save", urls["validators"], validators],
                       check=True)
        c = ["--concurrency", str(CONCURRENCY)]
        b.repeat("httpx 200s (c=10)", lambda r: [PY, BENCH / "floors.py", "httpx",
                                                 urls["validators"], *c])
        b.repeat("httpx 304s (c=10)", lambda r: [PY, BENCH / "floors.py", "httpx",
                                                 urls["validators"], "--validators", validators, *c])
        b.repeat("httpx 200s, no validators (c=10)",
                 lambda r: [PY, BENCH / "floors.py", "httpx", urls["plain"], *c])

        # feedhub.
        cfg_a = corpus.feeds_yaml(runs_dir / "a", nginx.validators, n, m, extra=FETCH)

        def fresh_a(r: int) -> None:
            shutil.rmtree(runs_dir / "a/data", ignore_errors=True)

        b.repeat("feedhub cold poll", lambda r: b.feedhub(cfg_a, "poll"), before=fresh_a)
        data_a = runs_dir / "a/data"
        b.extra["feedhub store bytes/entry"] = store_bytes(data_a) / (n * m)
        snapshot = clone_dir(data_a, runs_dir / "a-snapshot")
        b.repeat("feedhub warm poll (304s)", lambda r: b.feedhub(cfg_a, "poll"))
        cfg_d = corpus.feeds_yaml(runs_dir / "d", nginx.validators, n, m)
        clone_dir(snapshot, runs_dir / "d/data")
        b.repeat("feedhub warm poll (304s), default per_host 2",
                 lambda r: b.feedhub(cfg_d, "poll"))
        shutil.rmtree(runs_dir / "d/data", ignore_errors=True)

        cfg_c = corpus.feeds_yaml(runs_dir / "c", nginx.validators, n, m, extra=FETCH)

        def changed_on(r: int) -> None:
            clone_dir(snapshot, runs_dir / "c/data")
            corpus.switch(root, "changed")

        def changed_off(r: int) -> None:
            corpus.switch(root, "base")

        b.repeat("feedhub 10 % changed", lambda r: b.feedhub(cfg_c, "poll"), before=changed_on,
                 after=changed_off)
        shutil.rmtree(runs_dir / "c/data", ignore_errors=True)

        cfg_b = corpus.feeds_yaml(runs_dir / "b", nginx.plain, n, m, extra=FETCH)
        log("preparing the store for the no-validators workload (untimed cold poll)")
        measure.run(b.feedhub(cfg_b, "poll"), log=b.logfile, timeout=args.timeout)
        b.repeat("feedhub unchanged bodies, no validators", lambda r: b.feedhub(cfg_b, "poll"))
        shutil.rmtree(runs_dir / "b/data", ignore_errors=True)

        b.repeat("feedhub build (full)", lambda r: b.feedhub(cfg_a, "build"))
        out = subprocess.run([PY, BENCH / "render_job.py", cfg_a, "cat03"], check=True,
                             capture_output=True, text=True).stdout
        b.extra["render"] = json.loads(out)
        log(f"render: {b.extra['render']}")

        # Serving.
        port = free_port()
        server = subprocess.Popen([*map(str, b.feedhub(cfg_a, "serve", "--listen",
                                                       f"127.0.0.1:{port}"))],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}/{SERVE_PATH}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if head(url)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("feedhub serve did not start")
                time.sleep(0.1)
            serving(b, "feedhub serve", url, args.wrk_seconds, server.pid)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.copy(data_a / "public" / SERVE_PATH, static / SERVE_PATH)
        serving(b, "nginx static", nginx.url(nginx.static, SERVE_PATH), args.wrk_seconds,
                nginx.pid)

        # lemon24/reader.
        if reader_py is not None:
            rdir = runs_dir / "reader"
            rdir.mkdir()
            db = rdir / "reader.sqlite"

            def fresh_db(r: int) -> None:
                for p in rdir.glob("reader.sqlite*"):
                    p.unlink()

            job = BENCH / "reader_job.py"
            b.repeat("reader cold", lambda r: [reader_py, job, db, urls["validators"]],
                     before=fresh_db)
            b.extra["reader store bytes/entry"] = sum(
                p.stat().st_size for p in rdir.glob("reader.sqlite*")) / (n * m)
            rsnap = rdir / "snapshot"
            rsnap.mkdir()
            for p in rdir.glob("reader.sqlite*"):
                shutil.copy(p, rsnap / p.name)
            b.repeat("reader unchanged (304s)", lambda r: [reader_py, job, db, urls["validators"]])

            def reader_changed_on(r: int) -> None:
                fresh_db(r)
                for p in rsnap.iterdir():
                    shutil.copy(p, rdir / p.name)
                corpus.switch(root, "changed")

            b.repeat("reader 10 % changed", lambda r: [reader_py, job, db, urls["validators"]],
                     before=reader_changed_on, after=changed_off)
            shutil.rmtree(rdir, ignore_errors=True)
    shutil.rmtree(runs_dir, ignore_errors=True)
    return b


# --- report ---------------------------------------------------------------------------


def _fmt(s: Stat, unit: str = "", digits: int = 2) -> str:
    return f"{s.median:.{digits}f}{unit} ({s.low:.{digits}f}–{s.high:.{digits}f})"


def report(b: Bench) -> str:
    a = b.args
    lines = [f"{a.sources} sources × {a.entries} entries ({b.extra['corpus MB']:.0f} MB of XML), "
             f"{b.runs} runs each, medians (min–max); {os.cpu_count()} cores.", "",
             "| workload | wall s | CPU s | peak mem MB (PSS, tree) | max RSS MB (1 process) |",
             "| --- | --- | --- | --- | --- |"]
    for row in b.rows.values():
        lines.append(f"| {row.name} | {_fmt(row.wall)} | {_fmt(row.cpu)} | "
                     f"{_fmt(row.pss_mb, digits=0)} | {_fmt(row.rss_mb, digits=0)} |")
    r = b.rows

    def wall(name: str) -> float | None:
        return r[name].wall.median if name in r else None

    def ratio(x: float | None, y: float | None) -> str:
        return f"{x / y:.2f}" if x is not None and y else "–"

    def num(x: float | None, unit: str = " s") -> str:
        return f"{x:.2f}{unit}" if x is not None else "–"

    lines += ["", "| workload | feedhub | floor | feedhub/floor | reader | feedhub/reader | target |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    comparisons = [
        ("cold poll", "feedhub cold poll", "feedparser, 2 processes", "reader cold",
         "≤ 1.25 × floor, reader/2"),
        ("warm poll (304s)", "feedhub warm poll (304s)", "httpx 304s (c=10)",
         "reader unchanged (304s)", "≤ 1.2 × floor, ≤ reader"),
        ("unchanged bodies, no validators", "feedhub unchanged bodies, no validators",
         "httpx 200s, no validators (c=10)", None, "≤ 1.5 × floor"),
        ("10 % changed", "feedhub 10 % changed", None, "reader 10 % changed", "≤ reader/2"),
    ]
    for label, mine, floor, other, target in comparisons:
        x = wall(mine)
        f = wall(floor) if floor else None
        o = wall(other) if other else None
        lines.append(f"| {label} | {num(x)} | {num(f)} | {ratio(x, f)} | {num(o)} | {ratio(x, o)} "
                     f"| {target} |")
    mem = r["feedhub cold poll"].pss_mb.median if "feedhub cold poll" in r else None
    rmem = r["reader cold"].pss_mb.median if "reader cold" in r else None
    lines.append(f"| peak mem, cold poll (PSS) | {num(mem, ' MB')} | – | – | {num(rmem, ' MB')} "
                 f"| {ratio(mem, rmem)} | ≤ 150 MB |")
    fb = b.extra.get("feedhub store bytes/entry")
    rb = b.extra.get("reader store bytes/entry")
    lines.append(f"| store bytes per entry | {fb:,.0f} | – | – | "
                 f"{f'{rb:,.0f}' if isinstance(rb, float) else '–'} | "
                 f"{ratio(fb, rb) if isinstance(fb, float) and isinstance(rb, float) else '–'} "
                 f"| report |" if isinstance(fb, float) else "| store bytes per entry | – |")
    rend = b.extra.get("render")
    if isinstance(rend, dict):
        lines.append(f"| render one 50-entry Atom feed | {rend['feedhub_atom'] * 1000:.1f} ms | "
                     f"{rend['feedgen_atom'] * 1000:.1f} ms (feedgen) | "
                     f"{rend['feedhub_atom'] / rend['feedgen_atom']:.2f} | – | – | ≤ 2 × floor |")
        lines.append(f"| republish one category ({rend['documents']} documents changed) | "
                     f"{rend['republish_one'] * 1000:.0f} ms | – | – | – | – | only what changed |")
    for code, target in (("200", 5000), ("304", 10000)):
        mine_s = b.extra.get(f"feedhub serve {code} req/s")
        ng = b.extra.get(f"nginx static {code} req/s")
        if isinstance(mine_s, dict) and isinstance(ng, dict):
            lines.append(f"| serving {code}s (wrk, 50 conns, {a.wrk_seconds} s) | "
                         f"{mine_s['median']:,.0f} req/s ({mine_s['low']:,.0f}–{mine_s['high']:,.0f}) "
                         f"| {ng['median']:,.0f} req/s (nginx) | "
                         f"{mine_s['median'] / ng['median']:.2f} | – | – | ≥ {target:,} req/s |")
        mine_c = b.extra.get(f"feedhub serve {code} server CPU us/req")
        ng_c = b.extra.get(f"nginx static {code} server CPU us/req")
        if isinstance(mine_c, dict) and isinstance(ng_c, dict):
            lines.append(f"| server CPU per {code} | {mine_c['median']:.0f} µs | "
                         f"{ng_c['median']:.0f} µs (nginx) | {mine_c['median'] / ng_c['median']:.2f} "
                         f"| – | – | report |")
    return "\n".join(lines) + "\n"


def update_readme(table: str) -> None:
    readme = BENCH / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start in text and end in text:
        head_, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(f"{head_}{start}\n{table}{end}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--quick", action="store_true",
                        help="100 sources × 20 entries, 1 run, 3 s of wrk: a smoke test")
    parser.add_argument("--skip-reader", action="store_true", help="no lemon24/reader baseline")
    parser.add_argument("--work", type=Path, default=Path("/tmp/feedhub-bench"),
                        help="where corpora, stores and venvs go (default /tmp/feedhub-bench)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per child, at most")
    parser.add_argument("--update-readme", action="store_true",
                        help="write the table into bench/README.md")
    args = parser.parse_args()
    if args.quick:
        args.sources, args.entries, args.runs, args.wrk_seconds = 100, 20, 1, 3
    started = time.monotonic()
    b = run_all(args)
    table = report(b)
    print(table)
    (args.work / "results.md").write_text(table, encoding="utf-8")
    (args.work / "results.json").write_text(json.dumps(
        {"rows": {k: asdict(v) for k, v in b.rows.items()}, "extra": b.extra}, indent=1,
        ensure_ascii=False), encoding="utf-8")
    if args.update_readme:
        update_readme(table)
    log(f"done in {time.monotonic() - started:.0f} s; {args.work / 'results.md'}")


if __name__ == "__main__":
    main()
