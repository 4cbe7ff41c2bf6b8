"""URL helpers shared by the stages: canonical links, absolute IRIs, derived ids."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that identify a campaign, not an article.
_TRACKING = re.compile(r"^(utm_\w+|spm|from|fbclid|gclid|mc_cid|mc_eid|_hsenc|_hsmi|yclid)$", re.I)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SPACE = re.compile(r"\s")


def canonical_link(url: str | None) -> str | None:
    """``url`` without tracking parameters and fragment, host lower-cased.

    Two sources that link to the same article with different campaign tags get
    the same canonical link, so a merged feed shows the article once.
    """
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _TRACKING.match(k)]
    netloc = parts.netloc.lower()
    for default in (":80", ":443"):
        if netloc.endswith(default) and parts.scheme == ("http" if default == ":80" else "https"):
            netloc = netloc.removesuffix(default)
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", urlencode(query), ""))


def is_absolute_iri(value: str) -> bool:
    """Whether ``value`` is usable as an Atom id (RFC 4287 §4.2.6: an absolute IRI)."""
    if not _SCHEME.match(value) or _SPACE.search(value):
        return False
    parts = urlsplit(value)
    if parts.scheme in ("http", "https"):
        return bool(parts.netloc)
    return bool(parts.path or parts.netloc)


def derived_id(source_url: str, key: str) -> str:
    """A stable ``urn:uuid:`` id for an entry whose own id is not an absolute IRI."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{source_url}\n{key}").urn
