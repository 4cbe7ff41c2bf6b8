"""What is republished: ``include``/``exclude`` rules and title ``rewrite``s, pure.

Rules are parsed (and their regular expressions compiled) once, when the
configuration is loaded; :class:`EntryFilter` applies them to stored entries at
render time, so changing a rule and rebuilding republishes without re-fetching.

A rule is a keyword (a case-insensitive substring of the title or the text of
the content), ``re:PATTERN`` (a regular expression searched in the same), and
either may be scoped: ``title:…``, ``author:…``, ``link:…``. An entry is kept
when it matches some ``include`` (or there is none) and no ``exclude``; the
source's rules and its category's both apply. Rewrites change the title of
what is kept, the source's first, then the category's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from feedhub.model import StoredEntry
from feedhub.search import entry_text

Scope = Literal["any", "title", "author", "link"]
_SCOPES: tuple[Scope, ...] = ("title", "author", "link")


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``include``/``exclude`` item, parsed."""

    #: As written in feeds.yaml (how ``feedhub status`` names it).
    text: str
    scope: Scope
    #: The regular expression of a ``re:`` rule, else ``None``.
    pattern: re.Pattern[str] | None
    #: The case-folded keyword of a plain rule, else empty.
    keyword: str

    def matches(self, entry: StoredEntry) -> bool:
        """Whether the entry matches this rule."""
        for text in _fields(entry, self.scope):
            if self.pattern is not None:
                if self.pattern.search(text):
                    return True
            elif self.keyword in text.casefold():
                return True
        return False


@dataclass(frozen=True, slots=True)
class Rewrite:
    """One ``rewrite`` item: a title pattern and its replacement."""

    pattern: re.Pattern[str]
    to: str

    def apply(self, title: str) -> str:
        """The title rewritten (``\\1`` and ``\\g<name>`` refer to groups)."""
        return self.pattern.sub(self.to, title).strip()


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules of one source or one category."""

    include: tuple[Rule, ...] = ()
    exclude: tuple[Rule, ...] = ()
    rewrite: tuple[Rewrite, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude or self.rewrite)

    def dropped_by(self, entry: StoredEntry) -> str | None:
        """The rule that drops ``entry`` (``include`` when none of them matched), or ``None``."""
        if self.include and not any(r.matches(entry) for r in self.include):
            return "include"
        return next((f"exclude {r.text}" for r in self.exclude if r.matches(entry)), None)


#: No rules: every entry is kept as it is.
NO_RULES = RuleSet()


def parse_rule(text: str) -> Rule:
    """Parse one rule as written in feeds.yaml.

    Raises:
        ValueError: it is empty or its regular expression does not compile
            (the message is ``what: how to fix it``).
    """
    body = str(text).strip()
    scope: Scope = "any"
    for name in _SCOPES:
        if body.startswith(name + ":"):
            scope, body = name, body[len(name) + 1:]
            break
    if body.startswith("re:"):
        return Rule(text=str(text), scope=scope, pattern=compile_pattern(body[3:]), keyword="")
    if not body:
        raise ValueError(f"empty rule {text!r}: write a keyword, or re:PATTERN")
    return Rule(text=str(text), scope=scope, pattern=None, keyword=body.casefold())


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a rule's regular expression.

    Raises:
        ValueError: it does not compile (``what: how to fix it``).
    """
    if not pattern:
        raise ValueError("empty regular expression: write re:PATTERN, such as re:^【快讯】")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid regular expression {pattern!r} ({e}): fix it, or escape "
                         "special characters such as ( [ * + ? with a backslash") from None


def _fields(entry: StoredEntry, scope: Scope) -> Iterable[str]:
    if scope == "title":
        return (entry.title,)
    if scope == "author":
        return entry.authors
    if scope == "link":
        return (entry.link,) if entry.link else ()
    return (entry.title, entry_text(entry.content_html))


class EntryFilter:
    """Every source's rules with its category's, applied to stored entries."""

    def __init__(self, rules: Mapping[str, tuple[RuleSet, ...]]) -> None:
        #: Source URL → the rule sets that apply to its entries (source, then category).
        self._rules = {url: tuple(r for r in sets if r) for url, sets in rules.items()}
        self._rules = {url: sets for url, sets in self._rules.items() if sets}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def filters(self, source_url: str) -> bool:
        """Whether any rule applies to this source's entries."""
        return source_url in self._rules

    def dropped_by(self, entry: StoredEntry) -> str | None:
        """What drops ``entry`` (``include`` or ``exclude RULE``), or ``None`` if it is kept."""
        for rules in self._rules.get(entry.source_url, ()):
            reason = rules.dropped_by(entry)
            if reason is not None:
                return reason
        return None

    def apply(self, entry: StoredEntry) -> StoredEntry | None:
        """The entry as republished (its title rewritten), or ``None`` when it is dropped."""
        sets = self._rules.get(entry.source_url)
        if not sets:
            return entry
        if self.dropped_by(entry) is not None:
            return None
        title = entry.title
        for rules in sets:
            for rewrite in rules.rewrite:
                title = rewrite.apply(title)
        return entry if title == entry.title else replace(entry, title=title)

    def keep(self, entries: Iterable[StoredEntry]) -> list[StoredEntry]:
        """The entries kept, as republished, in the same order."""
        return [kept for e in entries if (kept := self.apply(e)) is not None]
