"""nginx on 127.0.0.1 with the benchmark's own configuration, in a temp dir.

Three server blocks:

- ``validators``: the corpus with ``ETag``/``Last-Modified`` and 304 answers;
- ``plain``: the same corpus without validators (no ``ETag``, no
  ``Last-Modified``, conditional headers ignored: every poll is a 200);
- ``static``: a folder of files for the serving comparison.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/xml xml; application/atom+xml atom; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 60;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{validators};
        root {www};
    }}
    server {{
        listen 127.0.0.1:{plain};
        root {www};
        etag off;
        if_modified_since off;
        # The SSI filter drops Last-Modified (ssi_last_modified is off): no validators at all.
        ssi on;
        ssi_types application/xml;
    }}
    server {{
        listen 127.0.0.1:{static};
        root {static_root};
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    """Start with ``with Nginx(www, static_root) as nginx:``; stopped on exit."""

    def __init__(self, www: Path, static_root: Path) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise SystemExit("nginx not found: apt-get install -y nginx")
        self.binary = binary
        self.www, self.static_root = www, static_root
        self.validators, self.plain, self.static = free_port(), free_port(), free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="feedhub-bench-nginx-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The master's process id (its worker is a child)."""
        assert self._proc is not None, "not started"
        return self._proc.pid

    def url(self, port: int, path: str) -> str:
        return f"http://127.0.0.1:{port}/{path}"

    def __enter__(self) -> Nginx:
        tmp = Path(self._tmp.name)
        conf = tmp / "nginx.conf"
        conf.write_text(_CONF.format(tmp=tmp, www=self.www, static_root=self.static_root,
                                     validators=self.validators, plain=self.plain,
                                     static=self.static))
        self._proc = subprocess.Popen([self.binary, "-c", str(conf), "-p", str(tmp),
                                       "-e", str(tmp / "error.log")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        for port in (self.validators, self.plain, self.static):
            while True:
                if self._proc.poll() is not None:
                    err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                    raise SystemExit(f"nginx did not start: {err}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.__exit__(None, None, None)
                        raise SystemExit("nginx did not start listening in 10 s") from None
                    time.sleep(0.05)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.terminate()  # SIGTERM: fast shutdown of master and workers
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self._tmp.cleanup()
