"""Search queries over stored entries: the query language, no I/O.

A query is words separated by spaces, all of which must be found (``腾讯 游戏``);
``OR`` (or ``|``) separates alternatives (``腾讯 OR 微信``); ``"…"`` keeps a phrase
with spaces together; ``-word`` excludes. A word matches as a case-insensitive
substring of an entry's title or text, so Chinese needs no word boundaries and
stock codes (``600519``) match inside longer text. The stores turn a
:class:`Query` into their own full-text search (see ``search`` in
:mod:`feedhub.store.base`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Query", "Term", "entry_text", "parse_query"]

_TAGS = re.compile(r"<[^>]*>")
_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')


def entry_text(content_html: str) -> str:
    """The text of an entry's (sanitized) HTML content, as search and filters see it."""
    return " ".join(html.unescape(_TAGS.sub(" ", content_html)).split())


@dataclass(frozen=True, slots=True)
class Term:
    """One word or phrase of a query; ``negated`` ones must not be found."""

    text: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    """Alternatives (any may match), each a conjunction of terms (all must match)."""

    text: str
    alternatives: tuple[tuple[Term, ...], ...]

    def matches(self, title: str, text: str) -> bool:
        """Whether an entry with this title and content text matches (the reference
        semantics the stores' SQL implements)."""
        haystack = f"{title}\n{text}".casefold()
        return any(all((t.text.casefold() in haystack) != t.negated for t in terms)
                   for terms in self.alternatives)

    def where(self, found: Callable[[str], str]) -> str:
        """The query as an SQL condition, ``found(word)`` being a store's condition for
        one word (it records the word's parameters itself)."""
        return " OR ".join(
            "(" + " AND ".join(("NOT " if t.negated else "") + found(t.text) for t in terms) + ")"
            for terms in self.alternatives)


def parse_query(text: str) -> Query:
    """Read a query such as ``腾讯 OR 微信 -广告``.

    Raises:
        ValueError: the query is empty, or an alternative only excludes.
    """
    alternatives: list[tuple[Term, ...]] = []
    current: list[Term] = []
    for match in _TOKEN.finditer(text):
        negated, phrase, word = match.group(1) == "-", match.group(2), match.group(3)
        if word in ("OR", "|"):
            alternatives.append(tuple(current))
            current = []
            continue
        if word is not None:
            negated, word = word.startswith("-") and len(word) > 1, word
            phrase = word[1:] if negated else word
        if phrase and phrase.strip():
            current.append(Term(" ".join(phrase.split()), negated))
    alternatives.append(tuple(current))
    if not any(alternatives):
        raise ValueError(f"empty search query {text!r}: write words to look for, "
                         "such as 腾讯 OR 微信")
    for terms in alternatives:
        if not terms or all(t.negated for t in terms):
            raise ValueError(f"search query {text!r} has an alternative with nothing to find: "
                             "each side of OR needs a word that is not excluded with -")
    return Query(text=text.strip(), alternatives=tuple(alternatives))
