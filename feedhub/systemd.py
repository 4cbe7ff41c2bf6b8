"""sd_notify over ``$NOTIFY_SOCKET``, without a dependency (see sd_notify(3))."""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Sends state changes to systemd; does nothing when not run by systemd."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        # A leading '@' names a socket in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to notify."""
        return bool(self._address)

    def notify(self, *fields: str) -> None:
        """Send ``KEY=value`` lines; errors are ignored, as sd_notify does."""
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall("\n".join(fields).encode())
        except OSError:
            pass

    def ready(self, status: str = "") -> None:
        """``READY=1``: startup finished (or a reload did)."""
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        """``RELOADING=1`` with ``MONOTONIC_USEC``, as ``Type=notify-reload`` expects."""
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> None:
        """``STOPPING=1``: shutdown has begun."""
        self.notify("STOPPING=1")

    def status(self, text: str) -> None:
        """A one-line ``STATUS=`` shown by ``systemctl status``."""
        self.notify(f"STATUS={text}")

    def watchdog(self) -> None:
        """``WATCHDOG=1``: the daemon is alive and healthy."""
        self.notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings: half of ``$WATCHDOG_USEC``, or ``None``."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2
