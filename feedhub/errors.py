"""The one exception hierarchy of feedhub, rooted at :class:`FeedhubError`.

Third-party exceptions (httpx, feedparser, sqlite3) are wrapped at the edge of
the stage that meets them, with the original kept as ``__cause__``; ``str(e)``
shows both.
"""

from __future__ import annotations

from dataclasses import dataclass


class FeedhubError(Exception):
    """Base of every error feedhub raises on purpose."""

    def __str__(self) -> str:
        message = super().__str__()
        cause = self.__cause__
        if cause is not None and str(cause) and str(cause) not in message:
            return f"{message}: {type(cause).__name__}: {cause}"
        return message


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration file, located as precisely as possible."""

    file: str
    line: int | None
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return f"{text} — {self.hint}" if self.hint else text


class ConfigError(FeedhubError, ValueError):
    """The configuration file is missing, unreadable or invalid."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in issues))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[ConfigIssue]]]:
        return type(self), (list(self.issues),)


class SourceError(FeedhubError):
    """Something went wrong with one source; carries its URL."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[type[SourceError], tuple[str, str]]:
        # A parse worker sends its error back pickled; by default it would be rebuilt
        # from args alone (the message), which fails, and the process pool then
        # takes that for a dead worker.
        return type(self), (self.url, self.message)


class FetchError(SourceError):
    """The source could not be fetched (network, HTTP status, size cap)."""


class ParseError(SourceError):
    """The fetched body is not a feed feedhub can read."""


class EncodingError(ParseError):
    """The body's text could not be decoded without mangling it."""


class ExtractError(SourceError):
    """An entry's page holds no article feedhub can take off it (full text)."""


class StoreError(FeedhubError):
    """The store could not be opened, read or written."""
