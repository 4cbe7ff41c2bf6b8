"""The daemon's pid file, ``<data_dir>/feedhub.pid``, and asking that daemon to reload.

``feedhub run`` writes the file when it starts and removes it when it stops;
commands that change ``feeds.yaml`` (``add``, ``remove``, ``import-opml``) read
it and send ``SIGHUP``. A stale file (the process is gone, or its pid now
belongs to another program) is ignored, never signalled.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

PID_FILE = "feedhub.pid"


def pid_path(data_dir: Path) -> Path:
    """Where the daemon using ``data_dir`` keeps its pid."""
    return data_dir / PID_FILE


def write_pid_file(path: Path, pid: int | None = None) -> None:
    """Record ``pid`` (default: this process), atomically.

    Raises:
        OSError: the data directory is not writable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{pid or os.getpid()}\n", encoding="ascii")
    os.replace(tmp, path)


def remove_pid_file(path: Path, pid: int | None = None) -> None:
    """Remove the file if it still names ``pid`` (default: this process)."""
    if read_pid(path) == (pid or os.getpid()):
        path.unlink(missing_ok=True)


def read_pid(path: Path) -> int | None:
    """The pid in the file, or ``None`` when there is none or it is not a number."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def _is_feedhub(pid: int) -> bool:
    """Whether ``pid`` is a live feedhub process (on Linux, checked by its command line)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's: the command line below still tells
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not Path("/proc/self").exists():
        return True  # no procfs to ask: trust the pid file
    try:
        return b"feedhub" in cmdline.read_bytes()
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What happened when asking the daemon to reload."""

    #: The daemon's pid, if one is running.
    pid: int | None
    #: Whether it was sent ``SIGHUP``.
    signalled: bool
    message: str


def reload_daemon(data_dir: Path) -> ReloadResult:
    """Send ``SIGHUP`` to the daemon running on ``data_dir``, if any; never raises."""
    path = pid_path(data_dir)
    pid = read_pid(path)
    if pid is None or not _is_feedhub(pid):
        return ReloadResult(None, False, "no feedhub daemon is running on this data directory: "
                            "the change applies when it starts (or on the next feedhub poll)")
    try:
        os.kill(pid, signal.SIGHUP)
    except PermissionError:
        return ReloadResult(pid, False, f"the daemon (pid {pid}) runs as another user: reload it "
                            f"with `systemctl reload feedhub` or `kill -HUP {pid}` as that user")
    except ProcessLookupError:
        return ReloadResult(None, False, "the daemon stopped meanwhile: the change applies when "
                            "it starts")
    return ReloadResult(pid, True, f"asked the running daemon (pid {pid}) to reload feeds.yaml")
