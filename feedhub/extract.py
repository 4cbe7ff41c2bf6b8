"""Take the article off an entry's page (full text).

With the source's ``full_text_selector`` the article is the first element it
matches; without one, trafilatura finds the main text. It was chosen over
readability-lxml because it is maintained, is evaluated on news pages in many
languages (Chinese among them), and keeps paragraphs, links and images while
dropping navigation, sidebars, share bars and footers. The page is decoded as
scraped pages are (header or ``<meta>`` charset, GBK widened to GB18030), and
the result goes through the same sanitizer and absolute-URL pass as feed
content. Pure: no I/O, so it runs in the parse workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urljoin

from lxml import etree, html

from feedhub.decode import html_text
from feedhub.errors import ExtractError
from feedhub.sanitize import clean_html, clean_text
from feedhub.selectors import Selector

#: Fewer characters of text than this is a teaser, a paywall or an error page, not an article.
MIN_TEXT = 50


def extract_article(body: bytes, *, url: str, headers: Mapping[str, str], encoding: str | None,
                    selector: Selector | None) -> str:
    """The article on the page ``body`` fetched from ``url``, as sanitized HTML.

    Raises:
        ExtractError: not an HTML page, the selector matched nothing, or too little
            text was found to be the article.
    """
    text = html_text(body, headers.get("content-type", ""), encoding)
    try:
        root = html.document_fromstring(text)
    except (etree.ParserError, ValueError) as e:
        raise ExtractError(url, f"not an HTML page ({e})") from None
    base = root.find(".//base[@href]")
    base_url = urljoin(url, base.get("href") or "") if base is not None else url
    if selector is not None:
        found = [e for e in root.xpath(selector.xpath) if isinstance(e, html.HtmlElement)]
        if not found:
            raise ExtractError(url, f"full_text_selector {selector.text!r} matched nothing")
        article = html.tostring(found[0], encoding="unicode", with_tail=False)
    else:
        import trafilatura  # heavy: only in the workers of full-text sources

        article = trafilatura.extract(root, url=url, output_format="html", include_links=True,
                                      include_images=True, include_tables=True) or ""
    content = clean_html(article, base_url)
    if len(clean_text(content)) < MIN_TEXT:
        raise ExtractError(url, f"no article found (under {MIN_TEXT} characters of text)")
    return content
