"""Field values of ``feeds.yaml``: durations, sizes, URLs, time zones, encodings, rules.

Each function takes what YAML gave and returns the checked value, or raises
``ValueError`` with a message saying what is wrong and what would be right.
"""

from __future__ import annotations

import codecs
import re
from datetime import time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedhub.filters import compile_pattern, parse_rule
from feedhub.policy import DAY_NAMES
from feedhub.search import parse_query
from feedhub.selectors import compile_selector

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


_MAX_DURATION = 365 * 86400


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?B)\s*$", re.I)


_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def duration_value(value: Any) -> timedelta:
    """``30s``, ``15m``, ``2h`` or ``1d`` as a timedelta."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"invalid duration {value!r}: use a number and a unit s, m, h or d, such as 30s, 15m, 2h"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > _MAX_DURATION:
        raise ValueError(f"duration {value!r} is too long: use at most 365d")
    if seconds < 1:
        raise ValueError(f"duration {value!r} is too short: use at least 1s")
    return timedelta(seconds=seconds)


def http_url(value: Any) -> str:
    """An absolute http(s) URL."""
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"invalid URL {value!r}: write an absolute http:// or https:// URL")
    return text


def source_url(value: Any) -> str:
    """A source's URL: http(s), or ``rsshub://route`` (expanded later)."""
    text = str(value).strip()
    if text.startswith("rsshub:"):
        return text
    try:
        return http_url(text)
    except ValueError:
        raise ValueError(f"invalid URL {value!r}: write an absolute http:// or https:// URL, or "
                         "rsshub:/route for the RSSHub instance in site.rsshub") from None


def timezone_name(value: Any) -> str:
    """An IANA time zone name, such as ``Asia/Shanghai``."""
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as Asia/Shanghai or UTC"
        ) from None
    return str(value)


def encoding_name(value: Any) -> str:
    """A character encoding Python knows, such as ``gb18030``."""
    try:
        return codecs.lookup(str(value)).name
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}: use a name such as gb18030, big5 or utf-8") from None


def listen_address(value: Any) -> str:
    """``host:port`` to listen on."""
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {value!r}: write HOST:PORT, such as 127.0.0.1:8080")
    return str(value)


def filter_rule(value: Any) -> str:
    """An ``include``/``exclude`` rule, checked by compiling it."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"invalid rule {value!r}: write a keyword, re:PATTERN, or "
                         "title:/author:/link: before either")
    parse_rule(str(value))
    return str(value)


def rewrite_rule(value: Any) -> tuple[str, str]:
    """A title rewrite ``{pattern: replacement}`` as a pair."""
    if not isinstance(value, dict) or set(value) != {"title", "to"}:
        raise ValueError("invalid rewrite: write {title: PATTERN, to: REPLACEMENT}, "
                         "such as {title: '^【快讯】', to: ''}")
    compile_pattern(str(value["title"]))
    to = "" if value["to"] is None else str(value["to"])
    return str(value["title"]), to


def byte_size(value: Any) -> int:
    """A size in bytes, or with a unit: ``512KB``, ``16MB``, ``1GB``."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise ValueError(f"invalid size {value!r}: write bytes, or a number with KB, MB or GB "
                             "such as 16MB")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    if size < 1024:
        raise ValueError(f"size {value!r} is too small: allow at least 1KB")
    return size


def store_url(value: Any) -> str:
    """``sqlite:///path`` or ``postgresql://…``."""
    text = str(value).strip()
    scheme = urlsplit(text).scheme
    if scheme not in ("postgresql", "postgres", "sqlite"):
        raise ValueError(f"invalid store URL {value!r}: write postgresql://user@host/dbname "
                         "(or sqlite:///path/to/feedhub.sqlite3)")
    return text


def weekdays(value: Any) -> frozenset[int]:
    """Day names (``mon``–``sun``, or ranges like ``mon-fri``) as weekday numbers."""
    text = ",".join(value) if isinstance(value, list) else str(value)
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if part == "daily":
            days.update(range(7))
        elif first in DAY_NAMES and (not last or last in DAY_NAMES):
            a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
        else:
            raise ValueError(f"invalid days {value!r}: write mon-fri, sat,sun or daily")
    return frozenset(days)


def _clock(text: str) -> time:
    hours, sep, minutes = text.strip().partition(":")
    if sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2 \
            and int(hours) < 24 and int(minutes) < 60:
        return time(int(hours), int(minutes))
    raise ValueError(text)


def time_range(value: Any) -> tuple[time, time]:
    """``HH:MM-HH:MM`` as a pair of times (it may wrap past midnight)."""
    start, sep, end = str(value).partition("-")
    try:
        if not sep:
            raise ValueError(value)
        span = _clock(start), _clock(end)
    except ValueError:
        raise ValueError(f"invalid time range {value!r}: write HH:MM-HH:MM in the "
                         "schedule's time zone, such as 09:15-15:00") from None
    if span[0] == span[1]:
        raise ValueError(f"empty time range {value!r}: the start and end must differ")
    return span


def query_text(value: Any) -> str:
    """A saved search's query, checked by parsing it."""
    parse_query(str(value))
    return str(value).strip()


def expand_rsshub(url: str, rsshub: str) -> str:
    """A source URL with the ``rsshub:`` shorthand expanded against the ``rsshub`` base."""
    if url.startswith("rsshub:"):
        return rsshub.rstrip("/") + "/" + url.removeprefix("rsshub:").lstrip("/")
    return url


def css_selector(value: Any) -> str:
    """A CSS selector, optionally ``@attribute`` (``a@href``), as :mod:`feedhub.selectors` reads it."""
    if not isinstance(value, str):
        raise ValueError("a CSS selector is text, such as 'ul.news-list li' or 'a@href'")
    compile_selector(value)
    return value.strip()
