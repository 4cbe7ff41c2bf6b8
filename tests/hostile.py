"""A raw-socket HTTP server for faults the stdlib server cannot play.

Paths: ``/drip`` sends headers, then one byte a second; ``/hang`` reads the
request and never answers; ``/reset`` sends half a body and resets the
connection. Only 127.0.0.1.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from types import TracebackType

_BODY = b'<?xml version="1.0"?><rss version="2.0"><channel><title>drip</title>' + b" " * 4096


class HostileServer:
    """Misbehaving HTTP peer on 127.0.0.1; use as a context manager."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}{path}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            request = conn.recv(65536).decode("latin-1")
            path = request.split(" ", 2)[1] if " " in request else "/"
            if path.startswith("/hang"):
                self._stop.wait(120)
            elif path.startswith("/drip"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(_BODY))
                for byte in _BODY:
                    if self._stop.is_set():
                        break
                    conn.sendall(bytes([byte]))
                    time.sleep(1)
            elif path.startswith("/reset"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(_BODY) + _BODY[:100])
                time.sleep(0.2)
                # SO_LINGER 0: close sends RST instead of FIN.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        finally:
            conn.close()
