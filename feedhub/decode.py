"""Character encodings that sources get wrong.

Chinese sources often declare GB2312 but send GBK or GB18030 bytes, or put the
charset only in the HTTP header. feedparser (with ``chardet``) handles the
declared and undeclared cases; this module applies an operator's explicit
``encoding:`` override and widens GB2312/GBK to their superset GB18030.
"""

from __future__ import annotations

import codecs
import re

from feedhub.errors import EncodingError

_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"charset=[\"']?([A-Za-z0-9_-]+)", re.I)
_XML_DECL = re.compile(rb"^(\xef\xbb\xbf)?\s*<\?xml[^>]*?\?>", re.S)
_DECL_ENCODING = re.compile(rb"""\sencoding\s*=\s*["'][^"']*["']""")
#: Encodings whose bytes are always valid in a superset we can decode with instead.
_WIDER = {"gb2312": "gb18030", "gbk": "gb18030", "euc_cn": "gb18030", "big5": "big5hkscs",
          "iso8859-1": "cp1252", "latin-1": "cp1252", "ascii": "utf-8"}


def widen(encoding: str) -> str:
    """The superset to decode ``encoding`` with (``gb2312`` → ``gb18030``)."""
    name = codecs.lookup(encoding).name
    return _WIDER.get(name, name)


def transcode_to_utf8(body: bytes, encoding: str, url: str) -> bytes:
    """``body`` decoded as ``encoding`` and re-encoded as UTF-8, its XML declaration updated.

    Raises:
        EncodingError: the bytes are not valid in that encoding.
    """
    wide = widen(encoding)
    text_bytes = body[3:] if body.startswith(codecs.BOM_UTF8) and wide != "utf-8" else body
    try:
        text = text_bytes.decode(wide)
    except UnicodeDecodeError as e:
        raise EncodingError(url, f"the body is not valid {encoding} (byte {e.start}); "
                                 "check the source's encoding: setting") from e
    utf8 = text.encode("utf-8")
    match = _XML_DECL.match(utf8)
    if match:
        decl = _DECL_ENCODING.sub(b' encoding="utf-8"', match.group(0))
        utf8 = decl + utf8[match.end():]
    return utf8.removeprefix(codecs.BOM_UTF8)


def html_text(body: bytes, content_type: str = "", encoding: str | None = None) -> str:
    """An HTML page's text: in ``encoding`` when the operator gives one, else in the charset
    of the HTTP header or the page's ``<meta>`` (widened: GB2312/GBK read as GB18030), else
    UTF-8. Undecodable bytes become U+FFFD rather than losing the page."""
    charset = encoding
    if charset is None and (header := _HEADER_CHARSET.search(content_type)):
        charset = header.group(1)
    if charset is None and (meta := _META_CHARSET.search(body[:4096])):
        charset = meta.group(1).decode("ascii")
    try:
        wide = widen(charset or "utf-8")
    except LookupError:
        wide = "utf-8"
    if wide == "utf-8" and body.startswith(codecs.BOM_UTF8):
        body = body[3:]
    return body.decode(wide, errors="replace")
