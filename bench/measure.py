"""Run a command as a child process and measure it.

Wall time, CPU time (user + sys of the child and all its descendants: this
process is a child subreaper, so a pool worker orphaned by its own parent — a
multiprocessing forkserver — is reaped, and counted, here), the largest
single-process RSS (``ru_maxrss``) and the peak memory of the whole process
tree (sum of PSS, sampled every 20 ms from ``/proc``: shared pages of forked
workers are counted once, split between them).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    rss_mb: float
    pss_mb: float


@dataclass(frozen=True)
class Stat:
    """Median and range of one figure over the runs."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Row:
    name: str
    wall: Stat
    cpu: Stat
    rss_mb: Stat
    pss_mb: Stat
    runs: int
    note: str = ""

    @classmethod
    def of(cls, name: str, samples: Sequence[Sample], note: str = "") -> Row:
        return cls(name, Stat.of([s.wall for s in samples]), Stat.of([s.cpu for s in samples]),
                   Stat.of([s.rss_mb for s in samples]), Stat.of([s.pss_mb for s in samples]),
                   len(samples), note)


class ChildFailed(RuntimeError):
    pass


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU so far of ``pid`` and its descendants (all their threads)."""
    ticks = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    # Not on Linux: descendants not reaped by their own parent go uncounted.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap(pids: set[int], deadline: float) -> None:
    """Wait for descendants that were re-parented to this process (bounded)."""
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by its own parent, or never ours
                pending.discard(pid)
                continue
            if done:
                pending.discard(pid)
        if pending:
            time.sleep(0.01)


def run(cmd: Sequence[str | Path], *, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, timeout: float = 600.0, log: Path | None = None) -> Sample:
    """Run ``cmd`` to completion; raise :class:`ChildFailed` on a non-zero exit."""
    _become_subreaper()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen([str(c) for c in cmd], env=dict(env) if env else None, cwd=cwd,
                            stdout=out, stderr=out if log else subprocess.PIPE,
                            start_new_session=True)
    peak = [0]
    seen: set[int] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            tree = _tree(proc.pid)
            seen.update(tree[1:])
            peak[0] = max(peak[0], sum(_pss_kb(p) for p in tree))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
        done.set()
        sampler.join()
    wall = time.monotonic() - started
    _reap(seen, time.monotonic() + 10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if log:
        out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        where = f" (see {log})" if log else ""
        raise ChildFailed(f"{' '.join(map(str, cmd))} exited {proc.returncode}{where}\n{err[-2000:]}")
    return Sample(wall=wall, cpu=max(cpu, usage.ru_utime + usage.ru_stime),
                  rss_mb=usage.ru_maxrss / 1024,
                  pss_mb=peak[0] / 1024)


def wait_answering(proc: subprocess.Popen[bytes], url: str, what: str,
                   timeout: float = 120) -> None:
    """Wait until ``url`` answers (any HTTP status), served by ``proc``.

    Raises SystemExit when ``proc`` exits first or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} at startup")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:  # an answer all the same
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not answer within {timeout:.0f} s") from None
            time.sleep(0.1)
