"""CSS selectors as feeds.yaml writes them: ``span.time``, or ``a@href`` for an attribute.

A selector is compiled to XPath here, once, when the configuration is read, so
a typo is a ``feedhub check`` error with its line, and the worker processes
that scrape pages receive plain strings (cssselect's own grammar, CSS level 3
plus ``:contains()``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cssselect import HTMLTranslator, SelectorError

_ATTRIBUTE = re.compile(r"^(?P<css>.*?)@(?P<attr>[A-Za-z_:][-A-Za-z0-9_:.]*)$", re.S)


@dataclass(frozen=True, slots=True)
class Selector:
    """Elements to pick within a context element, and optionally one of their attributes."""

    #: As written in feeds.yaml (for messages).
    text: str
    #: The CSS part as an XPath relative to the context element; ``"self::*"`` for ``@attr``.
    xpath: str
    #: ``href`` in ``a@href``: take this attribute rather than the element's text.
    attribute: str | None = None


def compile_selector(text: str) -> Selector:
    """``text`` (``css``, ``css@attribute`` or ``@attribute``) compiled.

    Raises:
        ValueError: not a CSS selector cssselect can read, with the reason.
    """
    css, attribute = text.strip(), None
    if match := _ATTRIBUTE.match(css):
        css, attribute = match.group("css").strip(), match.group("attr")
    if not css:
        if attribute is None:
            raise ValueError("an empty selector: give a CSS selector such as 'a' or 'a@href'")
        return Selector(text=text, xpath="self::*", attribute=attribute)
    try:
        xpath = HTMLTranslator().css_to_xpath(css, prefix="descendant-or-self::")
    except SelectorError as e:
        raise ValueError(f"{css!r} is not a CSS selector ({e})") from None
    return Selector(text=text, xpath=xpath, attribute=attribute)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScrapeRules:
    """How to read entries off an HTML listing page (a source's ``scrape:``)."""

    #: Each match is one entry; the other selectors apply within it.
    item: Selector
    title: Selector
    link: Selector
    date: Selector | None = None
    summary: Selector | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FullText:
    """How to take the article off each entry's page (a source's ``full_text:``)."""

    #: The article's element (``full_text_selector``); ``None``: found by trafilatura.
    selector: Selector | None = None
