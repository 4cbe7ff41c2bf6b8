"""Make untrusted HTML from sources safe to republish.

An allowlist sanitizer (Ammonia, through ``nh3``) removes scripts, event
handlers, frames, styles and dangerous URL schemes; harmless markup such as
``class`` survives, and relative URLs are made absolute against the entry's
base URL.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

import nh3

_TAGS = frozenset(nh3.ALLOWED_TAGS) | {"figure", "figcaption", "picture", "source", "video", "audio"}
_ATTRIBUTES: dict[str, set[str]] = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"class", "title", "lang", "dir"}
_ATTRIBUTES["a"] = {"href", "hreflang", "title"}
_ATTRIBUTES["img"] = {"alt", "src", "width", "height", "title"}
_ATTRIBUTES["source"] = {"src", "type"}
_ATTRIBUTES["video"] = {"src", "poster", "controls", "width", "height"}
_ATTRIBUTES["audio"] = {"src", "controls"}
_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_URL_ATTRIBUTES = frozenset({"href", "src", "poster", "cite"})
# Elements whose text is code or styling, never content.
_DROP_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "noscript", "svg",
                                "math", "template", "form"})


# Characters XML 1.0 forbids; a source that sends them would break every output.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry."""
    return _XML_ILLEGAL.sub("", text)


@lru_cache(maxsize=256)
def _html_cleaner(base_url: str | None) -> nh3.Cleaner:
    """The sanitizer for HTML whose relative URLs resolve against ``base_url``.

    Kept per base URL (one per source): building one costs more than cleaning an
    entry with it, as :func:`nh3.clean` does on every call.
    """
    def absolutize(tag: str, attr: str, value: str) -> str | None:
        if attr in _URL_ATTRIBUTES:
            url = urljoin(base_url, value.strip()) if base_url else value.strip()
            scheme = urlsplit(url).scheme.lower()
            return url if scheme in _URL_SCHEMES or not scheme else None
        return value

    return nh3.Cleaner(
        tags=set(_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes=_ATTRIBUTES,
        attribute_filter=absolutize,
        url_schemes=set(_URL_SCHEMES),
        link_rel=None,
        strip_comments=True,
    )


# Titles and names: every tag dropped, the text of code and styling too.
_TEXT_CLEANER = nh3.Cleaner(tags=set(), clean_content_tags=set(_DROP_WITH_CONTENT))


def clean_html(html: str, base_url: str | None) -> str:
    """Sanitized ``html`` with relative URLs resolved against ``base_url``."""
    if not html:
        return ""
    # Filtered after cleaning: an entity such as "&#2" decodes to a control character.
    return xml_safe(_html_cleaner(base_url).clean(html))


def clean_text(text: str) -> str:
    """Plain text with any markup removed (titles, names)."""
    if "<" not in text and "&" not in text:
        return " ".join(xml_safe(text).split())
    stripped = _TEXT_CLEANER.clean(text)
    return " ".join(xml_safe(html.unescape(stripped)).split())


def safe_url(url: str | None, base_url: str | None = None) -> str | None:
    """An absolute http(s) URL, or ``None`` for anything else (``javascript:``, ``data:`` …)."""
    if not url:
        return None
    url = xml_safe(url).strip()
    absolute = urljoin(base_url, url) if base_url else url
    parts = urlsplit(absolute)
    return absolute if parts.scheme in ("http", "https") and parts.netloc else None
