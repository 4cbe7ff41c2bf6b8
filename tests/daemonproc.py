"""Run the real ``feedhub run`` as a subprocess, with a systemd notify socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DaemonProcess:
    """``feedhub run`` on a config, its notify messages and its stderr collected."""

    def __init__(self, config: Path, *, watchdog_usec: int | None = None, tick: float = 0.2,
                 spread: float = 2.0, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="feedhub-notify-")
        self.notify_path = str(Path(self._dir.name) / "notify.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.notify_path)
        self._sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self.stderr_lines: list[str] = []
        extra_env = env
        env = {k: v for k, v in os.environ.items() if k != "FEEDHUB_CONFIG"}
        env["NOTIFY_SOCKET"] = self.notify_path
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "feedhub", "--config", str(config), "--log-level", "INFO",
             "run", "--listen", f"127.0.0.1:{self.port}", "--tick", str(tick), "--spread", str(spread)],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self._threads = [threading.Thread(target=self._read_notify, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_notify(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                if self.proc.poll() is not None:
                    return
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def notified(self, text: str) -> list[float]:
        """Times of the notify messages containing the line ``text``."""
        return [t for t, m in self.messages if text in m.split("\n")]

    def wait_for(self, predicate: object, timeout: float = 20.0, what: str = "") -> None:
        """Wait until ``predicate()`` is true; fail with the daemon's stderr otherwise."""
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode} waiting for {what}:\n"
                                     f"{self.stderr}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{self.stderr}")

    def wait_ready(self, count: int = 1, timeout: float = 20.0) -> None:
        self.wait_for(lambda: len(self.notified("READY=1")) >= count, timeout=timeout,
                      what=f"READY=1 x{count}")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=2)
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._sock.close()
        self._dir.cleanup()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
