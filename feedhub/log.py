"""Logging setup: one line per event on stderr, journald-friendly."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr; without timestamps under systemd, where journald adds its own."""
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger("feedhub")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
